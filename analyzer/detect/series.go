package detect

import (
	"fmt"
	"math"
	"slices"

	"github.com/fleetprof/fleetprof/analyzer/findings"
)

type seriesOutcome int

const (
	outcomeBelowMinShare seriesOutcome = iota
	outcomeNoChange
	outcomeDropped
	outcomeCandidate
)

// analyzeSeries runs the per-series stages. It returns at most one rise (reported
// if it survives the cross-series stages) and one fall (evidence for cost shifts).
func analyzeSeries(svc *Service, sr *Series, cfg Config, w windows) ([]*candidate, *Dropped, seriesOutcome) {
	var si, st float64
	for i := range sr.Inclusive {
		si += sr.Inclusive[i]
		st += svc.Total[i]
	}
	if st == 0 || si/st < cfg.MinShare {
		return nil, nil, outcomeBelowMinShare
	}
	vc, vdrop := versionCandidate(svc, sr, cfg, w)
	tcs, tdrop := timeCandidate(svc, sr, cfg, w)
	var out []*candidate
	var drop *Dropped
	cs := tcs
	if vc != nil {
		// One change, seen both ways: the paired comparison is the better estimate.
		cs = []*candidate{vc}
		gap := max(w.tol, w.ext) + cfg.ChangePoint.MinSegment
		for _, tc := range tcs {
			if (tc.abs > 0) == (vc.abs > 0) && tc.change >= vc.change-gap && tc.change <= vc.hi+gap {
				vc.pass(findings.FilterMerge)
				continue
			}
			cs = append(cs, tc)
		}
	}
	for _, c := range cs {
		if c.abs < 0 {
			// Falls are never reported, only evidence for cost shifts: a function
			// with a large inclusive share may lose moved self cost that is under
			// the relative threshold.
			out = append(out, c)
			continue
		}
		kept, d := thresholdStage(c, cfg)
		if kept != nil {
			out = append(out, kept)
		} else if drop == nil {
			drop = d
		}
	}
	if drop == nil {
		drop = tdrop
	}
	if drop == nil {
		drop = vdrop
	}
	switch {
	case len(out) > 0:
		// Only falls left (evidence for cost shifts): still say why a rise was not.
		if rising(out) {
			drop = nil
		}
		return out, drop, outcomeCandidate
	case drop != nil:
		return nil, drop, outcomeDropped
	}
	return nil, nil, outcomeNoChange
}

// thresholdStage applies the absolute and relative thresholds.
func thresholdStage(c *candidate, cfg Config) (*candidate, *Dropped) {
	if math.Abs(c.abs) < cfg.MinAbsoluteChange || math.Abs(c.rel) < cfg.MinRelativeChange {
		return nil, &Dropped{Function: c.fn, Stage: StageThreshold,
			Reason: fmt.Sprintf("change %+.3g (%+.2f%%) below thresholds", c.abs, 100*c.rel)}
	}
	c.pass(findings.FilterThreshold)
	return c, nil
}

// shareSeries returns Inclusive/Total per bucket; buckets without samples carry the
// previous bucket's share (the first ones the next known share) so indices stay
// aligned with time.
func shareSeries(inc, tot []float64) []float64 {
	s := make([]float64, len(inc))
	first := -1
	for i := range inc {
		if tot[i] > 0 {
			s[i] = inc[i] / tot[i]
			if first < 0 {
				first = i
			}
		} else if i > 0 {
			s[i] = s[i-1]
		}
	}
	for i := 0; i < first; i++ {
		s[i] = s[first]
	}
	return s
}

// deseasonalize subtracts a periodic profile estimated from history (the buckets
// before histEnd): per phase the median share, centred on its mean. It needs two full
// periods of history; otherwise it returns s unchanged and nil offsets.
func deseasonalize(s []float64, period, histEnd int, sds float64) (adjusted, offsets []float64) {
	if period < 2 || histEnd < 2*period {
		return s, nil
	}
	prof := make([]float64, period)
	vals := make([]float64, 0, histEnd/period+1)
	for ph := range period {
		vals = vals[:0]
		for i := ph; i < histEnd; i += period {
			vals = append(vals, s[i])
		}
		prof[ph] = median(vals)
	}
	mp := mean(prof)
	// Only a profile that stands out of its own estimation noise is removed: most
	// functions have no daily wave, and subtracting a profile made of k noisy
	// periods adds that noise to every window (and to the change-point search).
	// Under no seasonality the profile's spread across phases is about σ²/k (σ² the
	// per-bucket variance around it), give or take √(2/(period−1)) relative; a wave
	// must stand sds (Tuning.SeasonProfileSDs) of those above it, or a few series in
	// a hundred pass by chance and get a noisy profile subtracted; the diluted wave
	// a seasonal function leaves in every other share is divided out before
	// (seasonalDilution).
	var rss, pss float64
	for i := range histEnd {
		d := s[i] - prof[i%period]
		rss += d * d
	}
	for _, x := range prof {
		pss += (x - mp) * (x - mp)
	}
	if k := float64(histEnd) / float64(period); histEnd > period {
		sigma2 := rss / float64(histEnd-period)
		if pss/float64(period-1) <= (1+sds*math.Sqrt(2/float64(period-1)))*sigma2/k {
			return s, nil
		}
	}
	adjusted = make([]float64, len(s))
	offsets = make([]float64, len(s))
	for i := range s {
		offsets[i] = prof[i%period] - mp
		adjusted[i] = s[i] - offsets[i]
	}
	return adjusted, offsets
}

// seasonalDilution is the factor c(t) by which functions with a strong daily wave
// of their own (self share) dilute every other share: their self shares s_i sum to
// S̄ + Σ off_i(t) (off the deseasonalizing offsets), the rest of the service to
// 1 − S̄ − Σ off_i(t), so c(t) = 1 − Σ off_i(t)/(1 − S̄). A seasonal function of 5%
// of the service swinging ±20% moves every other share ±1% a day, which a change
// point search in a share of 40% (or in many small ones together) reads as shifts,
// dated at a release. The offsets come from history (smooth profiles, no per-bucket
// noise). A wave counts when deseasonalize keeps it (it stands out of its noise) and
// its amplitude (SD of the offsets) is at least Tuning.SeasonalMinAmplitude of the
// function's share: the diluted waves themselves are ~1%. It also returns those
// functions. Nil when none is seasonal.
func seasonalDilution(svc *Service, w windows) (common []float64, seasonal map[string]bool) {
	if w.period < 2 || w.winLo < 2*w.period {
		return nil, nil
	}
	tot := sum(svc.Total[:w.winLo])
	if tot == 0 {
		return nil, nil
	}
	var sumOff []float64
	sbar := 0.0
	for i := range svc.Series {
		sr := &svc.Series[i]
		if sr.Self == nil {
			continue
		}
		m := sum(sr.Self[:w.winLo]) / tot
		if m < w.tun.SeasonalMinShare {
			continue
		}
		_, off := deseasonalize(shareSeries(sr.Self, svc.Total), w.period, w.winLo, w.tun.SeasonProfileSDs)
		if off == nil {
			continue
		}
		var ss float64
		for _, x := range off[:w.period] {
			ss += x * x
		}
		if math.Sqrt(ss/float64(w.period)) < w.tun.SeasonalMinAmplitude*m {
			continue
		}
		if sumOff == nil {
			sumOff = make([]float64, len(off))
			seasonal = map[string]bool{}
		}
		seasonal[sr.Function] = true
		for t, x := range off {
			sumOff[t] += x
		}
		sbar += m
	}
	if sumOff == nil || sbar >= w.tun.SeasonalMaxTotal {
		return nil, nil
	}
	common = make([]float64, len(sumOff))
	for t, x := range sumOff {
		common[t] = 1 - x/(1-sbar)
	}
	return common, seasonal
}

// windowEstimate pools a function's counts over buckets [lo, hi), per host group when
// the service has groups (so the scatter within each group over time measures
// over-dispersion), and removes the window's average seasonal offset.
func windowEstimate(svc *Service, sr *Series, lo, hi int, common, offsets []float64) estimate {
	var e estimate
	if len(sr.GroupInclusive) > 0 {
		var inc, tot [][]float64
		for _, g := range sortedKeys(sr.GroupInclusive) {
			inc = append(inc, sr.GroupInclusive[g][lo:hi])
			tot = append(tot, svc.GroupTotal[g][lo:hi])
		}
		e = withinGroups(inc, tot)
	} else {
		e = quasiBinomial(sr.Inclusive[lo:hi], svc.Total[lo:hi])
	}
	if common != nil && hi > lo {
		c := mean(common[lo:hi])
		e.P /= c
		e.SE /= c
	}
	if offsets != nil {
		e.P -= mean(offsets[lo:hi])
	}
	return e
}

// profileNoise adds to e's variance the error of the seasonal offsets subtracted
// from it. Each phase's offset is estimated from k periods of history (error σ²/k
// for a per-bucket variance σ² = L·SE²) and the offsets are centred, so whole
// periods of a window cancel; the r = L mod period phases left over (all L of a
// window shorter than a period) add a centred sample mean's error,
// σ²/k · r(1 − r/period)/L². Ignoring it made short deseasonalized windows look up
// to √1.5 times more certain than they were (k = 2).
func profileNoise(e estimate, L, period, k int) estimate {
	if L <= 0 || period <= 0 || k <= 0 {
		return e
	}
	r := float64(L % period)
	if L < period {
		r = float64(L)
	}
	e.SE *= math.Sqrt(1 + r*(1-r/float64(period))/(float64(k)*float64(L)))
	return e
}

// withDispersion rescales e's standard error to over-dispersion disp.
func withDispersion(e estimate, disp float64) estimate {
	if e.Dispersion > 0 && disp > 0 {
		e.SE *= math.Sqrt(disp / e.Dispersion)
		e.Dispersion = disp
	}
	return e
}

// inflate raises e's over-dispersion to at least disp.
func inflate(e estimate, disp float64) estimate {
	if disp > e.Dispersion && e.Dispersion > 0 {
		e.SE *= math.Sqrt(disp / e.Dispersion)
		e.Dispersion = disp
	}
	return e
}

// seriesDispersion is the over-dispersion of a function's counts around the levels
// of its segments (bounds are change-point indices), per host group when the service
// has groups: Pearson χ² over all cells divided by its degrees of freedom.
func seriesDispersion(svc *Service, sr *Series, bounds []int, offsets []float64) float64 {
	type cells struct{ inc, tot []float64 }
	var gs []cells
	if len(sr.GroupInclusive) > 0 {
		for _, g := range sortedKeys(sr.GroupInclusive) {
			gs = append(gs, cells{sr.GroupInclusive[g], svc.GroupTotal[g]})
		}
	} else {
		gs = []cells{{sr.Inclusive, svc.Total}}
	}
	_ = offsets // seasonal swings within a segment count as dispersion: conservative
	edges := append(append([]int{0}, bounds...), svc.Buckets())
	var chi2, df float64
	for k := 1; k < len(edges); k++ {
		lo, hi := edges[k-1], edges[k]
		for _, g := range gs {
			var si, st float64
			n := 0
			for i := lo; i < hi; i++ {
				if g.tot[i] > 0 {
					si += g.inc[i]
					st += g.tot[i]
					n++
				}
			}
			if n < 2 || si == 0 || si == st {
				continue
			}
			p := si / st
			for i := lo; i < hi; i++ {
				if g.tot[i] > 0 {
					d := g.inc[i] - g.tot[i]*p
					chi2 += d * d / (g.tot[i] * p * (1 - p))
				}
			}
			df += float64(n - 1)
		}
	}
	if df == 0 {
		return 1
	}
	return math.Max(1, chi2/df)
}

// snapToDeploy dates a change at a deploy: a small shift's change point can land
// hours from the release that caused it (a rollout spreads it over its stages),
// while the start of a version's rollout is known exactly. Among the versions first
// seen in (lo, hi), the one whose start is in the confidence set of the change's
// location and explains it best is chosen: splitting s[lo:hi) there explains the shift (in
// net's direction) nearly as well as the best split, within the χ²(1) quantile at
// alpha of the residual variance. It returns the bucket and the version.
func snapToDeploy(starts map[string]int, s []float64, lo, hi int, net, alpha float64) (int, string, bool) {
	n := hi - lo
	if n < 4 {
		return 0, "", false
	}
	pre := make([]float64, n+1)
	pre2 := make([]float64, n+1)
	for i := range n {
		pre[i+1] = pre[i] + s[lo+i]
		pre2[i+1] = pre2[i] + s[lo+i]*s[lo+i]
	}
	// gain(k) is the fall of the squared error when s[lo:hi) splits at lo+k, signed
	// by the direction of the shift.
	gain := func(k int) float64 {
		m1 := pre[k] / float64(k)
		m2 := (pre[n] - pre[k]) / float64(n-k)
		g := float64(k) * float64(n-k) / float64(n) * (m2 - m1) * (m2 - m1)
		if (m2-m1)*net < 0 {
			return -g
		}
		return g
	}
	best, bestK := math.Inf(-1), 0
	for k := 2; k <= n-2; k++ {
		if g := gain(k); g > best {
			best, bestK = g, k
		}
	}
	if best <= 0 {
		return 0, "", false
	}
	m1 := pre[bestK] / float64(bestK)
	m2 := (pre[n] - pre[bestK]) / float64(n-bestK)
	sse := pre2[n] - float64(bestK)*m1*m1 - float64(n-bestK)*m2*m2
	sigma2 := math.Max(sse, 0) / float64(n-2)
	q := 2 * math.Pow(math.Erfinv(1-alpha), 2) // χ²(1) quantile at alpha
	at, ver, ok, atGain := 0, "", false, 0.0
	for _, v := range sortedKeys(starts) {
		first := starts[v]
		k := first - lo
		if first <= 0 || k < 2 || k > n-2 {
			continue
		}
		if g := gain(k); best-g <= q*sigma2 && (!ok || g > atGain) {
			at, ver, ok, atGain = first, v, true, g
		}
	}
	return at, ver, ok
}

// rising reports whether cs holds a rise (a candidate that may be reported).
func rising(cs []*candidate) bool {
	return slices.ContainsFunc(cs, func(c *candidate) bool { return c.abs > 0 })
}

// versionCandidate is the rollout path: when two versions ran in the same buckets on
