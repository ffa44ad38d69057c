package main

import (
	"math"
	"slices"
	"testing"
)

func TestChangeBuckets(t *testing.T) {
	knots := []knot{
		{At: 0, Frac: map[string]float64{"a": .5, "b": .5}},
		{At: 10, Frac: map[string]float64{"a": .6, "b": .4}},
		{At: 20, Frac: map[string]float64{"a": .6, "b": .4}},
		{At: 30, Frac: map[string]float64{"a": .6, "b": .2}, Linear: true},
	}
	tests := []struct {
		f    string
		want []int
	}{
		{"a", []int{10}},
		{"b", []int{10, 20, 30}},
	}
	for _, tt := range tests {
		if got := changeBuckets(knots, tt.f); !slices.Equal(got, tt.want) {
			t.Errorf("changeBuckets(%s) = %v, want %v", tt.f, got, tt.want)
		}
	}
	frac := []struct {
		x, b float64
	}{{5, .5}, {10, .4}, {25, .3}, {40, .2}}
	for _, tt := range frac {
		if got := fractionsAt(knots, tt.x)["b"]; math.Abs(got-tt.b) > 1e-9 {
			t.Errorf("fractionsAt(%v)[b] = %v, want %v", tt.x, got, tt.b)
		}
	}
}

func TestWorkMultipliers(t *testing.T) {
	tests := []struct {
		name string
		got  []float64
		want []float64
	}{
		{"steps", steps(5, []int{2, 4}, []float64{1.1, 1}), []float64{1, 1, 1.1, 1.1, 1}},
		{"ramp", ramp(5, 1, 3, 1.2), []float64{1, 1.1, 1.2, 1.2, 1.2}},
	}
	for _, tt := range tests {
		for i := range tt.want {
			if math.Abs(tt.got[i]-tt.want[i]) > 1e-9 {
				t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
				break
			}
		}
	}
}

// TestSchedules checks the recorded schedules: fractions sum to 1, every function is
// in every knot, and each kind has series in both halves.
func TestSchedules(t *testing.T) {
	held, total := 0, 0
	for _, w := range shareSchedule() {
		for _, k := range w.knots {
			sum := 0.0
			for f, v := range k.Frac {
				if workFuncs[f] == nil {
					t.Errorf("%s: no work function %s", w.service, f)
				}
				sum += v
			}
			if math.Abs(sum-1) > 1e-9 || len(k.Frac) != len(w.knots[0].Frac) {
				t.Errorf("%s knot %d: fractions %v", w.service, k.At, k.Frac)
			}
		}
		for f := range w.knots[0].Frac {
			total++
			if w.heldOut[f] {
				held++
			}
		}
	}
	for _, s := range benchSchedule() {
		total++
		if s.heldOut {
			held++
		}
	}
	if held*2 != total {
		t.Errorf("%d of %d bench and share series held out, want half", held, total)
	}
}
