package evaluate

import (
	"math"
	"slices"

	"github.com/fleetprof/fleetprof/analyzer/changepoint"
)

// Reference change-point methods the evaluation compares analyzer/changepoint against,
// written after the defaults of R's changepoint package as the TCPD benchmark runs them:
// the series scaled to unit variance, Gaussian mean-shift cost with unit variance,
// MBIC-style penalty 3·ln n per change point. They are small and exact, not tuned.

// BaselinePenaltyLogFactor is the penalty per change point in units of σ²·ln n
// (changepoint's MBIC is 3·ln n).
const BaselinePenaltyLogFactor = 3

// BaselineMaxChangePoints is binary segmentation's cap (changepoint's Q default).
const BaselineMaxChangePoints = 5

// baselineMinSegment is the shortest segment either baseline creates.
const baselineMinSegment = 2

// BinSeg is binary segmentation: split the segment whose best split lowers the residual
// sum of squares most, while that drop exceeds the penalty, up to
// BaselineMaxChangePoints.
func BinSeg(xs []float64) ([]int, error) {
	bs, ok := newBaselineSeries(xs)
	if !ok {
		return nil, nil
	}
	n, pre, pre2, pen := bs.n, bs.pre, bs.pre2, bs.pen
	cps := []int{}
	segs := [][2]int{{0, n}}
	for len(cps) < BaselineMaxChangePoints {
		bestGain, bestK, bestSeg := 0.0, -1, -1
		for si, s := range segs {
			for k := s[0] + baselineMinSegment; k <= s[1]-baselineMinSegment; k++ {
				g := rss(pre, pre2, s[0], s[1]) - rss(pre, pre2, s[0], k) - rss(pre, pre2, k, s[1])
				if g > bestGain {
					bestGain, bestK, bestSeg = g, k, si
				}
			}
		}
		if bestK < 0 || bestGain <= pen {
			break
		}
		s := segs[bestSeg]
		segs = append(slices.Delete(segs, bestSeg, bestSeg+1), [2]int{s[0], bestK}, [2]int{bestK, s[1]})
		cps = append(cps, bestK)
	}
	slices.Sort(cps)
	return toOriginal(cps, bs.idx), nil
}

// PELT is optimal partitioning with pruning (Killick, Fearnhead & Eckley 2012): the
// segmentation minimizing residual sum of squares plus the penalty per change point.
func PELT(xs []float64) ([]int, error) {
	bs, ok := newBaselineSeries(xs)
	if !ok {
		return nil, nil
	}
	n, pre, pre2, pen := bs.n, bs.pre, bs.pre2, bs.pen
	f := make([]float64, n+1)
	last := make([]int, n+1)
	f[0] = -pen
	cands := []int{0}
	for t := baselineMinSegment; t <= n; t++ {
		f[t] = math.Inf(1)
		for _, s := range cands {
			if t-s < baselineMinSegment {
				continue
			}
			if v := f[s] + rss(pre, pre2, s, t) + pen; v < f[t] {
				f[t], last[t] = v, s
			}
		}
		kept := cands[:0]
		for _, s := range cands {
			if t-s < baselineMinSegment || f[s]+rss(pre, pre2, s, t) <= f[t] {
				kept = append(kept, s)
			}
		}
		cands = append(kept, t-baselineMinSegment+1)
	}
	var cps []int
	for t := last[n]; t > 0; t = last[t] {
		cps = append(cps, t)
	}
	slices.Sort(cps)
	return toOriginal(cps, bs.idx), nil
}

// baselineSeries is what both baselines start from: the observed values
// (missing ones dropped by changepoint.Observed, idx mapping back), their
// prefix sums and the penalty.
type baselineSeries struct {
	n         int
	idx       []int
	pre, pre2 []float64
	pen       float64
}

// newBaselineSeries prepares xs; false when it is too short to split.
func newBaselineSeries(xs []float64) (baselineSeries, bool) {
	obs, idx := changepoint.Observed(xs)
	if len(obs) < 2*baselineMinSegment {
		return baselineSeries{}, false
	}
	pre, pre2 := prefixes(obs)
	return baselineSeries{n: len(obs), idx: idx, pre: pre, pre2: pre2, pen: baselinePenalty(obs)}, true
}

// baselinePenalty is the penalty on the residual sum of squares: the benchmark scales
// every series to unit variance and the Normal mean-change cost assumes unit variance,
// so in the series' own units it is 3·ln n times the sample variance.
func baselinePenalty(xs []float64) float64 {
	n := float64(len(xs))
	mean := 0.0
	for _, x := range xs {
		mean += x / n
	}
	v := 0.0
	for _, x := range xs {
		v += (x - mean) * (x - mean) / (n - 1)
	}
	if v == 0 {
		v = 1e-300
	}
	return BaselinePenaltyLogFactor * math.Log(n) * v
}

func prefixes(xs []float64) ([]float64, []float64) {
	pre := make([]float64, len(xs)+1)
	pre2 := make([]float64, len(xs)+1)
	for i, x := range xs {
		pre[i+1] = pre[i] + x
		pre2[i+1] = pre2[i] + x*x
	}
	return pre, pre2
}

// rss is the residual sum of squares of xs[lo:hi] around its mean.
func rss(pre, pre2 []float64, lo, hi int) float64 {
	n := float64(hi - lo)
	s := pre[hi] - pre[lo]
	return math.Max(0, pre2[hi]-pre2[lo]-s*s/n)
}

func toOriginal(cps, idx []int) []int {
	out := make([]int, len(cps))
	for i, c := range cps {
		out[i] = idx[c]
	}
	return out
}
