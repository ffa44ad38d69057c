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

// withinGroups pools cells (one slice of inclusive and total counts per host group)
// into a share whose over-dispersion is measured around each group's own share: the
// bucket-to-bucket scatter within a group. Static differences between groups (host
// effects) cancel in a before/after comparison of the same hosts, so they must not
// inflate its standard error.
func withinGroups(inc, tot [][]float64) estimate {
	var si, st float64
	cells, groups := 0, 0
	for g := range inc {
		used := false
		for i := range inc[g] {
			if tot[g][i] > 0 {
				si += inc[g][i]
				st += tot[g][i]
				cells++
				used = true
			}
		}
		if used {
			groups++
		}
	}
	if st == 0 {
		return estimate{Dispersion: 1}
	}
	p := si / st
	disp := 1.0
	if df := cells - groups; df > 0 && p > 0 && p < 1 {
		chi2 := 0.0
		for g := range inc {
			var gi, gt float64
			for i := range inc[g] {
				gi += inc[g][i]
				gt += tot[g][i]
			}
			if gt == 0 {
				continue
			}
			pg := gi / gt
			for i := range inc[g] {
				if tot[g][i] > 0 {
					d := inc[g][i] - tot[g][i]*pg
					chi2 += d * d / (tot[g][i] * p * (1 - p))
				}
			}
		}
		disp = math.Max(1, chi2/float64(df))
	}
	v := p * (1 - p) / st
	if p == 0 || p == 1 {
		v = 1 / (st * st)
	}
	return estimate{P: p, SE: math.Sqrt(disp * v), N: st, Dispersion: disp}
}

// groupTest compares two sets of host-group shares (each group pooled over the same
// buckets) with Welch's t-test: the variance is the scatter between groups, at least
// the binomial one, so host effects count as noise. It returns the pooled shares, the
// difference of mean group shares and a normal-equivalent z score (the t statistic
// mapped through its degrees of freedom, so few groups give little confidence).
func groupTest(incA, totA, incB, totB []float64) (a, b estimate, diff, z float64) {
	mv := func(inc, tot []float64) (m, v, n float64, e estimate) {
		var xs []float64
		var si, st float64
		for i := range inc {
			if tot[i] > 0 {
				xs = append(xs, inc[i]/tot[i])
				si += inc[i]
				st += tot[i]
			}
		}
		e = quasiBinomial(inc, tot)
		if len(xs) == 0 {
			return 0, 0, 0, e
		}
		m = mean(xs)
		for _, x := range xs {
			v += (x - m) * (x - m)
		}
		if len(xs) > 1 {
			v /= float64(len(xs) - 1)
		}
		// Binomial floor per group: sampling noise of the average group.
		pb := si / st
		v = math.Max(v, pb*(1-pb)/(st/float64(len(xs))))
		return m, v, float64(len(xs)), e
	}
	ma, va, na, ea := mv(incA, totA)
	mb, vb, nb, eb := mv(incB, totB)
	if na < 2 || nb < 2 {
		return ea, eb, mb - ma, 0
	}
	sa, sb := va/na, vb/nb
	se := math.Sqrt(sa + sb)
	diff = mb - ma
	if se == 0 {
		return ea, eb, diff, math.Inf(sign(diff))
	}
	t := diff / se
	df := (sa + sb) * (sa + sb) / (sa*sa/(na-1) + sb*sb/(nb-1))
	return ea, eb, diff, tToZ(t, df)
}

// tToZ maps a Student t statistic with df degrees of freedom to the normal z with the
// same tail probability (Wallace's approximation, good to a few % for df >= 2).
func tToZ(t, df float64) float64 {
	if math.IsInf(t, 0) || df <= 0 {
		return t
	}
	// Wallace (1959): z ≈ sqrt(df·ln(1+t²/df))·(8df+1)/(8df+3).
	z := math.Sqrt(df*math.Log1p(t*t/df)) * (8*df + 1) / (8*df + 3)
	if t < 0 {
		z = -z
	}
	return z
}

// hostVariance measures how much host groups differ beyond sampling noise, from
// history: over consecutive windows of L buckets it compares each group's share with
// the window's, removes the binomial part, and scales by the group's samples per
// bucket (a group's host effect averages over its hosts, whose number grows with its
// samples). It returns κ such that a cell with n samples over L buckets has share
// variance κ·L/n (host part) + p(1−p)/n (sampling part), and the number of windows
// used.
func hostVariance(inc, tot [][]float64, end, L int) (kappa float64, windows int) {
	if L < 1 {
		return 0, 0
	}
	var sum float64
	var cnt int
	for lo := 0; lo+L <= end; lo += L {
		var xs, ns []float64
		var si, st float64
		for g := range inc {
			var gi, gt float64
			for i := lo; i < lo+L; i++ {
				gi += inc[g][i]
				gt += tot[g][i]
			}
			if gt > 0 {
				xs, ns = append(xs, gi/gt), append(ns, gt)
				si += gi
				st += gt
			}
		}
		G := len(xs)
		if G < 2 || st == 0 {
			continue
		}
		p := si / st
		for k := range xs {
			d := xs[k] - p
			v := d*d*float64(G)/float64(G-1) - p*(1-p)/ns[k]
			sum += v * ns[k] / float64(L)
			cnt++
		}
		windows++
	}
	if cnt == 0 {
		return 0, 0
	}
	return math.Max(0, sum/float64(cnt)), windows
}

// cellTest compares the groups running version B with those running A (group shares
// pooled over the same L buckets) with inverse-variance weights, each group's
// variance from hostVariance's κ plus sampling noise, inflated by the scatter the
// groups show when it exceeds that model. It returns pooled shares, the difference
// and its z score.
func cellTest(incA, totA, incB, totB []float64, kappa float64, L int) (a, b estimate, diff, z float64) {
	side := func(inc, tot []float64) (m, v float64, e estimate) {
		e = quasiBinomial(inc, tot)
		p := e.P
		var sw, swx float64
		ws := make([]float64, len(inc))
		for i := range inc {
			if tot[i] <= 0 {
				continue
			}
			vg := kappa*float64(L)/tot[i] + math.Max(p*(1-p), 1/tot[i])/tot[i]
			ws[i] = 1 / vg
			sw += ws[i]
			swx += ws[i] * inc[i] / tot[i]
		}
		if sw == 0 {
			return 0, 0, e
		}
		m = swx / sw
		chi2, k := 0.0, 0
		for i := range inc {
			if tot[i] > 0 {
				d := inc[i]/tot[i] - m
				chi2 += ws[i] * d * d
				k++
			}
		}
		disp := 1.0
		if k > 1 {
			disp = math.Max(1, chi2/float64(k-1))
		}
		return m, disp / sw, e
	}
	ma, va, ea := side(incA, totA)
	mb, vb, eb := side(incB, totB)
	diff = mb - ma
	se := math.Sqrt(va + vb)
	if se == 0 {
		return ea, eb, diff, 0
	}
	return ea, eb, diff, diff / se
}
