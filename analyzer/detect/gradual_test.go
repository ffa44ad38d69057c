package detect

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// rampService is 3 days of 5-minute buckets: function "ramp" holds share base for
// flatHours, then rises linearly by rel over rampHours and stays; "flat" holds 0.2.
// Counts are binomial-like (normal approximation) around the shares. Buckets in gap
// have no samples (a host group down).
func rampService(seed uint64, base, rel float64, flatHours, rampHours int, gap [2]int) *Service {
	const n, perBucket = 3 * 24 * 12, 20000.0
	r := rand.New(rand.NewPCG(seed, seed))
	svc := &Service{Name: "svc", Cores: 10, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Step: 5 * time.Minute,
		Total: make([]float64, n)}
	ramp := Series{Function: "ramp", Inclusive: make([]float64, n), Self: make([]float64, n)}
	flat := Series{Function: "flat", Inclusive: make([]float64, n), Self: make([]float64, n)}
	draw := func(p float64) float64 {
		return math.Max(0, math.Round(perBucket*p+r.NormFloat64()*math.Sqrt(perBucket*p*(1-p))))
	}
	for i := range n {
		if i >= gap[0] && i < gap[1] {
			continue
		}
		h := float64(i) / 12
		p := base
		switch {
		case h >= float64(flatHours+rampHours):
			p = base * (1 + rel)
		case h >= float64(flatHours):
			p = base * (1 + rel*(h-float64(flatHours))/float64(rampHours))
		}
		svc.Total[i] = perBucket
		ramp.Inclusive[i] = draw(p)
		ramp.Self[i] = ramp.Inclusive[i] / 2
		flat.Inclusive[i] = draw(0.2)
		flat.Self[i] = flat.Inclusive[i] / 2
	}
	svc.Series = []Series{ramp, flat}
	return svc
}

func TestDetectGradual(t *testing.T) {
	tests := []struct {
		name     string
		rel      float64
		gap      [2]int
		wantRamp bool
	}{
		{"ramp +5% over a day", 0.05, [2]int{}, true},
		{"ramp with 3 h of missing buckets", 0.05, [2]int{400, 436}, true},
		{"no ramp", 0, [2]int{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const seeds = 10
			hits := 0
			for seed := range uint64(seeds) {
				svc := rampService(seed+1, 0.1, tt.rel, 24, 24, tt.gap)
				gs, err := DetectGradual(svc, DefaultGradualConfig(), DefaultTuning())
				if err != nil {
					t.Fatal(err)
				}
				var found bool
				for _, g := range gs {
					if g.Function != "ramp" {
						t.Errorf("seed %d: ramp on control %s: %+v", seed, g.Function, g)
						continue
					}
					f := g.Finding(svc)
					if err := f.Validate(); err != nil || f.Gradual == nil || !(f.Before.Lo < f.Before.Value && f.Before.Value < f.Before.Hi) ||
						!f.ChangeTime.Equal(g.StartTime) || f.PValue > DefaultConfig().ChangePoint.Alpha {
						t.Errorf("seed %d: finding of %+v: %+v (%v)", seed, g, f, err)
					}
					h := g.StartTime.Sub(svc.Start).Hours()
					if h >= 12 && h <= 30 && g.RelChange >= tt.rel/2 && g.RelChange <= tt.rel*2 {
						found = true
					}
				}
				if found {
					hits++
				}
				if seed == 0 && tt.wantRamp {
					fs, err := Detect(svc, DefaultConfig())
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("gradual: %+v; step detector: %d findings", gs, len(fs))
					for _, f := range fs {
						// A slow ramp is one gradual finding, no staircase of steps.
						t.Errorf("step finding %s %+.2f%% at %s", f.Function, 100*f.RelativeChange, f.ChangeTime)
					}
				}
			}
			t.Logf("ramp found in %d/%d seeds", hits, seeds)
			// The trend model sometimes prefers a staircase of levels for a ramp of
			// 24 points (two change points, no slope) or a part of it: known misses; a
			// hit starts within 12 h of the ramp and sizes it within 2×; 80% is the bar.
			if tt.wantRamp && hits < seeds*8/10 || !tt.wantRamp && hits > 0 {
				t.Errorf("ramp found in %d/%d seeds, want ramp %v", hits, seeds, tt.wantRamp)
			}
		})
	}
}
