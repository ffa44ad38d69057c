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

// TestLateRefreshes checks the bookkeeping of the ExecRefreshDelays
// re-reads: an exit stops the pending ones, the last one run drops the
// entry, and a process exiting in its exec's batch gets none.
func TestLateRefreshes(t *testing.T) {
	const pid = 5
	exec := sampler.ProcEvent{Kind: sampler.EventExec, PID: pid}
	exit := sampler.ProcEvent{Kind: sampler.EventExit, PID: pid}
	tests := []struct {
		name    string
		batches [][]sampler.ProcEvent
		run     int // re-reads run after the batches
		pending bool
	}{
		{"exec: both pending", [][]sampler.ProcEvent{{exec}}, 0, true},
		{"one run, one pending", [][]sampler.ProcEvent{{exec}}, 1, true},
		{"both run", [][]sampler.ProcEvent{{exec}}, 2, false},
		{"exit stops them", [][]sampler.ProcEvent{{exec}, {exit}}, 0, false},
		{"exit in the exec's batch: none", [][]sampler.ProcEvent{{exec, exit}}, 0, false},
		{"pid reused in one batch: the new image's pending", [][]sampler.ProcEvent{{exec}, {exit, exec}}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, freeAddr(t), t.TempDir())
			cfg.Unwind.ProcRoot = fakeProcRoot(t, pid)
			// Never due during the test: the test runs them itself.
			cfg.FlushInterval = 2 * time.Hour
			cfg.ExecRefreshDelays = []time.Duration{time.Hour, 2 * time.Hour}
			a, _, _ := newTestAgent(t, cfg)
			var timers []*time.Timer
			for _, b := range tt.batches {
				a.handleEvents(b)
				if lr := a.lateTimers[pid]; lr != nil {
					timers = lr.timers
				}
			}
			for range tt.run {
				a.refreshLate(pid)
			}
			if _, ok := a.lateTimers[pid]; ok != tt.pending {
				t.Errorf("re-reads pending %v, want %v", ok, tt.pending)
			}
			if !tt.pending && tt.run == 0 {
				for i, tm := range timers {
					if tm.Stop() {
						t.Errorf("timer %d was still running", i)
					}
				}
			}
			for _, tm := range timers {
				tm.Stop()
			}
		})
	}
}
