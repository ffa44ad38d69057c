package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// loadSamples is the length of the load recording; loadToggles the sample indices
// at which the extra load is started (even positions) and stopped (odd ones).
const loadSamples = 120

var loadToggles = []int{20, 40, 70, 80, 95, 105}

// recordLoad samples /proc/loadavg every interval while one CPU-bound process under
// SCHED_IDLE (`chrt --idle 0`: it only takes otherwise idle cycles but is always
// runnable, so it adds about 1 to the load) runs during the toggled windows.
func recordLoad(ctx context.Context, every time.Duration) ([]Series, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("own executable: %w", err)
	}
	var spinner *exec.Cmd
	stopSpinner := func() {
		if spinner != nil {
			_ = spinner.Process.Kill()
			_ = spinner.Wait()
			spinner = nil
		}
	}
	defer stopSpinner()
	avg1 := make([]*float64, 0, loadSamples)
	avg5 := make([]*float64, 0, loadSamples)
	start := time.Now().UTC()
	logf("load: %d samples every %s, extra load toggled at %v", loadSamples, every, loadToggles)
	next := time.Now()
	for i := range loadSamples {
		for j, at := range loadToggles {
			if i != at {
				continue
			}
			if j%2 == 0 {
				spinner = exec.CommandContext(ctx, "chrt", "--idle", "0", self, "spin")
				if err := spinner.Start(); err != nil {
					return nil, fmt.Errorf("start extra load: %w", err)
				}
			} else {
				stopSpinner()
			}
		}
		next = next.Add(every)
		if !sleepUntil(ctx, next) {
			return nil, fmt.Errorf("load interrupted: %w", ctx.Err())
		}
		a1, a5, err := readLoadavg()
		if err != nil {
			return nil, err
		}
		avg1, avg5 = append(avg1, val(a1)), append(avg5, val(a5))
	}
	prov := fmt.Sprintf("sampled every %s for %d samples from %s; one extra CPU-bound process (chrt --idle 0) started at samples %d, %d, %d and stopped at %d, %d, %d (the sample taken %s after the switch is the first of the new segment)",
		every, loadSamples, start.Format(time.RFC3339), loadToggles[0], loadToggles[2], loadToggles[4], loadToggles[1], loadToggles[3], loadToggles[5], every)
	lic := "CC0 (recorded by the fleetprof project)"
	return []Series{
		{Name: "load-avg1", License: lic, Values: avg1, Annotations: map[string][]int{annotator: loadToggles}, Provenance: "1-minute load average (/proc/loadavg) " + prov},
		{Name: "load-avg5", License: lic, Values: avg5, Annotations: map[string][]int{annotator: loadToggles}, HeldOut: true, Provenance: "5-minute load average (/proc/loadavg) " + prov},
	}, nil
}

func readLoadavg() (float64, float64, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, 0, fmt.Errorf("read loadavg: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("parse loadavg %q", b)
	}
	a1, err1 := strconv.ParseFloat(f[0], 64)
	a5, err5 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err5 != nil {
		return 0, 0, fmt.Errorf("parse loadavg %q", b)
	}
	return a1, a5, nil
}

// spin is the extra load: one thread busy until killed.
func spin() {
	x := uint64(1)
	for {
		x = x*6364136223846793005 + 1
		if x == 0 {
			fmt.Println(x)
		}
	}
}
