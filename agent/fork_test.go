package agent

import (
	"slices"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/agent/sampler"
)

// TestForkReadDelay checks when a queued fork child is due, and that one
// that execs before then is read once, as the new image.
func TestForkReadDelay(t *testing.T) {
	cfg := testConfig(t, freeAddr(t), t.TempDir())
	cfg.ForkReadDelay = 10 * time.Millisecond
	cfg.Unwind.ProcRoot = fakeProcRoot(t, 5, 6)
	a, _, sym := newTestAgent(t, cfg)
	a.handleEvents([]sampler.ProcEvent{{Kind: sampler.EventFork, PID: 5}, {Kind: sampler.EventFork, PID: 6}})
	at := a.forkSet[5]
	for _, tc := range []struct {
		after  time.Duration
		wait   time.Duration
		queued bool
	}{
		{0, 10 * time.Millisecond, true},
		{4 * time.Millisecond, 6 * time.Millisecond, true},
		{10 * time.Millisecond, 0, true},
	} {
		if wait, queued := a.forkWait(at.Add(tc.after)); wait != tc.wait || queued != tc.queued {
			t.Errorf("%v after the fork: wait %v queued %v, want %v %v", tc.after, wait, queued, tc.wait, tc.queued)
		}
	}
	a.handleEvents([]sampler.ProcEvent{{Kind: sampler.EventExec, PID: 5}})
	for len(a.forks) > 0 {
		a.startOneFork()
	}
	if _, queued := a.forkWait(time.Now()); queued {
		t.Error("fork queue not empty")
	}
	if started, _ := sym.calls(); !slices.Equal(started, []uint32{5, 6}) {
		t.Errorf("started %v, want [5 6]: the exec'd child once, the other fork child once", started)
	}
}
