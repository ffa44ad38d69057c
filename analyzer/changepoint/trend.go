package changepoint

import (
	"math"
	"slices"
)

// Segment is one piece of a trend-model fit: x_i ≈ Level + Slope·(i − Start) for
// Start ≤ i < End (indices in the caller's coordinates, missing values included).
type Segment struct {
	Start int `json:"start"`
	End   int `json:"end"`
	// Linear is true when the segment is a line; false for a level (Slope 0).
	Linear bool    `json:"linear"`
	Level  float64 `json:"level"`
	Slope  float64 `json:"slope"`
}

// At is the fitted value at index i.
func (s Segment) At(i int) float64 { return s.Level + s.Slope*float64(i-s.Start) }

// trendFit holds the sufficient statistics of a series standardized to
// z = (x − center)/scale, so every segment's least-squares level or line is O(1). pos
// are the points' positions (original indices: a line runs in time across gaps).
type trendFit struct {
	n                  int
	center, scale      float64
	pos                []int
	pp, ppp            []int64   // prefix sums of pos, pos² (exact)
	pz, ppz, pzz       []float64 // prefix sums of z, pos·z, z²
	cpPenalty, slopePn float64   // in units of σ² of z
	m                  int
}

func newTrendFit(xs []float64, pos []int, cfg Config, sigma float64) *trendFit {
	n := len(xs)
	center := 0.0
	for _, x := range xs {
		center += x / float64(n)
	}
	f := &trendFit{n: n, center: center, scale: sigma, m: cfg.MinSegment, pos: pos,
		pp: make([]int64, n+1), ppp: make([]int64, n+1),
		pz: make([]float64, n+1), ppz: make([]float64, n+1), pzz: make([]float64, n+1)}
	for i, x := range xs {
		z := (x - center) / sigma
		p := int64(pos[i])
		f.pp[i+1] = f.pp[i] + p
		f.ppp[i+1] = f.ppp[i] + p*p
		f.pz[i+1] = f.pz[i] + z
		f.ppz[i+1] = f.ppz[i] + float64(p)*z
		f.pzz[i+1] = f.pzz[i] + z*z
	}
	f.cpPenalty, f.slopePn = trendPenalties(n, cfg)
	return f
}

// trendPenalties returns the penalties (in σ² units) for one more change point and for
// a segment's slope. A change point costs b², where b is the critical value of the
// mean-shift split test at Alpha for the whole series (so on noise the first split is
// as rare as in the mean-shift model); a slope costs the two-sided χ²₁ critical value
// at Alpha, the test of one slope being zero.
func trendPenalties(n int, cfg Config) (cp, slope float64) {
	z := math.Sqrt2 * math.Erfinv(1-cfg.Alpha)
	slope = z * z
	if n < 2*cfg.MinSegment {
		return math.Inf(1), slope
	}
	// Bisect lrtMaxP(b) = Alpha: it falls monotonically in b.
	lo, hi := z, z+10
	for range 60 {
		mid := (lo + hi) / 2
		if lrtMaxP(mid, n, cfg.MinSegment) > cfg.Alpha {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi * hi, slope
}

// fit returns the residual sum of squares (in σ² units) of xs[s:t] as a level and as a
// line, the level, and the line's slope (z units per index) and value at pos[s].
func (f *trendFit) fit(s, t int) (rssLevel, rssLine, level, slope, lineLevel float64) {
	l := float64(t - s)
	sz := f.pz[t] - f.pz[s]
	szz := f.pzz[t] - f.pzz[s]
	// Local time u = pos − pos[s]; Σu and Σu² exactly in integers.
	ps, li := int64(f.pos[s]), int64(t-s)
	sp := f.pp[t] - f.pp[s]
	su := float64(sp - li*ps)
	suu := float64(f.ppp[t] - f.ppp[s] - 2*ps*sp + li*ps*ps)
	suz := f.ppz[t] - f.ppz[s] - float64(ps)*sz
	level = sz / l
	rssLevel = math.Max(0, szz-sz*sz/l)
	sxx := suu - su*su/l
	if sxx <= 0 {
		return rssLevel, rssLevel, level, 0, level
	}
	sxy := suz - su*sz/l
	slope = sxy / sxx
	rssLine = math.Max(0, rssLevel-sxy*sxy/sxx)
	lineLevel = level - slope*su/l
	return rssLevel, rssLine, level, slope, lineLevel
}

// cost is the penalized cost of xs[s:t] under its better model.
func (f *trendFit) cost(s, t int) (float64, bool) {
	rl, rline, _, _, _ := f.fit(s, t)
	if rline+f.slopePn < rl {
		return rline + f.slopePn, true
	}
	return rl, false
}

// segmentTrend is optimal partitioning with pruning (PELT) over segments that are each
// a level or a line: it minimizes Σ cost + cpPenalty per change point.
func (f *trendFit) segmentTrend() []Segment {
	n, m := f.n, f.m
	if n < 2*m {
		return f.segments([]int{0, n})
	}
	best := make([]float64, n+1)
	last := make([]int, n+1)
	best[0] = -f.cpPenalty
	for t := 1; t < m && t <= n; t++ {
		best[t] = math.Inf(1)
	}
	var cands []int
	for t := m; t <= n; t++ {
		if t-m >= 0 && (t-m == 0 || !math.IsInf(best[t-m], 1)) {
			cands = append(cands, t-m)
		}
		best[t] = math.Inf(1)
		for _, s := range cands {
			c, _ := f.cost(s, t)
			if v := best[s] + c + f.cpPenalty; v < best[t] {
				best[t], last[t] = v, s
			}
		}
		// Prune starts that can never be optimal again; the slope penalty is the most
		// a split can add to a segment's cost (Killick et al. 2012, K).
		kept := cands[:0]
		for _, s := range cands {
			c, _ := f.cost(s, t)
			if best[s]+c <= best[t]+f.slopePn {
				kept = append(kept, s)
			}
		}
		cands = kept
	}
	bounds := []int{n}
	for t := n; t > 0; t = last[t] {
		bounds = append(bounds, last[t])
	}
	slices.Reverse(bounds)
	return f.segments(bounds)
}

// segments turns boundaries (0 … n, observed points) into fitted segments in the
// caller's units and coordinates.
func (f *trendFit) segments(bounds []int) []Segment {
	out := make([]Segment, 0, len(bounds)-1)
	for i := 1; i < len(bounds); i++ {
		s, t := bounds[i-1], bounds[i]
		if t <= s {
			continue
		}
		_, linear := f.cost(s, t)
		_, _, level, slope, lineLevel := f.fit(s, t)
		seg := Segment{Start: f.pos[s], End: f.pos[t-1] + 1, Linear: linear, Level: f.center + f.scale*level}
		if linear {
			seg.Level = f.center + f.scale*lineLevel
			seg.Slope = f.scale * slope
		}
		out = append(out, seg)
	}
	return out
}

// observedIndex returns the observed index of position p (p must be observed).
func (f *trendFit) observedIndex(p int) int {
	i, _ := slices.BinarySearch(f.pos, p)
	return i
}

// trendResiduals returns xs minus the fitted segments and whether each residual
// follows its predecessor within one segment.
func trendResiduals(xs []float64, pos []int, segs []Segment) ([]float64, []bool) {
	res := make([]float64, len(xs))
	same := make([]bool, len(xs))
	k := 0
	for i := range xs {
		for k+1 < len(segs) && pos[i] >= segs[k].End {
			k++
		}
		res[i] = xs[i] - segs[k].At(pos[i])
		same[i] = i > 0 && pos[i-1] >= segs[k].Start
	}
	return res, same
}

// detectTrend is DetectNoise's trend model on a series without missing values.
func detectTrend(xs []float64, pos []int, cfg Config, floor float64) ([]ChangePoint, []Segment, Noise) {
	var nz Noise
	sigma := cfg.Sigma
	if sigma == 0 {
		nz = EstimateNoise(xs)
		sigma = nz.LongRunSigma
		if cfg.IgnoreAutocorrelation {
			sigma = nz.Sigma
		}
	} else {
		nz = Noise{Sigma: sigma, LongRunSigma: sigma}
	}
	sigma = math.Max(sigma, floor)
	segs := newTrendFit(xs, pos, cfg, sigma).segmentTrend()
	if cfg.Sigma == 0 {
		// Re-estimate the noise around the fit (a trend or a shift no longer looks
		// like autocorrelation), then fit again.
		for range 2 {
			res, same := trendResiduals(xs, pos, segs)
			nz = noiseOf(res, same, len(xs))
			s := nz.LongRunSigma
			if cfg.IgnoreAutocorrelation {
				s = nz.Sigma
			}
			s = math.Max(s, floor)
			if s == sigma {
				break
			}
			sigma = s
			segs = newTrendFit(xs, pos, cfg, sigma).segmentTrend()
		}
	}
	segs = capSegments(xs, pos, cfg, sigma, segs)
	return trendChangePoints(xs, pos, cfg, sigma, segs), segs, nz
}

// capSegments merges the weakest boundaries until at most MaxChangePoints remain.
func capSegments(xs []float64, pos []int, cfg Config, sigma float64, segs []Segment) []Segment {
	if cfg.MaxChangePoints == 0 || len(segs)-1 <= cfg.MaxChangePoints {
		return segs
	}
	f := newTrendFit(xs, pos, cfg, sigma)
	bounds := []int{0}
	for _, s := range segs[1:] {
		bounds = append(bounds, f.observedIndex(s.Start))
	}
	bounds = append(bounds, len(xs))
	for len(bounds)-2 > cfg.MaxChangePoints {
		weakest, gain := 0, math.Inf(1)
		for i := 1; i < len(bounds)-1; i++ {
			if g := f.boundaryGain(bounds[i-1], bounds[i], bounds[i+1]); g < gain {
				weakest, gain = i, g
			}
		}
		bounds = slices.Delete(bounds, weakest, weakest+1)
	}
	return f.segments(bounds)
}

// boundaryGain is how much the penalized-free fit worsens (σ² units) if the boundary
// at b between segments [a,b) and [b,c) is removed.
func (f *trendFit) boundaryGain(a, b, c int) float64 {
	merged, _ := f.cost(a, c)
	left, _ := f.cost(a, b)
	right, _ := f.cost(b, c)
	return merged - left - right
}

func trendChangePoints(xs []float64, pos []int, cfg Config, sigma float64, segs []Segment) []ChangePoint {
	if len(segs) < 2 {
		return nil
	}
	f := newTrendFit(xs, pos, cfg, sigma)
	out := make([]ChangePoint, 0, len(segs)-1)
	for i := 1; i < len(segs); i++ {
		a, b := segs[i-1], segs[i]
		ia, ib, ic := f.observedIndex(a.Start), f.observedIndex(b.Start), f.observedIndex(b.End-1)+1
		stat := math.Sqrt(math.Max(0, f.boundaryGain(ia, ib, ic)))
		n1, n2 := float64(ib-ia), float64(ic-ib)
		before, after := a.At(b.Start), b.At(b.Start)
		cp := ChangePoint{
			Index: b.Start, Before: before, After: after,
			Statistic: stat, PValue: lrtMaxP(stat, ic-ia, cfg.MinSegment),
			Z:           (after - before) / (sigma * math.Sqrt(1/n1+1/n2)),
			SlopeBefore: a.Slope, SlopeAfter: b.Slope,
			Kind: KindLevel,
		}
		if a.Linear || b.Linear {
			cp.Kind = KindTrend
		}
		out = append(out, cp)
	}
	return out
}

// noiseOf estimates σ and the lag-1 autocorrelation of residuals (same[i]: residual i
// follows i−1 within one segment); n is the series length for the bias correction.
func noiseOf(res []float64, same []bool, n int) Noise {
	v := trimmedVar(res)
	if v == 0 {
		return Noise{}
	}
	// Winsorize so single outliers do not dominate the autocovariance.
	c := 3 * math.Sqrt(v)
	var num, den float64
	pairs := 0
	for i := range res {
		r := math.Max(-c, math.Min(c, res[i]))
		den += r * r
		if same[i] {
			num += r * math.Max(-c, math.Min(c, res[i-1]))
			pairs++
		}
	}
	phi := 0.0
	if den > 0 && pairs > 0 {
		phi = num / den
		// The sample autocorrelation is biased toward 0 by about (1+4φ)/n, more so
		// after fitting segment means.
		phi += (1 + 4*phi) / float64(n)
	}
	if phi < 1/math.Sqrt(float64(n)) {
		phi = 0
	}
	phi = math.Min(phi, maxPhi)
	return Noise{
		Sigma:        math.Sqrt(v),
		LongRunSigma: math.Sqrt(v * (1 + phi) / (1 - phi)),
		Phi:          phi,
	}
}
