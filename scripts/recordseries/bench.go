package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// benchSeries is one benchmark history: which kernel, how many runs, the work
// multiplier of each run and the run indices where the work changed.
type benchSeries struct {
	name    string
	kernel  func(b *testing.B, reps int)
	work    []float64
	changes []int
	heldOut bool
	what    string
}

// benchBase is the kernel repetitions of one op at multiplier 1, large enough that
// +3% is 6 repetitions.
const benchBase = 200

// steps is n runs at multiplier 1, switched to mults[i] at run at[i].
func steps(n int, at []int, mults []float64) []float64 {
	w := make([]float64, n)
	m := 1.0
	for i := range w {
		for j, a := range at {
			if i == a {
				m = mults[j]
			}
		}
		w[i] = m
	}
	return w
}

// ramp is n runs at 1, rising linearly to top between runs from and to, then at top.
func ramp(n, from, to int, top float64) []float64 {
	w := make([]float64, n)
	for i := range w {
		switch {
		case i < from:
			w[i] = 1
		case i >= to:
			w[i] = top
		default:
			w[i] = 1 + (top-1)*float64(i-from+1)/float64(to-from)
		}
	}
	return w
}

func benchSchedule() []benchSeries {
	return []benchSeries{
		{"bench-sha256-step3", kernelSHA, steps(120, []int{60}, []float64{1.03}), []int{60}, false, "+3% work at run 60"},
		{"bench-sort-step3", kernelSort, steps(120, []int{70}, []float64{1.03}), []int{70}, true, "+3% work at run 70"},
		{"bench-map-step20", kernelMap, steps(100, []int{50}, []float64{1.20}), []int{50}, false, "+20% work at run 50"},
		{"bench-sort-step8-revert", kernelSort, steps(120, []int{40, 85}, []float64{1.08, 1}), []int{40, 85}, true, "+8% work at run 40, reverted at run 85"},
		{"bench-sha256-ramp20", kernelSHA, ramp(120, 40, 80, 1.20), []int{40, 80}, false, "work ramps linearly from +0% to +20% over runs 40-79, then stays"},
		{"bench-map-multi", kernelMap, steps(120, []int{30, 60, 90}, []float64{1.08, 1.20, 1}), []int{30, 60, 90}, true, "+8% work at run 30, +20% at run 60, reverted at run 90"},
		{"bench-sort-null", kernelSort, steps(100, nil, nil), nil, false, "no change"},
		{"bench-sha256-step8", kernelSHA, steps(100, []int{45}, []float64{1.08}), []int{45}, true, "+8% work at run 45"},
	}
}

var benchSink uint64

// cpuMetric is the benchmark metric of the thread CPU time per op, next to ns/op (wall
// time, which on this host mostly measures how long the run waited for a core).
const cpuMetric = "cpu-ns/op"

// cpuPerOp pins the benchmark goroutine to its thread and returns the function that
// reports the thread's CPU time per op.
func cpuPerOp(b *testing.B) func() {
	runtime.LockOSThread()
	start := threadCPU()
	return func() {
		b.ReportMetric(float64(threadCPU()-start)/float64(b.N), cpuMetric)
		runtime.UnlockOSThread()
	}
}

func threadCPU() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(fmt.Sprintf("thread CPU clock: %v", err))
	}
	return ts.Nano()
}

func kernelSHA(b *testing.B, reps int) {
	buf := make([]byte, 1024)
	for i := range buf {
		buf[i] = byte(i)
	}
	defer cpuPerOp(b)()
	for b.Loop() {
		for r := range reps {
			buf[0] = byte(r)
			s := sha256.Sum256(buf)
			benchSink += uint64(s[0])
		}
	}
}

func kernelSort(b *testing.B, reps int) {
	src := make([]int, 64)
	rng := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // fixed benchmark input, not a secret
	for i := range src {
		src[i] = rng.Int()
	}
	xs := make([]int, len(src))
	defer cpuPerOp(b)()
	for b.Loop() {
		for range reps {
			copy(xs, src)
			sort.Ints(xs)
			benchSink += uint64(xs[0])
		}
	}
}

func kernelMap(b *testing.B, reps int) {
	defer cpuPerOp(b)()
	for b.Loop() {
		for r := range reps {
			m := make(map[int]int, 8)
			for k := range 16 {
				m[k*r] = k
			}
			benchSink += uint64(len(m))
		}
	}
}

// recordBench runs the schedule's series round-robin (run i of every series, then
// run i+1), so all histories share the same stretch of host noise.
func recordBench(ctx context.Context, benchTime time.Duration) ([]Series, error) {
	testing.Init()
	if err := flag.Set("test.benchtime", benchTime.String()); err != nil {
		return nil, fmt.Errorf("set benchtime: %w", err)
	}
	sched := benchSchedule()
	// out[2i] is series i's CPU time per op, out[2i+1] its wall time per op.
	out := make([]Series, 2*len(sched))
	longest := 0
	for i, s := range sched {
		longest = max(longest, len(s.work))
		ann := slices.Clone(s.changes)
		if ann == nil {
			ann = []int{}
		}
		for j, suffix := range []string{"", "-wall"} {
			out[2*i+j] = Series{
				Name:        s.name + suffix,
				License:     "CC0 (recorded by the fleetprof project)",
				Annotations: map[string][]int{annotator: ann},
				HeldOut:     s.heldOut,
			}
		}
	}
	start := time.Now().UTC()
	logf("bench: %d series, up to %d runs each, benchtime %s", len(sched), longest, benchTime)
	for run := range longest {
		for i, s := range sched {
			if run >= len(s.work) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("bench interrupted: %w", err)
			}
			reps := int(math.Round(benchBase * s.work[run]))
			r := testing.Benchmark(func(b *testing.B) { s.kernel(b, reps) })
			if r.N == 0 {
				return nil, fmt.Errorf("benchmark %s run %d did not run", s.name, run)
			}
			out[2*i].Values = append(out[2*i].Values, val(r.Extra[cpuMetric]))
			out[2*i+1].Values = append(out[2*i+1].Values, val(float64(r.T.Nanoseconds())/float64(r.N)))
		}
		if run%20 == 19 {
			logf("bench: run %d done", run+1)
		}
	}
	end := time.Now().UTC()
	logf("bench: done (checksum %d)", benchSink)
	for i, s := range sched {
		what := fmt.Sprintf("of %d runs of a Go benchmark (testing.Benchmark, benchtime %s, %d kernel repetitions per op at the base), %s; runs of all bench-* series interleaved, %s to %s",
			len(s.work), benchTime, benchBase, s.what, start.Format(time.RFC3339), end.Format(time.RFC3339))
		out[2*i].Provenance = "thread CPU time per op (the benchmark's " + cpuMetric + " metric, CLOCK_THREAD_CPUTIME_ID) " + what
		out[2*i+1].Provenance = "wall ns/op " + what
	}
	return out, nil
}
