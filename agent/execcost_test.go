package agent

import (
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/agent/sampler"
	"github.com/fleetprof/fleetprof/agent/sampler/samplertest"
	"github.com/fleetprof/fleetprof/agent/ship"
	"github.com/fleetprof/fleetprof/agent/symbolize"
	"github.com/fleetprof/fleetprof/internal/testenv"
)

// execProcs is how many live processes BenchmarkExecEvent cycles through.
const execProcs = 32

// BenchmarkExecEvent measures the agent's user-space work for one exec'd
// process, the part of BenchmarkAgentCPU's churn cost that does not depend
// on what else the host runs: the exec event handled as the event loop
// handles it (maps, Python detection, walker mappings, symbolizer objects,
// labels) plus the two late refreshes (ExecRefreshDelays) and the exit,
// with the real symbolizer and unwind loader on the fake kernel side. The
// processes are live `sleep`s (a dynamically linked Debian binary), each
// announced as a new process every time (the symbolizer forgets exited
// processes at once), so every iteration looks its files up as a new
// process's would. ns/op is per exec'd process.
func BenchmarkExecEvent(b *testing.B) {
	sleep := testenv.LookPath(b, "sleep", "coreutils")
	var pids []uint32
	for range execProcs {
		cmd := exec.CommandContext(context.Background(), sleep, "1000")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
		})
		pids = append(pids, uint32(cmd.Process.Pid))
	}
	time.Sleep(100 * time.Millisecond) // past the dynamic loader: libc mapped
	sym, err := symbolize.New(symbolize.Config{ExitGrace: time.Nanosecond})
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{
		Aggregator: "127.0.0.1:1", Hz: 19, SpoolDir: b.TempDir(), NodeName: "bench",
		MetricsAddr: MetricsOff, Kube: KubeOff, Ship: ship.Config{},
		// Late refreshes are run by the loop below, not by timers.
		FlushInterval: time.Hour, ExecRefreshDelays: []time.Duration{time.Hour},
	}
	cfg.Unwind.CacheDir = "off"
	a, err := New(cfg, samplertest.New(16), sym)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := processCPU(b)
	i := 0
	for b.Loop() {
		pid := pids[i%len(pids)]
		i++
		a.handleEvents([]sampler.ProcEvent{{Kind: sampler.EventExec, PID: pid}})
		a.refreshLate(pid)
		a.refreshLate(pid)
		a.handleEvents([]sampler.ProcEvent{{Kind: sampler.EventExit, PID: pid}})
	}
	// CPU rather than wall time: on a shared host the loop waits for a
	// core much of the time.
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(i), "cpu-us/op")
}

// processCPU is this process's user+system CPU time so far (GC included).
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
