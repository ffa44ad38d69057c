package evaluate

import (
	"math"
	"strings"
	"testing"

	"github.com/fleetprof/fleetprof/analyzer/changepoint"
)

func TestF1Cover(t *testing.T) {
	tests := []struct {
		name      string
		ann       map[string][]int
		pred      []int
		n         int
		f1, cover float64
	}{
		{"exact", map[string][]int{"a": {50}}, []int{50}, 100, 1, 1},
		{"within margin", map[string][]int{"a": {50}}, []int{54}, 100, 1, (50*50.0/54 + 50*46.0/50) / 100},
		{"outside margin", map[string][]int{"a": {50}}, []int{56}, 100, 0.5, (50*50.0/56 + 50*44.0/50) / 100},
		{"nothing annotated, nothing found", map[string][]int{"a": {}, "b": {}}, nil, 100, 1, 1},
		{"one extra", map[string][]int{"a": {}}, []int{50}, 100, 2 * 0.5 / 1.5, 0.5},
		// precision 2/2 against the union; recall (2/2 + 1/2)/2.
		{"two annotators", map[string][]int{"a": {50}, "b": {80}}, []int{50}, 100, 2 * 0.75 / 1.75, (1 + (80*50.0/80+20*20.0/50)/100) / 2},
	}
	for _, tt := range tests {
		f1 := F1(tt.ann, tt.pred, ScoreMargin)
		cover := Cover(tt.ann, tt.pred, tt.n)
		if math.Abs(f1-tt.f1) > 1e-9 || math.Abs(cover-tt.cover) > 1e-9 {
			t.Errorf("%s: F1 %.4f cover %.4f, want %.4f %.4f", tt.name, f1, cover, tt.f1, tt.cover)
		}
	}
}

func TestBaselines(t *testing.T) {
	xs := make([]float64, 120)
	for i := range xs {
		xs[i] = math.Sin(float64(i*i)) * 0.3 // deterministic noise
		if i >= 60 {
			xs[i] += 5
		}
	}
	xs[7] = math.NaN()
	for _, m := range []Method{{"binseg", BinSeg}, {"pelt", PELT}} {
		cps, err := m.Detect(xs)
		if err != nil || len(cps) != 1 || cps[0] != 60 {
			t.Errorf("%s: %v %v, want [60]", m.Name, cps, err)
		}
	}
}

// fleetprofMethod is `fleetprof changepoints` with its defaults.
func fleetprofMethod(cfg changepoint.Config) func([]float64) ([]int, error) {
	return func(xs []float64) ([]int, error) {
		cps, err := changepoint.Detect(xs, cfg)
		if err != nil {
			return nil, err
		}
		out := make([]int, len(cps))
		for i, c := range cps {
			out[i] = c.Index
		}
		return out, nil
	}
}

// realSets are the labeled sets TestRealSeries scores: public series with human
// annotations, and series recorded on this machine with interventions at known times
// (scripts/recordseries).
var realSets = []struct{ name, path string }{
	{"TCPD", "testdata/tcpd.json"},
	{"recorded", "testdata/recorded.json"},
}

// TestRealSeries scores the change-point core against every real set, next to binary
// segmentation and PELT. Held-out figures are the ones reported; tuning ones are what
// defaults were chosen on.
func TestRealSeries(t *testing.T) {
	methods := []Method{
		{"fleetprof changepoints (defaults)", fleetprofMethod(changepoint.DefaultConfig())},
		{"fleetprof changepoints --trend", fleetprofMethod(changepoint.TrendConfig())},
		{"binary segmentation", BinSeg},
		{"PELT", PELT},
	}
	for _, set := range realSets {
		series, err := LoadLabeled(set.path)
		if err != nil {
			t.Fatal(err)
		}
		checkLabeled(t, set.name, series)
		parts := []struct {
			name string
			keep func(LabeledSeries) bool
		}{
			{"tuning", func(s LabeledSeries) bool { return !s.HeldOut }},
			{"held-out", func(s LabeledSeries) bool { return s.HeldOut }},
			{"all", func(LabeledSeries) bool { return true }},
		}
		// Recorded series also by kind (bench-, share-, load-), all of them.
		if set.name == "recorded" {
			for _, kind := range []string{"bench-", "share-", "load-"} {
				parts = append(parts, struct {
					name string
					keep func(LabeledSeries) bool
				}{"all " + kind + "*", func(s LabeledSeries) bool { return strings.HasPrefix(s.Name, kind) }})
			}
		}
		for _, part := range parts {
			scores := ScoreMethods(series, methods, part.keep)
			t.Logf("%s, %s series:\n%s", set.name, part.name, ScoreTable(scores))
			if scores[0].Failed > 0 {
				t.Errorf("%s %s: fleetprof failed on %d series", set.name, part.name, scores[0].Failed)
			}
		}
		if testing.Verbose() {
			for _, s := range series {
				line := "  truth:" + fmtInts(annotationUnion(s.Annotations))
				for _, m := range methods {
					cps, _ := m.Detect(s.Values)
					line += "  " + m.Name[:4] + ":" + fmtInts(cps)
				}
				t.Logf("%-34s n=%3d %s", s.Name, len(s.Values), line)
			}
		}
	}
}

// checkLabeled fails on a set that cannot report a figure: a half empty, or an
// annotation outside its series.
func checkLabeled(t *testing.T, set string, series []LabeledSeries) {
	t.Helper()
	held := 0
	for _, s := range series {
		if s.HeldOut {
			held++
		}
		for a, cps := range s.Annotations {
			for _, c := range cps {
				if c < 0 || c >= len(s.Values) {
					t.Errorf("%s %s: annotator %s marks %d outside [0, %d)", set, s.Name, a, c, len(s.Values))
				}
			}
		}
	}
	if held == 0 || held == len(series) {
		t.Errorf("%s: %d of %d series held out, want both halves", set, held, len(series))
	}
}

func annotationUnion(ann map[string][]int) []int {
	var out []int
	for _, a := range ann {
		out = append(out, a...)
	}
	return withZero(out)[1:]
}

func fmtInts(xs []int) string {
	s := "["
	for i, x := range xs {
		if i > 0 {
			s += ","
		}
		s += itoa(x)
	}
	return s + "]"
}

func itoa(x int) string {
	if x == 0 {
		return "0"
	}
	var b []byte
	for ; x > 0; x /= 10 {
		b = append([]byte{byte('0' + x%10)}, b...)
	}
	return string(b)
}
