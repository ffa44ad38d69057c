package sampler

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/fleetprof/fleetprof/internal/testenv"
)

// newTestSampler starts a real sampler, skipping only when the host cannot
// run one at all.
func newTestSampler(t *testing.T, cfg Config) *Sampler {
	t.Helper()
	testenv.Root(t, "CAP_BPF and CAP_PERFMON) to load eBPF programs")
	s, err := New(cfg)
	if errors.Is(err, ebpf.ErrNotSupported) {
		testenv.Skip(t, testenv.KernelFeature, "kernel lacks a required eBPF feature: %v", err)
	}
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var spinSink atomic.Uint64

// spin burns CPU in a loop that the sampler should find at the leaf.
//
//go:noinline
func spin(stop *atomic.Bool) {
	x := uint64(1)
	for !stop.Load() {
		for i := 0; i < 1000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	spinSink.Store(x)
}

// spinFor runs spin on its own locked OS thread for d.
func spinFor(d time.Duration) {
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		spin(&stop)
		close(done)
	}()
	time.Sleep(d)
	stop.Store(true)
	<-done
}

func funcName(pc uint64) string {
	if f := runtime.FuncForPC(uintptr(pc)); f != nil {
		return f.Name()
	}
	return ""
}

func TestSpinnerDominatesOwnSamples(t *testing.T) {
	s := newTestSampler(t, Config{Hz: 99})
	if _, _, err := s.Drain(); err != nil { // discard what came before the spinner
		t.Fatalf("Drain: %v", err)
	}

	const spinName = "github.com/fleetprof/fleetprof/agent/sampler.spin"
	self := uint32(os.Getpid())
	var total, withSpin, spinToRoot uint64
	var st Stats
	// Spin 2 s, longer if other tests hog the CPUs, until there are
	// enough samples of this process to judge; the cap only ends a broken run.
	for round := 0; round < 30 && (round < 2 || total < 100); round++ {
		spinFor(time.Second)
		samples, stats, err := s.Drain()
		if err != nil {
			t.Fatalf("Drain: %v", err)
		}
		st = stats
		for _, smp := range samples {
			if smp.TGID != self {
				continue
			}
			total += smp.Count
			found := false
			// The spinner is the leaf; allow a couple of frames for a
			// sample that lands in a runtime call it makes.
			for _, pc := range smp.User[:min(len(smp.User), 3)] {
				if funcName(pc) == spinName {
					found = true
				}
			}
			if !found {
				continue
			}
			withSpin += smp.Count
			if len(smp.User) > 0 {
				root := funcName(smp.User[len(smp.User)-1])
				if root == "runtime.goexit" || root == "runtime.main" {
					spinToRoot += smp.Count
				}
			}
		}
	}
	t.Logf("own samples %d, with spin %d, spin reaching Go root %d; stats %+v", total, withSpin, spinToRoot, st)
	if total < 100 {
		t.Fatalf("only %d samples of this process after 30 s of spinning at 99 Hz", total)
	}
	if withSpin*100 < total*80 {
		t.Errorf("spin in %d of %d own samples, want >= 80%%", withSpin, total)
	}
	if spinToRoot*100 < withSpin*80 {
		t.Errorf("%d of %d spin stacks reach runtime.goexit/runtime.main, want >= 80%% (frame pointers)", spinToRoot, withSpin)
	}
	if st.Samples == 0 || st.Drained == 0 {
		t.Errorf("stats count no samples: %+v", st)
	}
}

func TestProcessEvents(t *testing.T) {
	s := newTestSampler(t, Config{})
	cmd := exec.Command("/bin/sleep", "0.1")
	if err := cmd.Run(); err != nil {
		t.Fatalf("run sleep: %v", err)
	}
	pid := uint32(cmd.Process.Pid)
	self := uint32(os.Getpid())

	seen := map[EventKind]ProcEvent{}
	// A deadline only so a broken sampler fails instead of hanging.
	deadline := time.After(10 * time.Second)
	for len(seen) < 3 {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				t.Fatal("events channel closed")
			}
			if ev.PID == pid {
				seen[ev.Kind] = ev
			}
		case <-deadline:
			t.Fatalf("saw only %v for pid %d", seen, pid)
		}
	}
	fork, execEv, exit := seen[EventFork], seen[EventExec], seen[EventExit]
	if fork.PPID != self {
		t.Errorf("fork ppid = %d, want %d", fork.PPID, self)
	}
	if execEv.Comm != "sleep" || exit.Comm != "sleep" {
		t.Errorf("exec comm %q, exit comm %q, want sleep", execEv.Comm, exit.Comm)
	}
	if execEv.PPID != self {
		t.Errorf("exec ppid = %d, want %d", execEv.PPID, self)
	}
	if execEv.Start == 0 || execEv.Start != exit.Start || fork.Start != execEv.Start {
		t.Errorf("start times differ or zero: fork %v exec %v exit %v", fork.Start, execEv.Start, exit.Start)
	}
	if fork.At > execEv.At || execEv.At > exit.At {
		t.Errorf("events out of order: fork %v exec %v exit %v", fork.At, execEv.At, exit.At)
	}
	// /proc/PID/stat starttime is in clock ticks (USER_HZ=100 on Linux).
	if got, want := int64(execEv.Start/(10*time.Millisecond)), procStartTicks(t, os.Getpid()); got < want {
		t.Errorf("child start %d ticks before parent's %d", got, want)
	}
}

// procStartTicks reads field 22 (starttime) of /proc/PID/stat.
func procStartTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the parenthesized comm; starttime is the 20th of those.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	v, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		t.Fatalf("parse starttime %q: %v", f[19], err)
	}
	return v
}

func TestDropsAreCounted(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		drop []DropReason
	}{
		// One bucket: any second distinct stack collides.
		{"tiny stack map", Config{Hz: 999, StackMapEntries: 1}, []DropReason{DropUserStackCollision, DropKernelStackCollision}},
		// Two keys: the spinner's varying stacks overflow it.
		{"tiny count map", Config{Hz: 999, CountMapEntries: 2}, []DropReason{DropCountMapFull}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSampler(t, tt.cfg)
			spinFor(500 * time.Millisecond)
			_, st, err := s.Drain()
			if err != nil {
				t.Fatalf("Drain: %v", err)
			}
			var got uint64
			for _, r := range tt.drop {
				got += st.Drops[r]
			}
			if got == 0 {
				t.Errorf("no %v drops counted: %+v", tt.drop, st)
			}
			// Stacks of lost samples must not linger in the drained buffer.
			var id uint32
			if err := s.stacks[1-s.active].NextKey(nil, &id); !errors.Is(err, ebpf.ErrKeyNotExist) {
				t.Errorf("drained stack map not empty: first key %d, err %v", id, err)
			}
		})
	}
}

func TestDrainFallbackMatchesBatch(t *testing.T) {
	for _, noBatch := range []bool{false, true} {
		s := newTestSampler(t, Config{Hz: 99})
		s.noBatch = noBatch
		spinFor(300 * time.Millisecond)
		samples, st, err := s.Drain()
		if err != nil {
			t.Fatalf("noBatch=%v: Drain: %v", noBatch, err)
		}
		var sum uint64
		for _, smp := range samples {
			sum += smp.Count
		}
		if sum == 0 || sum != st.Drained {
			t.Errorf("noBatch=%v: sum of counts %d, Stats.Drained %d", noBatch, sum, st.Drained)
		}
		// The map is empty afterwards except for what arrived since.
		again, _, err := s.Drain()
		if err != nil {
			t.Fatalf("noBatch=%v: second Drain: %v", noBatch, err)
		}
		if len(again) >= len(samples) && len(samples) > 10 {
			t.Errorf("noBatch=%v: second drain returned %d samples after %d: not deleted?", noBatch, len(again), len(samples))
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	testenv.Root(t, "CAP_BPF and CAP_PERFMON) to load eBPF programs")
	before := runtime.NumGoroutine()
	s := newTestSampler(t, Config{})
	if _, _, err := s.Drain(); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, ok := <-s.Events(); ok {
		// Buffered events may remain; drain them to see the close.
		for range s.Events() {
		}
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before New, %d after Close\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
	if _, _, err := s.Drain(); err == nil {
		t.Error("Drain after Close succeeded")
	}
}

// TestFrequentDrainsLoseNoStacks drains while a spinner runs at a high
// rate: double buffering must leave no sample pointing at a deleted stack.
func TestFrequentDrainsLoseNoStacks(t *testing.T) {
	s := newTestSampler(t, Config{Hz: 999})
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		spin(&stop)
		close(done)
	}()
	var own, ownWithUser uint64
	var st Stats
	for range 30 {
		time.Sleep(20 * time.Millisecond)
		samples, stats, err := s.Drain()
		if err != nil {
			t.Fatalf("Drain: %v", err)
		}
		st = stats
		var active uint32
		if err := s.objs.ActiveBuf.Get(&active); err != nil || active != s.active {
			t.Fatalf("kernel buffer %d (err %v), sampler thinks %d", active, err, s.active)
		}
		for _, smp := range samples {
			if smp.TGID == uint32(os.Getpid()) {
				own += smp.Count
				if len(smp.User) > 0 {
					ownWithUser += smp.Count
				}
			}
		}
	}
	stop.Store(true)
	<-done
	t.Logf("own samples %d, with user stack %d; stats %+v", own, ownWithUser, st)
	if st.Drops[DropStackMissing] != 0 {
		t.Errorf("%d samples referenced stacks missing at drain", st.Drops[DropStackMissing])
	}
	if lost := st.Drops[DropUserStackCollision] + st.Drops[DropUserStackFault] + st.Drops[DropUserStackError]; own-ownWithUser > lost {
		t.Errorf("%d own samples without a user stack, only %d user stack drops counted", own-ownWithUser, lost)
	}
	if st.Samples < st.Drained+st.DroppedSamples() {
		t.Errorf("samples %d < drained %d + dropped %d", st.Samples, st.Drained, st.DroppedSamples())
	}
}

// BenchmarkDrain measures one Drain (buffer switch, RCU wait, map reads)
// with the sampler running at 99 Hz on an otherwise idle test process.
func BenchmarkDrain(b *testing.B) {
	testenv.Root(b, "CAP_BPF and CAP_PERFMON) to load eBPF programs")
	s, err := New(Config{Hz: 99})
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	defer s.Close()
	var n int
	for b.Loop() {
		samples, _, err := s.Drain()
		if err != nil {
			b.Fatalf("Drain: %v", err)
		}
		n += len(samples)
	}
	b.ReportMetric(float64(n)/float64(b.N), "samples/op")
}

func TestSampleIdle(t *testing.T) {
	s := newTestSampler(t, Config{Hz: 999, SampleIdle: true})
	time.Sleep(300 * time.Millisecond) // idle CPUs, if the host has any
	samples, st, err := s.Drain()
	if err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if st.IdleSkipped != 0 {
		t.Errorf("idle samples skipped with SampleIdle: %+v", st)
	}
	for _, smp := range samples {
		if smp.PID == 0 && smp.User != nil {
			t.Errorf("idle sample with a user stack: %+v", smp)
		}
	}
}
