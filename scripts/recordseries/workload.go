package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"time"
)

// knot is a point of a workload schedule: from bucket At on, each function gets
// Frac of the busy time; Linear means the fractions ramp linearly from the previous
// knot's to these over the buckets between them instead of stepping at At.
type knot struct {
	At     int                `json:"at"`
	Frac   map[string]float64 `json:"frac"`
	Linear bool               `json:"linear,omitempty"`
}

// fractionsAt returns the busy-time fractions at bucket position x (fractional).
func fractionsAt(knots []knot, x float64) map[string]float64 {
	k := 0
	for k+1 < len(knots) && float64(knots[k+1].At) <= x {
		k++
	}
	if k+1 < len(knots) && knots[k+1].Linear {
		a, b := knots[k], knots[k+1]
		t := (x - float64(a.At)) / float64(b.At-a.At)
		out := map[string]float64{}
		for f, v := range a.Frac {
			out[f] = v + (b.Frac[f]-v)*t
		}
		return out
	}
	return knots[k].Frac
}

// changeBuckets is the buckets where function f's fraction changes: a step's
// bucket, or the first and last bucket of a ramp.
func changeBuckets(knots []knot, f string) []int {
	var out []int
	for k := 1; k < len(knots); k++ {
		if knots[k].Frac[f] == knots[k-1].Frac[f] {
			continue
		}
		if knots[k].Linear && (len(out) == 0 || out[len(out)-1] != knots[k-1].At) {
			out = append(out, knots[k-1].At)
		}
		out = append(out, knots[k].At)
	}
	return out
}

// Busy functions of the workloads. Each spins in its own loop (not a shared helper)
// so its samples are its self time. Work is counted in iterations, not time, so a
// function's share of CPU does not depend on when the busy host preempts it.
var workFuncs = map[string]func(int){
	"parseRecords":  parseRecords,
	"hashKeys":      hashKeys,
	"compressBlock": compressBlock,
	"encodeJSON":    encodeJSON,
	"scanIndex":     scanIndex,
	"mergeRuns":     mergeRuns,
	"checksum":      checksum,
	"formatRows":    formatRows,
}

var workSink uint64

const chunk = 20000

//go:noinline
func parseRecords(iters int) {
	x := workSink | 1
	for range iters / chunk {
		for i := range chunk {
			x = x*6364136223846793005 + uint64(i)
		}
	}
	workSink += x
}

//go:noinline
func hashKeys(iters int) {
	x := workSink | 3
	for range iters / chunk {
		for i := range chunk {
			x ^= x << 13
			x ^= x >> 7
			x ^= x<<17 + uint64(i)
		}
	}
	workSink += x
}

//go:noinline
func compressBlock(iters int) {
	x, y := workSink|5, uint64(7)
	for range iters / chunk {
		for range chunk {
			x, y = y, x+y*31
		}
	}
	workSink += x ^ y
}

//go:noinline
func encodeJSON(iters int) {
	var x uint32 = 0x811c9dc5
	for range iters / chunk {
		for i := range chunk {
			x = (x ^ uint32(i)) * 16777619
		}
	}
	workSink += uint64(x)
}

//go:noinline
func scanIndex(iters int) {
	x := workSink | 9
	for range iters / chunk {
		for i := range chunk {
			x = x*2862933555777941757 + 3037000493 + uint64(i&7)
		}
	}
	workSink += x
}

//go:noinline
func mergeRuns(iters int) {
	a, b := workSink|11, uint64(13)
	for range iters / chunk {
		for range chunk {
			if a < b {
				a += b >> 3
			} else {
				b += a >> 5
			}
		}
	}
	workSink += a + b
}

//go:noinline
func checksum(iters int) {
	var s1, s2 uint32 = 1, 0
	for range iters / chunk {
		for i := range chunk {
			s1 = (s1 + uint32(i)) % 65521
			s2 = (s2 + s1) % 65521
		}
	}
	workSink += uint64(s2<<16 | s1)
}

//go:noinline
func formatRows(iters int) {
	x := float64(workSink%97) + 1.5
	for range iters / chunk {
		for range chunk {
			x = x*1.0000001 + 0.5
			if x > 1e12 {
				x = math.Sqrt(x)
			}
		}
	}
	workSink += uint64(x)
}

// Duty cycle of a workload: workIters loop iterations (about 20 ms of one core),
// then a sleep of workSleep plus up to as much again at random, so the cycle does not
// alias with the agent's sampling period: about 0.2 core on an idle host.
const (
	workIters = 16_000_000
	workSleep = 60 * time.Millisecond
)

// runWorkload is the child process: it follows a schedule from a start time for a
// number of buckets, spending each period's busy time across the functions.
func runWorkload(args []string) error {
	fs := flag.NewFlagSet("workload", flag.ContinueOnError)
	schedule := fs.String("schedule", "", "JSON schedule (knots)")
	start := fs.Int64("start", 0, "Unix second of bucket 0")
	bucket := fs.Duration("bucket", 20*time.Second, "bucket")
	buckets := fs.Int("buckets", 0, "buckets to run")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	var knots []knot
	if err := json.Unmarshal([]byte(*schedule), &knots); err != nil || len(knots) == 0 {
		return fmt.Errorf("decode schedule %q: %w", *schedule, err)
	}
	runtime.GOMAXPROCS(1)
	t0 := time.Unix(*start, 0)
	end := t0.Add(time.Duration(*buckets) * *bucket)
	names := sortedKeys(knots[0].Frac)
	for {
		now := time.Now()
		if !now.Before(end) {
			return nil
		}
		x := math.Max(0, float64(now.Sub(t0))/float64(*bucket))
		frac := fractionsAt(knots, x)
		for _, f := range names {
			workFuncs[f](int(frac[f] * workIters))
		}
		time.Sleep(workSleep + rand.N(workSleep)) //nolint:gosec // jitter, not a secret
	}
}
