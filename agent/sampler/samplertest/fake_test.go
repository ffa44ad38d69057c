package samplertest

import (
	"errors"
	"testing"

	"github.com/fleetprof/fleetprof/agent/sampler"
)

func TestFake(t *testing.T) {
	f := New(1)
	f.Add(sampler.Sample{TGID: 1, PID: 1, User: []uint64{0x10}, Count: 3})
	f.Drop(sampler.DropCountMapFull, 2)
	boom := errors.New("boom")
	f.FailNextDrain(boom)
	if _, _, err := f.Drain(); !errors.Is(err, boom) {
		t.Fatalf("Drain error %v, want %v", err, boom)
	}
	got, st, err := f.Drain()
	if err != nil || len(got) != 1 || got[0].Count != 3 {
		t.Fatalf("Drain = %v, %v", got, err)
	}
	if st.Samples != 5 || st.Drained != 3 || st.DroppedSamples() != 2 {
		t.Errorf("stats %+v", st)
	}
	if got, _, _ := f.Drain(); len(got) != 0 {
		t.Errorf("second Drain returned %v", got)
	}
	if !f.Emit(sampler.ProcEvent{Kind: sampler.EventExec, PID: 7}) {
		t.Fatal("Emit on open fake failed")
	}
	if f.Emit(sampler.ProcEvent{PID: 8}) {
		t.Error("Emit into a full buffer succeeded")
	}
	if ev := <-f.Events(); ev.PID != 7 {
		t.Errorf("event %+v", ev)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f.Emit(sampler.ProcEvent{}) {
		t.Error("Emit after Close succeeded")
	}
	if _, ok := <-f.Events(); ok {
		t.Error("Events not closed")
	}
	if _, _, err := f.Drain(); err == nil {
		t.Error("Drain after Close succeeded")
	}
}
