package agent

import (
	"context"
	"os/exec"
	"slices"
	"testing"

	"github.com/fleetprof/fleetprof/agent/sampler"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// unwindCostFixture is the workload of BenchmarkUnwindCost: qsort's
// comparator called from Debian's libc (no frame pointers), so the
// table-driven walk does real work.
const unwindCostFixture = "qsort-libc"

// BenchmarkUnwindCost measures do_sample's in-kernel time per sample
// (kernel.bpf_stats_enabled, tail calls included) with table-driven
// unwinding and with frame pointers only (sampler.Config.FramePointersOnly),
// the real agent profiling the host at fidelityHz while the qsort fixture
// runs, the two modes alternating in order each iteration. The run stats
// cover every sample on the host, so the workload's share of them is
// reported too, with the share of its comparator samples that reach main
// through libc in each mode.
func BenchmarkUnwindCost(b *testing.B) {
	needRoot(b)
	stats, err := sampler.EnableRunTimeStats()
	if err != nil {
		testenv.Skip(b, testenv.KernelFeature, "bpf run-time stats: %v", err)
	}
	defer stats.Close()
	i := slices.IndexFunc(nativeFixtures, func(fx nativeFixture) bool { return fx.name == unwindCostFixture })
	w := fixtureWorkload(b, nativeFixtures[i], b.TempDir())
	modes := []struct {
		name   string
		fpOnly bool
	}{{"tables", false}, {"fp", true}}
	type result struct {
		run      sampler.ProgramStats
		workload int64            // samples of the workload process
		stacks   map[string]int64 // its stacks
	}
	res := make([]result, len(modes))
	round := 0
	for b.Loop() {
		for k := range modes {
			m := (k + round) % len(modes)
			a := startComparisonAgent(b, fidelityHz, modes[m].fpOnly)
			s, ok := a.src.(*sampler.Sampler)
			if !ok {
				b.Fatalf("agent source is %T", a.src)
			}
			read := func() sampler.ProgramStats {
				st, err := s.SampleProgramStats()
				if err != nil {
					b.Fatal(err)
				}
				return st
			}
			var st0 sampler.ProgramStats
			pid := runFed(b, a, exec.CommandContext(context.Background(), w.argv[0], w.argv[1:]...), false, w, func() { st0 = read() })
			run := read().Sub(st0)
			flushDelivered(b, a)
			a.stop()
			r := &res[m]
			r.run.Runs += run.Runs
			r.run.RunTime += run.RunTime
			if r.stacks == nil {
				r.stacks = map[string]int64{}
			}
			for st, n := range storedStacks(b, a.srv.Stored(), func(l samplebatch.Labels) bool { return l.PID == pid && l.Comm == w.name }) {
				r.stacks[st] += n
				r.workload += n
			}
		}
		round++
	}
	for m, mode := range modes {
		r := res[m]
		chain := chainShare(r.stacks, w.leaf, w.chain)
		b.ReportMetric(float64(r.run.PerRun().Nanoseconds()), "ns/sample-"+mode.name)
		b.ReportMetric(chain, "chain-pct-"+mode.name)
		b.ReportMetric(100*float64(r.workload)/float64(max(r.run.Runs, 1)), "workload-pct-"+mode.name)
		b.Logf("%-6s %d samples on the host, %v each in the kernel; %d of the workload, %.1f%% of its %s samples with %s",
			mode.name, r.run.Runs, r.run.PerRun(), r.workload, chain, w.leaf[1:], w.chain)
	}
}
