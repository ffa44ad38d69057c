package changepoint

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
)

// Config tunes Detect. The zero value is not valid; start from DefaultConfig.
type Config struct {
	// Alpha is the significance level of each split test (false-positive rate per
	// series on noise without change points).
	Alpha float64
	// MinSegment is the shortest segment (in points) a change point may create.
	MinSegment int
	// Sigma, if > 0, is the known long-run standard deviation of the noise; 0 estimates
	// it robustly from the series.
	Sigma float64
	// IgnoreAutocorrelation treats the noise as independent even if the series shows
	// positive lag-1 autocorrelation.
	IgnoreAutocorrelation bool
	// MaxChangePoints caps the number of change points returned (0 = no cap); the
	// most significant splits are found first.
	MaxChangePoints int
	// Trend fits each segment as a level or a line (whichever the penalized
	// likelihood prefers), so a steady trend is one segment instead of a staircase of
	// mean shifts and a change of slope is a change point. Off, only levels are
	// fitted (the mean-shift model).
	Trend bool
	// OutlierSDs clips each value to within this many robust noise σ of the running
	// median of 2·MinSegment+1 points around it before the mean-shift search, so an
	// isolated outlier (one slow run) neither fakes a shift nor swamps a real one; a
	// running median keeps steps. 0 disables clipping.
	OutlierSDs float64
}

// DefaultConfig returns the defaults: α = 0.01, segments of at least 5 points, the
// mean-shift model (binary segmentation, O(n log n)).
func DefaultConfig() Config {
	return Config{Alpha: 0.01, MinSegment: 5, OutlierSDs: 4}
}

// MeanShiftConfig is DefaultConfig: the mean-shift model only.
func MeanShiftConfig() Config { return DefaultConfig() }

// TrendConfig is DefaultConfig with the trend model (levels or lines per segment). Its
// optimal partitioning is O(n²) on series without changes, so it suits histories of
// hundreds of points, not thousands.
func TrendConfig() Config {
	c := DefaultConfig()
	c.Trend = true
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if !(c.Alpha > 0 && c.Alpha < 1) {
		return fmt.Errorf("alpha %v: want 0 < alpha < 1", c.Alpha)
	}
	if c.MinSegment < 2 {
		return fmt.Errorf("min segment %d: want >= 2", c.MinSegment)
	}
	if c.Sigma < 0 || math.IsNaN(c.Sigma) || math.IsInf(c.Sigma, 0) {
		return fmt.Errorf("sigma %v: want a finite value >= 0", c.Sigma)
	}
	if !(c.OutlierSDs >= 0) || math.IsInf(c.OutlierSDs, 0) {
		return fmt.Errorf("outlier sds %v: want a finite value >= 0", c.OutlierSDs)
	}
	if c.MaxChangePoints < 0 {
		return fmt.Errorf("max change points %d: want >= 0", c.MaxChangePoints)
	}
	return nil
}

// ChangePoint is one detected mean shift.
type ChangePoint struct {
	// Index is the first index of the new segment.
	Index int `json:"index"`
	// Before and After are the means of the final segments on either side.
	Before float64 `json:"before"`
	After  float64 `json:"after"`
	// Statistic is the split test's maximum two-sample z score, over all admissible
	// splits of the segment that was split (its square is the likelihood ratio).
	Statistic float64 `json:"statistic"`
	// PValue is P(max ≥ Statistic) without a change, so it accounts for the search
	// over split points.
	PValue float64 `json:"p_value"`
	// Z is the two-sample z score of the split, (After−Before)/(σ·√(1/n₁+1/n₂)), using
	// the final segments.
	Z float64 `json:"z"`
	// Kind is KindLevel for a shift between two levels, KindTrend when either side is
	// a line; then Before and After are the two fits' values at Index and SlopeBefore,
	// SlopeAfter their slopes per index (a pure slope change has Before ≈ After).
	Kind        string  `json:"kind"`
	SlopeBefore float64 `json:"slope_before,omitempty"`
	SlopeAfter  float64 `json:"slope_after,omitempty"`
}

// Change-point kinds.
const (
	KindLevel = "level"
	KindTrend = "trend"
)

// maxPhi caps the estimated lag-1 autocorrelation: beyond it the series is closer to
// a random walk than to noise around levels, and σ would grow without bound.
const maxPhi = 0.9

// Noise describes the estimated noise of a series.
type Noise struct {
	// Sigma is the marginal standard deviation, LongRunSigma the standard deviation
	// that governs sums (σ·√((1+φ)/(1−φ)) for AR(1)), Phi the lag-1 autocorrelation.
	Sigma        float64 `json:"sigma"`
	LongRunSigma float64 `json:"long_run_sigma"`
	Phi          float64 `json:"phi"`
}

// ErrNonFinite is wrapped by Detect's error for infinite input (NaN means missing).
var ErrNonFinite = errors.New("non-finite value")

// Detect finds mean shifts in xs by binary segmentation: each segment is split where
// the likelihood ratio for one mean shift is largest, if that maximum is significant at
// cfg.Alpha; both halves are then searched again. Series shorter than 2·MinSegment
// have no change points.
//
// NaN marks a missing value (a gap in time buckets, a failed run): it is skipped, not
// imputed, and the observed values on either side are treated as neighbours. Indices
// stay in the coordinates of xs: a change point's Index is the first observed index of
// its new segment, and MinSegment counts observed points.
func Detect(xs []float64, cfg Config) ([]ChangePoint, error) {
	cps, _, err := DetectNoise(xs, cfg)
	return cps, err
}

// DetectNoise is Detect that also returns the noise estimate the tests used (the
// residual noise around the final segmentation, or cfg.Sigma when given).
func DetectNoise(xs []float64, cfg Config) ([]ChangePoint, Noise, error) {
	cps, _, nz, err := DetectSegments(xs, cfg)
	return cps, nz, err
}

// DetectSegments is DetectNoise that also returns the fitted segments of the trend
// model (nil with the mean-shift model).
func DetectSegments(xs []float64, cfg Config) ([]ChangePoint, []Segment, Noise, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, Noise{}, fmt.Errorf("changepoint config: %w", err)
	}
	for i, x := range xs {
		if math.IsInf(x, 0) {
			return nil, nil, Noise{}, fmt.Errorf("index %d is %v: %w", i, x, ErrNonFinite)
		}
	}
	obs, idx := Observed(xs)
	if cfg.Trend {
		if len(obs) == 0 {
			return nil, nil, Noise{}, nil
		}
		cps, segs, nz := detectTrend(obs, idx, cfg, noiseFloor(obs))
		return cps, segs, nz, nil
	}
	cps, nz := detectObserved(clipOutliers(obs, cfg), cfg)
	for i := range cps {
		cps[i].Index = idx[cps[i].Index]
	}
	return cps, nil, nz, nil
}

// noiseFloor is the smallest σ used: an exactly piecewise-constant series has σ = 0; a
// tiny floor relative to the data keeps exact steps detectable and rounding noise not.
func noiseFloor(xs []float64) float64 {
	scale := 0.0
	for _, x := range xs {
		scale = math.Max(scale, math.Abs(x))
	}
	if scale == 0 {
		return 1e-300 // all zeros
	}
	return 1e-9 * scale
}

// clipOutliers returns xs with each value clipped to within cfg.OutlierSDs robust σ
// (EstimateNoise's marginal σ) of the running median of 2·MinSegment+1 points; xs
// itself when nothing is clipped.
func clipOutliers(xs []float64, cfg Config) []float64 {
	if cfg.OutlierSDs == 0 || len(xs) < 2*cfg.MinSegment+1 {
		return xs
	}
	sigma := cfg.Sigma
	if sigma == 0 {
		sigma = EstimateNoise(xs).Sigma
	}
	if sigma == 0 {
		return xs
	}
	bound := cfg.OutlierSDs * sigma
	h := cfg.MinSegment
	var out []float64
	win := make([]float64, 0, 2*h+1)
	for i, x := range xs {
		lo, hi := max(0, i-h), min(len(xs), i+h+1)
		win = append(win[:0], xs[lo:hi]...)
		med := median(win)
		c := math.Max(med-bound, math.Min(med+bound, x))
		if c != x && out == nil {
			out = slices.Clone(xs)
		}
		if out != nil {
			out[i] = c
		}
	}
	if out == nil {
		return xs
	}
	return out
}

// Observed drops the missing values (NaN) of xs and returns the rest with their
// original indices; xs itself is returned when nothing is missing. It is the
// one missing-value rule of the package, for callers that segment series too.
func Observed(xs []float64) ([]float64, []int) {
	idx := make([]int, 0, len(xs))
	missing := false
	for i, x := range xs {
		if math.IsNaN(x) {
			missing = true
			continue
		}
		idx = append(idx, i)
	}
	if !missing {
		return xs, idx
	}
	obs := make([]float64, len(idx))
	for j, i := range idx {
		obs[j] = xs[i]
	}
	return obs, idx
}

// detectObserved is DetectNoise on a series without missing values; indices are in
// the coordinates of xs.
func detectObserved(xs []float64, cfg Config) ([]ChangePoint, Noise) {
	n := len(xs)
	m := cfg.MinSegment
	if n < 2*m {
		return nil, EstimateNoise(xs)
	}
	prefix := make([]float64, n+1)
	for i, x := range xs {
		prefix[i+1] = prefix[i] + x
	}
	// An exactly piecewise-constant series has σ = 0; a tiny floor relative to the data
	// keeps exact steps detectable and rounding noise not.
	scale := 0.0
	for _, x := range xs {
		scale = math.Max(scale, math.Abs(x))
	}
	floor := 1e-9 * scale
	if floor == 0 {
		return nil, Noise{} // all zeros
	}
	if cfg.Sigma > 0 {
		return segment(xs, prefix, cfg, math.Max(cfg.Sigma, floor)), Noise{Sigma: cfg.Sigma, LongRunSigma: cfg.Sigma}
	}
	// The noise level comes from the residuals around the current segmentation, so
	// shifts do not inflate it; two refinements settle it (the first guess, from
	// differences, cannot tell autocorrelation from white noise well on short series).
	nz := EstimateNoise(xs)
	sigma := nz.LongRunSigma
	if cfg.IgnoreAutocorrelation {
		sigma = nz.Sigma
	}
	cps := segment(xs, prefix, cfg, math.Max(sigma, floor))
	for range 2 {
		nz = residualNoise(xs, prefix, cps)
		s := nz.LongRunSigma
		if cfg.IgnoreAutocorrelation {
			s = nz.Sigma
		}
		if s == sigma {
			break
		}
		sigma = s
		cps = segment(xs, prefix, cfg, math.Max(sigma, floor))
	}
	return cps, nz
}

// segment runs binary segmentation with a known long-run σ.
func segment(xs, prefix []float64, cfg Config, sigma float64) []ChangePoint {
	n, m := len(xs), cfg.MinSegment
	type split struct {
		index   int
		stat, p float64
		lo, hi  int
	}
	var found []split
	// Work queue ordered by significance so MaxChangePoints keeps the strongest splits.
	queue := [][2]int{{0, n}}
	var pending []split
	for len(queue) > 0 || len(pending) > 0 {
		for _, seg := range queue {
			lo, hi := seg[0], seg[1]
			if hi-lo < 2*m {
				continue
			}
			k, stat := lrtSplit(prefix, lo, hi, m, sigma)
			p := lrtMaxP(stat, hi-lo, m)
			if p < cfg.Alpha {
				pending = append(pending, split{index: k, stat: stat, p: p, lo: lo, hi: hi})
			}
		}
		queue = queue[:0]
		if len(pending) == 0 {
			break
		}
		best := 0
		for i := range pending {
			if pending[i].p < pending[best].p || (pending[i].p == pending[best].p && pending[i].stat > pending[best].stat) {
				best = i
			}
		}
		s := pending[best]
		pending = slices.Delete(pending, best, best+1)
		found = append(found, s)
		if cfg.MaxChangePoints > 0 && len(found) == cfg.MaxChangePoints {
			break
		}
		queue = append(queue, [2]int{s.lo, s.index}, [2]int{s.index, s.hi})
	}
	sort.Slice(found, func(i, j int) bool { return found[i].index < found[j].index })
	out := make([]ChangePoint, len(found))
	for i, s := range found {
		lo, hi := 0, n
		if i > 0 {
			lo = found[i-1].index
		}
		if i+1 < len(found) {
			hi = found[i+1].index
		}
		n1, n2 := float64(s.index-lo), float64(hi-s.index)
		before := (prefix[s.index] - prefix[lo]) / n1
		after := (prefix[hi] - prefix[s.index]) / n2
		out[i] = ChangePoint{
			Index: s.index, Before: before, After: after,
			Statistic: s.stat, PValue: s.p,
			Z:    (after - before) / (sigma * math.Sqrt(1/n1+1/n2)),
			Kind: KindLevel,
		}
	}
	return out
}

// residualNoise estimates σ and the lag-1 autocorrelation from the residuals around
// the segment means of cps.
func residualNoise(xs, prefix []float64, cps []ChangePoint) Noise {
	n := len(xs)
	res := make([]float64, n)
	sameSeg := make([]bool, n) // res[i] and res[i-1] are in the same segment
	lo := 0
	for s := 0; s <= len(cps); s++ {
		hi := n
		if s < len(cps) {
			hi = cps[s].Index
		}
		mean := (prefix[hi] - prefix[lo]) / float64(hi-lo)
		for i := lo; i < hi; i++ {
			res[i] = xs[i] - mean
			sameSeg[i] = i > lo
		}
		lo = hi
	}
	return noiseOf(res, sameSeg, n)
}

// lrtSplit returns the split index in [lo+m, hi−m] maximizing the two-sample z score
// |mean(right) − mean(left)| / (σ·√(1/k + 1/(n−k))) — the Gaussian likelihood ratio for
// one mean shift is its square — and that maximum.
func lrtSplit(prefix []float64, lo, hi, m int, sigma float64) (int, float64) {
	n := float64(hi - lo)
	total := prefix[hi] - prefix[lo]
	best, bestK := -1.0, lo+m
	for k := lo + m; k <= hi-m; k++ {
		j := float64(k - lo)
		// |S_k − k/n·S_n| / √(k(n−k)/n) equals the z score times σ.
		z := math.Abs(prefix[k]-prefix[lo]-j/n*total) / math.Sqrt(j*(n-j)/n)
		if z > best {
			best, bestK = z, k
		}
	}
	return bestK, best / sigma
}

// lrtMaxP approximates P(max_{m≤k≤n−m} |Z_k| ≥ b) for Gaussian noise without a change
// (James, James & Siegmund 1987, Biometrika 74:71–83):
//
//	b·φ(b)·∫ ν(b/√(n·t(1−t))) / (t(1−t)) dt over t ∈ [m/n, 1−m/n],
//
// where ν corrects the continuous-time boundary crossing for discrete steps. The
// integral is taken over u = logit(t), where dt/(t(1−t)) = du and the integrand is
// smooth.
func lrtMaxP(b float64, n, m int) float64 {
	if b <= 0 || n < 2*m {
		return 1
	}
	t0 := float64(m) / float64(n)
	u0, u1 := math.Log(t0/(1-t0)), math.Log((1-t0)/t0)
	if u1 <= u0 {
		// A single admissible split: an ordinary two-sided z-test.
		return math.Erfc(b / math.Sqrt2)
	}
	const steps = 64
	h := (u1 - u0) / steps
	integral := 0.0
	for i := 0; i <= steps; i++ {
		u := u0 + float64(i)*h
		t := 1 / (1 + math.Exp(-u))
		v := nu(b / math.Sqrt(float64(n)*t*(1-t)))
		if i == 0 || i == steps {
			v /= 2
		}
		integral += v * h
	}
	phi := math.Exp(-b*b/2) / math.Sqrt(2*math.Pi)
	p := b * phi * integral
	// Never below the single-split p-value, never above 1.
	return math.Min(1, math.Max(p, math.Erfc(b/math.Sqrt2)))
}

// nu is Siegmund's approximation of the overshoot correction ν(x).
func nu(x float64) float64 {
	if x < 1e-9 {
		return 1
	}
	h := x / 2
	cdf := 0.5 * math.Erfc(-h/math.Sqrt2)
	pdf := math.Exp(-h*h/2) / math.Sqrt(2*math.Pi)
	return (2 / x) * (cdf - 0.5) / (h*cdf + pdf)
}

// EstimateNoise estimates the noise of xs robustly, so that mean shifts and isolated
// outliers do not inflate it: the variances of lag-1 and lag-2 differences are
// estimated with a 10%-trimmed mean of squares; for AR(1) noise
// Var(x_t−x_{t−1}) = 2σ²(1−φ) and Var(x_t−x_{t−2}) = 2σ²(1−φ²), so their ratio is 1+φ.
func EstimateNoise(xs []float64) Noise {
	n := len(xs)
	if n < 3 {
		return Noise{}
	}
	d1 := make([]float64, 0, n-1)
	for i := 1; i < n; i++ {
		d1 = append(d1, xs[i]-xs[i-1])
	}
	v1 := madVar(d1)
	if v1 == 0 {
		return Noise{}
	}
	phi := 0.0
	if n >= 8 {
		d2 := make([]float64, 0, n-2)
		for i := 2; i < n; i++ {
			d2 = append(d2, xs[i]-xs[i-2])
		}
		phi = madVar(d2)/v1 - 1
		// The ratio is noisy (sd ≈ 1.3/√n for white noise); only act on autocorrelation
		// that is clearly there, so white noise keeps its nominal false-positive rate.
		if phi < 2/math.Sqrt(float64(n)) {
			phi = 0
		}
		phi = math.Min(phi, maxPhi)
	}
	sigma2 := v1 / (2 * (1 - phi))
	return Noise{
		Sigma:        math.Sqrt(sigma2),
		LongRunSigma: math.Sqrt(sigma2 * (1 + phi) / (1 - phi)),
		Phi:          phi,
	}
}

// madVar estimates the variance of Gaussian-like values from their median absolute
// deviation around the median: a trend only shifts the median of differences, and up
// to half the values may be outliers or steps without moving it.
func madVar(d []float64) float64 {
	if len(d) == 0 {
		return 0
	}
	c := slices.Clone(d)
	med := median(c)
	for i := range c {
		c[i] = math.Abs(c[i] - med)
	}
	// 1.4826·MAD is consistent for the Gaussian standard deviation.
	s := madConsistency * median(c)
	return s * s
}

// madConsistency makes the median absolute deviation a consistent estimate of the
// Gaussian σ (1/Φ⁻¹(3/4)).
const madConsistency = 1.482602218505602

// median returns the median of xs, reordering xs.
func median(xs []float64) float64 {
	n := len(xs)
	k := n/2 + 1
	selectKth(xs, k)
	hi := slices.Max(xs[:k])
	if n%2 == 1 {
		return hi
	}
	selectKth(xs, k-1)
	return (hi + slices.Max(xs[:k-1])) / 2
}

// trimmedVar estimates the variance of zero-mean Gaussian-like values from the
// smallest 90% of their squares, corrected to be consistent for the Gaussian.
func trimmedVar(d []float64) float64 {
	sq := make([]float64, len(d))
	total := 0.0
	for i, x := range d {
		sq[i] = x * x
		total += sq[i]
	}
	keep := int(math.Ceil(0.9 * float64(len(sq))))
	if keep < 1 {
		keep = 1
	}
	sum := total
	if keep < len(sq) {
		// Selection, not a sort: only the split between kept and trimmed matters.
		selectKth(sq, keep)
		sum = 0
		for _, v := range sq[:keep] {
			sum += v
		}
	}
	// E[Z²; |Z| < 1.6449]/0.9 for Z ~ N(0,1): trimming the top 10% of |d|.
	const consistency = 0.62299
	return sum / float64(keep) / consistency
}

// selectKth reorders xs so that xs[:k] holds its k smallest values (quickselect).
func selectKth(xs []float64, k int) {
	lo, hi := 0, len(xs)-1
	for lo < hi {
		// Median of three as pivot keeps sorted and constant input fast.
		mid := lo + (hi-lo)/2
		if xs[mid] < xs[lo] {
			xs[mid], xs[lo] = xs[lo], xs[mid]
		}
		if xs[hi] < xs[lo] {
			xs[hi], xs[lo] = xs[lo], xs[hi]
		}
		if xs[hi] < xs[mid] {
			xs[hi], xs[mid] = xs[mid], xs[hi]
		}
		pivot := xs[mid]
		i, j := lo, hi
		for i <= j {
			for xs[i] < pivot {
				i++
			}
			for xs[j] > pivot {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i++
				j--
			}
		}
		// Now xs[lo..j] <= pivot <= xs[i..hi]; keep the side holding index k-1.
		switch {
		case k-1 <= j:
			hi = j
		case k-1 >= i:
			lo = i
		default:
			return
		}
	}
}
