package evaluate

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
)

// LabeledSeries is one real-world series with annotated change points: human
// annotations from the Turing Change Point Dataset (testdata/tcpd.json, TCPD.md), or
// interventions at recorded times in series recorded on this project's machine
// (testdata/recorded.json, RECORDED.md).
type LabeledSeries struct {
	Name    string `json:"name"`
	License string `json:"license"`
	// Values holds the observations; JSON null is a missing value, NaN here.
	Values []float64 `json:"-"`
	// Annotations maps an annotator to the change points they marked (first index of
	// each new segment).
	Annotations map[string][]int `json:"annotations"`
	// HeldOut marks the half of the series no default was tuned on.
	HeldOut bool `json:"held_out"`
	// Provenance says how a recorded series was made (empty for TCPD).
	Provenance string `json:"provenance,omitempty"`
}

// LoadLabeled reads a JSON array of labeled series.
func LoadLabeled(path string) ([]LabeledSeries, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read labeled series: %w", err)
	}
	var raw []struct {
		LabeledSeries
		Values []*float64 `json:"values"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("decode labeled series %s: %w", path, err)
	}
	out := make([]LabeledSeries, len(raw))
	for i, r := range raw {
		s := r.LabeledSeries
		s.Values = make([]float64, len(r.Values))
		for j, v := range r.Values {
			s.Values[j] = math.NaN()
			if v != nil {
				s.Values[j] = *v
			}
		}
		out[i] = s
	}
	return out, nil
}

// ScoreMargin is the distance (in points) within which a detected change point matches
// an annotated one, as in the TCPD benchmark (van den Burg & Williams 2020).
const ScoreMargin = 5

// F1 is the benchmark's F-measure over several annotators: precision against the union
// of all annotations, recall averaged over annotators, each match one-to-one within
// margin. As in the benchmark, index 0 counts as a change point in every set, so a
// method that finds nothing on a series nobody annotated scores 1.
func F1(annotations map[string][]int, predicted []int, margin int) float64 {
	pred := withZero(predicted)
	var union []int
	for _, a := range annotations {
		union = append(union, a...)
	}
	union = withZero(union)
	precision := float64(matches(union, pred, margin)) / float64(len(pred))
	recall := 0.0
	for _, a := range annotations {
		ta := withZero(a)
		recall += float64(matches(ta, pred, margin)) / float64(len(ta))
	}
	if len(annotations) > 0 {
		recall /= float64(len(annotations))
	}
	if precision+recall == 0 {
		return 0
	}
	return 2 * precision * recall / (precision + recall)
}

// Cover is the benchmark's segmentation covering of the predicted partition, averaged
// over annotators: Σ over true segments of |A|·max Jaccard(A, A') / n.
func Cover(annotations map[string][]int, predicted []int, n int) float64 {
	if n == 0 || len(annotations) == 0 {
		return 0
	}
	pp := partition(predicted, n)
	total := 0.0
	for _, a := range annotations {
		c := 0.0
		for _, ta := range partition(a, n) {
			best := 0.0
			for _, pa := range pp {
				best = math.Max(best, jaccard(ta, pa))
			}
			c += float64(ta[1]-ta[0]) * best
		}
		total += c / float64(n)
	}
	return total / float64(len(annotations))
}

func withZero(xs []int) []int {
	seen := map[int]bool{0: true}
	out := []int{0}
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	sort.Ints(out)
	return out
}

// matches counts true change points matched one-to-one by a prediction within margin.
func matches(truth, pred []int, margin int) int {
	used := make([]bool, len(pred))
	count := 0
	for _, t := range truth {
		best, bestD := -1, margin+1
		for j, p := range pred {
			if d := abs(p - t); !used[j] && d <= margin && d < bestD {
				best, bestD = j, d
			}
		}
		if best >= 0 {
			used[best] = true
			count++
		}
	}
	return count
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// partition turns change points into half-open segments [lo, hi) covering [0, n).
func partition(cps []int, n int) [][2]int {
	var in []int
	for _, c := range cps {
		if c > 0 && c < n {
			in = append(in, c)
		}
	}
	sort.Ints(in)
	var out [][2]int
	lo := 0
	for _, c := range in {
		if c > lo {
			out = append(out, [2]int{lo, c})
			lo = c
		}
	}
	return append(out, [2]int{lo, n})
}

func jaccard(a, b [2]int) float64 {
	inter := min(a[1], b[1]) - max(a[0], b[0])
	if inter <= 0 {
		return 0
	}
	union := max(a[1], b[1]) - min(a[0], b[0])
	return float64(inter) / float64(union)
}

// Method is a change-point detector under evaluation: change points (first index of
// each new segment, in the series' coordinates, NaN = missing) or an error, which
// scores as "no change points" like a failure in the benchmark.
type Method struct {
	Name   string
	Detect func(xs []float64) ([]int, error)
}

// MethodScore is one method's result on a set of series.
type MethodScore struct {
	Method string
	// Series, Failed and Empty count the series scored, those the method failed on and
	// those where it found no change point.
	Series, Failed, Empty int
	// F1 and Cover are means over the series.
	F1, Cover float64
}

// ScoreMethods runs every method on every series for which keep is true.
func ScoreMethods(series []LabeledSeries, methods []Method, keep func(LabeledSeries) bool) []MethodScore {
	out := make([]MethodScore, len(methods))
	for i, m := range methods {
		sc := MethodScore{Method: m.Name}
		for _, s := range series {
			if !keep(s) {
				continue
			}
			cps, err := m.Detect(s.Values)
			if err != nil {
				sc.Failed++
				cps = nil
			}
			if len(cps) == 0 {
				sc.Empty++
			}
			sc.Series++
			sc.F1 += F1(s.Annotations, cps, ScoreMargin)
			sc.Cover += Cover(s.Annotations, cps, len(s.Values))
		}
		if sc.Series > 0 {
			sc.F1 /= float64(sc.Series)
			sc.Cover /= float64(sc.Series)
		}
		out[i] = sc
	}
	return out
}

// ScoreTable formats scores as a Markdown table.
func ScoreTable(scores []MethodScore) string {
	var b strings.Builder
	b.WriteString("| method | series | F1 | cover | no change points | failed |\n|---|---|---|---|---|---|\n")
	for _, s := range scores {
		fmt.Fprintf(&b, "| %s | %d | %.3f | %.3f | %d | %d |\n", s.Method, s.Series, s.F1, s.Cover, s.Empty, s.Failed)
	}
	return b.String()
}
