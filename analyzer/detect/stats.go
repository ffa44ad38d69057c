package detect

import (
	"math"
	"sort"

	"github.com/fleetprof/fleetprof/analyzer/findings"
)

// estimate is a pooled share with its standard error.
type estimate struct {
	P, SE, N float64
	// Dispersion is the measured variance over the binomial one (≥ 1).
	Dispersion float64
}

func (e estimate) share() findings.Share {
	return findings.Share{
		Value: e.P, Lo: math.Max(0, e.P-1.96*e.SE), Hi: math.Min(1, e.P+1.96*e.SE), Samples: e.N,
	}
}

// quasiBinomial pools cells (inclusive, total) into a share whose standard error is the
// binomial one, sqrt(p(1−p)/N), inflated by the over-dispersion the cells show
// (Pearson χ²/df, at least 1): host-to-host and bucket-to-bucket variation that pure
// sampling noise would not produce.
func quasiBinomial(inc, tot []float64) estimate {
	var si, st float64
	cells := 0
	for i := range inc {
		if tot[i] > 0 {
			si += inc[i]
			st += tot[i]
			cells++
		}
	}
	if st == 0 {
		return estimate{Dispersion: 1}
	}
	p := si / st
	disp := 1.0
	if cells > 1 && p > 0 && p < 1 {
		chi2 := 0.0
		for i := range inc {
			if tot[i] > 0 {
				d := inc[i] - tot[i]*p
				chi2 += d * d / (tot[i] * p * (1 - p))
			}
		}
		disp = math.Max(1, chi2/float64(cells-1))
	}
	v := p * (1 - p) / st
	if p == 0 || p == 1 {
		v = 1 / (st * st) // one-sample floor so a zero share still has an interval
	}
	return estimate{P: p, SE: math.Sqrt(disp * v), N: st, Dispersion: disp}
}

// pairedDiff compares a new version's share with an old one's within the same buckets
// (so diurnal and traffic effects cancel): a weighted mean of per-bucket differences
// with inverse binomial variance weights, its standard error inflated by the
// over-dispersion: the larger of minDisp (measured elsewhere, e.g. on the old
// version's history, where it has many degrees of freedom) and the scatter of the
// differences (χ²/df). It returns the pooled shares, the difference and its z score.
func pairedDiff(incOld, totOld, incNew, totNew []float64, buckets []int, minDisp float64) (before, after estimate, diff, z float64) {
	var sw, swd float64
	type cell struct{ d, w float64 }
	cells := make([]cell, 0, len(buckets))
	var oi, ot, ni, nt []float64
	for _, t := range buckets {
		po, pn := incOld[t]/totOld[t], incNew[t]/totNew[t]
		pp := (incOld[t] + incNew[t]) / (totOld[t] + totNew[t])
		v := pp * (1 - pp) * (1/totOld[t] + 1/totNew[t])
		if v <= 0 {
			v = 1 / (totOld[t] * totNew[t])
		}
		w := 1 / v
		cells = append(cells, cell{pn - po, w})
		sw += w
		swd += w * (pn - po)
		oi, ot = append(oi, incOld[t]), append(ot, totOld[t])
		ni, nt = append(ni, incNew[t]), append(nt, totNew[t])
	}
	before, after = quasiBinomial(oi, ot), quasiBinomial(ni, nt)
	if sw == 0 {
		return before, after, 0, 0
	}
	diff = swd / sw
	disp := math.Max(1, minDisp)
	if len(cells) > 1 {
		chi2 := 0.0
		for _, c := range cells {
			chi2 += c.w * (c.d - diff) * (c.d - diff)
		}
		disp = math.Max(disp, chi2/float64(len(cells)-1))
	}
	se := math.Sqrt(disp / sw)
	if se == 0 {
		return before, after, diff, math.Inf(sign(diff))
	}
	return before, after, diff, diff / se
}

// twoSidedP is the two-sided normal p-value of z.
func twoSidedP(z float64) float64 {
	if math.IsInf(z, 0) {
		return 0
	}
	return math.Erfc(math.Abs(z) / math.Sqrt2)
}

func sign(x float64) int {
	if x < 0 {
		return -1
	}
	return 1
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	c := append([]float64(nil), xs...)
	sort.Float64s(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}
