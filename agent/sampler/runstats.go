package sampler

import (
	"fmt"
	"io"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ProgramStats is the kernel's run-time accounting of the perf-event
// program (do_sample, its tail calls included: they run inside its
// invocation). The kernel counts only while BPF run-time statistics are
// on (EnableRunTimeStats, or sysctl kernel.bpf_stats_enabled=1).
type ProgramStats struct {
	Runs    uint64        // invocations, one per perf sample
	RunTime time.Duration // total time inside them
}

// Sub returns the runs and run time between an earlier reading and s.
func (s ProgramStats) Sub(earlier ProgramStats) ProgramStats {
	return ProgramStats{Runs: s.Runs - earlier.Runs, RunTime: s.RunTime - earlier.RunTime}
}

// PerRun is the mean in-kernel time per sample, zero without runs.
func (s ProgramStats) PerRun() time.Duration {
	if s.Runs == 0 {
		return 0
	}
	return s.RunTime / time.Duration(s.Runs)
}

// SampleProgramStats reads the perf-event program's cumulative run count
// and run time.
func (s *Sampler) SampleProgramStats() (ProgramStats, error) {
	st, err := s.objs.DoSample.Stats()
	if err != nil {
		return ProgramStats{}, fmt.Errorf("read do_sample run stats: %w", err)
	}
	return ProgramStats{Runs: st.RunCount, RunTime: st.Runtime}, nil
}

// EnableRunTimeStats turns on the kernel's BPF run-time statistics until
// the returned Closer is closed. They cost two clock reads per program run,
// so they are for measurement, not production.
func EnableRunTimeStats() (io.Closer, error) {
	c, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return nil, fmt.Errorf("enable bpf run-time stats: %w", err)
	}
	return c, nil
}
