package agent

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/agent/ship/shiptest"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// Python agreement benchmark parameters.
const (
	// pyAgreeHz is the agent's rate: the production order of magnitude,
	// so the peak RSS reported is a realistic one.
	pyAgreeHz = 99
	// pyAgreeCPU is the CPU seconds the workload burns: ~1,000 samples at
	// pyAgreeHz, about 1.6 points of sampling noise on a 50% share.
	pyAgreeCPU = "10"
	// pyAgreeFlushes is how long to wait for the last samples after the
	// workload exits (the child agent flushes every second).
	pyAgreeFlushes = 3 * time.Second
)

// pyKnownShares are the shares of CPU testdata/pyshares.py spends in each
// function, in percent.
var pyKnownShares = map[string]float64{"pyshares.f50": 50, "pyshares.f30": 30, "pyshares.f15": 15, "pyshares.f05": 5}

// BenchmarkPythonAgreement runs testdata/pyshares.py (Debian's python3)
// under the real agent in a child process and compares the share of each
// Python function (the innermost Python frame of a sample) with the share
// of CPU the workload is built to spend in it. It reports the largest
// difference in points, and the agent's peak RSS and its CPU time as a
// fraction of its lifetime (startup included) while it profiles the Python
// workload with the rest of the host.
func BenchmarkPythonAgreement(b *testing.B) {
	needRoot(b)
	py := systemPython(b)
	srv := shiptest.NewServer()
	srv.Rows = rowsOf
	addr, err := srv.Serve("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	for b.Loop() {
		c := startChildAgent(b, addr, pyAgreeHz)
		t0 := time.Now()
		cmd := exec.CommandContext(context.Background(), py, "testdata/pyshares.py", pyAgreeCPU)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("pyshares.py: %v\n%s", err, out)
		}
		time.Sleep(pyAgreeFlushes)
		cpu, rss := c.stop(b)
		wall := time.Since(t0)
		pid := uint32(cmd.Process.Pid)
		stacks := storedStacks(b, srv.Stored(), func(l samplebatch.Labels) bool { return l.PID == pid })
		got, total := pythonShares(stacks, "pyshares.", pyKnownShares)
		var maxDiff float64
		var table strings.Builder
		fmt.Fprintf(&table, "%d samples in the workload's functions\n%-14s %7s %9s\n", total, "function", "known %", "agent %")
		names := make([]string, 0, len(pyKnownShares))
		for name := range pyKnownShares {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			maxDiff = max(maxDiff, math.Abs(got[name]-pyKnownShares[name]))
			fmt.Fprintf(&table, "%-14s %7.1f %9.2f\n", name, pyKnownShares[name], got[name])
		}
		b.Logf("\n%s", &table)
		b.ReportMetric(maxDiff, "max-share-diff-points")
		b.ReportMetric(float64(total), "python-samples")
		b.ReportMetric(float64(rss)/(1<<20), "agent-peak-rss-MiB")
		b.ReportMetric(cpu.Seconds()/wall.Seconds(), "agent-cpu-frac")
	}
}

// pythonShares returns, for the samples whose innermost Python frame (the
// last frame with prefix) is a key of known, the percentage of each name
// and how many samples that is.
func pythonShares(stacks map[string]int64, prefix string, known map[string]float64) (map[string]float64, int64) {
	counts := map[string]int64{}
	var total int64
	for s, n := range stacks {
		frames := strings.Split(s, ";")
		for j := len(frames) - 1; j >= 0; j-- {
			if !strings.HasPrefix(frames[j], prefix) {
				continue
			}
			if _, ok := known[frames[j]]; ok {
				counts[frames[j]] += n
				total += n
			}
			break
		}
	}
	out := map[string]float64{}
	for name, n := range counts {
		out[name] = 100 * float64(n) / float64(max(total, 1))
	}
	return out, total
}
