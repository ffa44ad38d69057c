package detect

import (
	"slices"
	"testing"
	"time"
)

// A function's self rise folded into its inclusive one is reported with the self
// size (inclusive beside it) when it explains the rise, as the inclusive rise when
// callees rose too.
func TestSelfSizeReported(t *testing.T) {
	svc := &Service{Name: "s", Cores: 10, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Step: time.Minute, Total: make([]float64, 10)}
	inc := func(selfAbs float64) *candidate {
		c := &candidate{fn: "pkg.F", change: 5, lo: 0, hi: 10, before: estimate{P: 0.1, SE: 1e-4}, after: estimate{P: 0.11, SE: 1e-4},
			abs: 0.01, rel: 0.1, p: 1e-9, filters: []string{StageSignificance}}
		if selfAbs > 0 {
			c.selfPart = &candidate{fn: "pkg.F", self: true, before: estimate{P: 0.05, SE: 1e-4}, after: estimate{P: 0.05 + selfAbs, SE: 1e-4},
				abs: selfAbs, rel: selfAbs / 0.05, p: 1e-8}
		}
		return c
	}
	tests := []struct {
		name     string
		c        *candidate
		wantSelf bool
		wantAbs  float64
	}{
		{"no self rise", inc(0), false, 0.01},
		{"self explains the rise", inc(0.009), true, 0.009},
		{"callees rose too", inc(0.004), false, 0.01},
	}
	cfg := DefaultConfig()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.c.finding(svc, cfg)
			self := slices.Contains(f.FiltersPassed, FilterSelfShare)
			if self != tt.wantSelf || f.AbsoluteChange != tt.wantAbs || (f.InclusiveBefore != nil) != tt.wantSelf {
				t.Fatalf("finding %+v: self %v, want %v, abs %v", f, self, tt.wantSelf, tt.wantAbs)
			}
			if tt.wantSelf && (f.Before.Value != 0.05 || f.InclusiveAfter.Value != 0.11 || f.EstimatedCores != tt.wantAbs*svc.Cores || f.PValue != 1e-8) {
				t.Errorf("self finding %+v, inclusive after %+v", f, f.InclusiveAfter)
			}
		})
	}
}
