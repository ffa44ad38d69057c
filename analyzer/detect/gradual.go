package detect

import (
	"fmt"
	"math"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/changepoint"
	"github.com/fleetprof/fleetprof/analyzer/findings"
)

// GradualConfig tunes the long-term stage, which looks for regressions that ramp in
// over hours to days (a staged rollout, growth of the data a function handles) and
// that the step search, which fits levels, sees as nothing or as a staircase.
type GradualConfig struct {
	// Enabled runs the stage in Run (Result.Gradual).
	Enabled bool
	// Bucket is the width the service's buckets are summed to before the search: the
	// trend model's optimal partitioning is quadratic in the number of points, and a
	// ramp over days needs no minute resolution.
	Bucket time.Duration
	// ChangePoint is the trend-model search (levels or lines per segment) on each
	// function's inclusive share.
	ChangePoint changepoint.Config
	// MinRelChange is the smallest cumulative rise of a ramp, relative to the share
	// at its start, that is reported.
	MinRelChange float64
	// MinRampBuckets is the shortest ramp (in summed buckets); a shorter rising line
	// is a step for the step search. The default, 18 hourly buckets, is longer than
	// the rising half of a daily wave (this stage has no seasonality filter yet).
	MinRampBuckets int
	// MinShare is the smallest share at the ramp's start worth a finding.
	MinShare float64
	// FamilyAlpha bounds the ramps reported by chance per service (Bonferroni): a
	// ramp's slope test must reach FamilyAlpha / series searched. One search at α
	// per series of a hundred reports a noise ramp in most services.
	FamilyAlpha float64
	// StaircaseMargin: step findings of a ramped function dated up to this far
	// outside its fitted ramp are steps of the ramp (the line's ends are uncertain
	// by a few summed buckets), dropped in favour of the ramp's finding.
	StaircaseMargin time.Duration
}

// DefaultGradualConfig returns the defaults: hourly buckets, the trend model at
// α = 0.01, ramps of at least 0.5% over at least 18 hours, functions of at least 10⁻⁴
// of the service, slopes significant at 0.008 per service (the step stages' family
// level), steps up to 3 hours (the trend model's shortest segment) outside a ramp
// part of it.
func DefaultGradualConfig() GradualConfig {
	cp := changepoint.TrendConfig()
	cp.Alpha = 0.01
	cp.MinSegment = 3
	// A bend in a ramp left in the residuals looks like autocorrelation and would
	// inflate σ until the ramp hides; hourly shares of sampled counts are close to
	// independent.
	cp.IgnoreAutocorrelation = true
	return GradualConfig{Enabled: true, Bucket: time.Hour, ChangePoint: cp, MinRelChange: 0.005, MinRampBuckets: 18, MinShare: 1e-4,
		FamilyAlpha: 0.008, StaircaseMargin: 3 * time.Hour}
}

// Validate reports the first invalid field.
func (c GradualConfig) Validate() error {
	if c.Bucket < 0 {
		return fmt.Errorf("gradual bucket %v: want >= 0", c.Bucket)
	}
	if !c.ChangePoint.Trend {
		return fmt.Errorf("gradual change point config: want the trend model")
	}
	if err := c.ChangePoint.Validate(); err != nil {
		return fmt.Errorf("gradual: %w", err)
	}
	if !(c.MinRelChange > 0) || c.MinRampBuckets < 2 || !(c.MinShare >= 0) {
		return fmt.Errorf("gradual thresholds %v/%d/%v: want > 0, >= 2, >= 0", c.MinRelChange, c.MinRampBuckets, c.MinShare)
	}
	if !(c.FamilyAlpha > 0 && c.FamilyAlpha < 1) || c.StaircaseMargin < 0 {
		return fmt.Errorf("gradual family alpha %v, staircase margin %v: want in (0,1), >= 0", c.FamilyAlpha, c.StaircaseMargin)
	}
	return nil
}

// Gradual is one ramp: a rising line in a function's inclusive share.
type Gradual struct {
	Function string
	// Start and End are the ramp's bucket range [Start, End) in the service's buckets.
	Start, End         int
	StartTime, EndTime time.Time
	// Before and After are the fitted shares at the ramp's start and end; Slope is the
	// share change per hour.
	Before, After, SlopePerHour float64
	// RelChange is (After − Before)/Before, the cumulative change.
	RelChange float64
	// BeforeSE and AfterSE are the standard errors of the fitted shares at the
	// ramp's ends; PValue is the two-sided test of the slope against zero (both from
	// the line fit's residual σ); Samples are the service's samples in the ramp.
	BeforeSE, AfterSE, PValue, Samples float64
	// VersionBefore and VersionAfter are the dominant versions in the ramp's first
	// and last summed bucket.
	VersionBefore, VersionAfter string
}

// Finding is the ramp as a finding of kind gradual (its releases and root causes
// are the caller's: they need the deploy history).
func (g Gradual) Finding(svc *Service) findings.Finding {
	abs := g.After - g.Before
	f := findings.Finding{
		Kind: findings.KindGradual, Service: svc.Name, Function: g.Function, Domain: findings.DomainOf(g.Function),
		Before:         estimate{P: g.Before, SE: g.BeforeSE, N: g.Samples}.share(),
		After:          estimate{P: g.After, SE: g.AfterSE, N: g.Samples}.share(),
		AbsoluteChange: abs, RelativeChange: g.RelChange,
		ServiceCores: svc.Cores, EstimatedCores: abs * svc.Cores,
		PValue: g.PValue, ChangeTime: g.StartTime.UTC(),
		WindowStart: svc.Start.UTC(), WindowEnd: svc.Start.Add(time.Duration(svc.Buckets()) * svc.Step).UTC(),
		VersionBefore: g.VersionBefore, VersionAfter: g.VersionAfter,
		FiltersPassed: []string{findings.FilterSignificance, findings.FilterThreshold, findings.FilterWentAway},
		Gradual: &findings.Gradual{Start: g.StartTime.UTC(), End: g.EndTime.UTC(), SlopePerHour: g.SlopePerHour,
			CumulativeChange: g.RelChange},
	}
	f.ID = findings.ComputeID(&f)
	return f
}

// lineErrors returns, for the line fitted to the observed points of xs in [lo, hi)
// (positions are indices) with residual σ, the standard errors of its values at lo
// and hi−1 and of its slope.
func lineErrors(xs []float64, lo, hi int, sigma float64) (atLo, atHi, slope float64) {
	var n, st float64
	for t := lo; t < hi; t++ {
		if !math.IsNaN(xs[t]) {
			n++
			st += float64(t)
		}
	}
	if n < 2 {
		return math.Inf(1), math.Inf(1), math.Inf(1)
	}
	mean := st / n
	sxx := 0.0
	for t := lo; t < hi; t++ {
		if !math.IsNaN(xs[t]) {
			sxx += (float64(t) - mean) * (float64(t) - mean)
		}
	}
	at := func(t int) float64 { return sigma * math.Sqrt(1/n+(float64(t)-mean)*(float64(t)-mean)/sxx) }
	return at(lo), at(hi - 1), sigma / math.Sqrt(sxx)
}

// DetectGradual runs the long-term stage on svc: per function, the inclusive share per
// summed bucket (NaN where the service had no samples, so a gap is missing, not zero)
// is segmented by the trend model, and every rising linear segment of at least
// MinRampBuckets whose cumulative rise reaches MinRelChange, and which the next
// segment does not take back by more than half (went away), is a ramp.
func DetectGradual(svc *Service, cfg GradualConfig, tun Tuning) ([]Gradual, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := svc.Validate(); err != nil {
		return nil, err
	}
	k := 1
	if cfg.Bucket > svc.Step {
		k = int(cfg.Bucket / svc.Step)
	}
	tot := sumBuckets(svc.Total, k)
	level := cfg.FamilyAlpha / float64(max(1, len(svc.Series)))
	shares := make([][]float64, len(svc.Series))
	for i := range svc.Series {
		inc := sumBuckets(svc.Series[i].Inclusive, k)
		share := make([]float64, len(tot))
		for j := range tot {
			share[j] = math.NaN()
			if tot[j] > 0 {
				share[j] = inc[j] / tot[j]
			}
		}
		shares[i] = share
	}
	if common := commonDilution(shares, tun); common != nil {
		for _, share := range shares {
			for j := range share {
				share[j] /= common[j]
			}
		}
	}
	var out []Gradual
	for i := range svc.Series {
		sr := &svc.Series[i]
		share := shares[i]
		_, segs, nz, err := changepoint.DetectSegments(share, cfg.ChangePoint)
		if err != nil {
			return nil, fmt.Errorf("gradual %s: %w", sr.Function, err)
		}
		for si, sg := range segs {
			if !sg.Linear || sg.Slope <= 0 || sg.End-sg.Start < cfg.MinRampBuckets {
				continue
			}
			before, after := sg.At(sg.Start), sg.At(sg.End-1)
			if before < cfg.MinShare || (after-before)/before < cfg.MinRelChange {
				continue
			}
			if si+1 < len(segs) && segs[si+1].At(segs[si+1].Start) < after-(after-before)/2 {
				continue // went away
			}
			bucketHours := (time.Duration(k) * svc.Step).Hours()
			start, end := sg.Start*k, min(sg.End*k, svc.Buckets())
			seLo, seHi, seSlope := lineErrors(share, sg.Start, sg.End, nz.Sigma)
			p := 0.0
			if seSlope > 0 {
				p = twoSidedP(sg.Slope / seSlope)
			}
			if p > level {
				continue
			}
			out = append(out, Gradual{
				Function: sr.Function, Start: start, End: end,
				StartTime: svc.Start.Add(time.Duration(start) * svc.Step),
				EndTime:   svc.Start.Add(time.Duration(end) * svc.Step),
				Before:    before, After: after,
				SlopePerHour: sg.Slope / bucketHours,
				RelChange:    (after - before) / before,
				BeforeSE:     seLo, AfterSE: seHi, PValue: p, Samples: sum(tot[sg.Start:sg.End]),
				VersionBefore: dominantVersion(svc, start, min(start+k, end)),
				VersionAfter:  dominantVersion(svc, max(start, end-k), end),
			})
		}
	}
	return out, nil
}

// commonDilution is, per summed bucket, the median over functions of their share
// relative to their own mean (functions with a mean share in [Tuning.DilutionMinShare,
// DilutionMaxShare), at least MinDilutionSeries of them; nil otherwise): most
// functions do not change, so it is the factor by which a few functions' trends
// dilute all shares, as dilutionAt measures it at a step.
func commonDilution(shares [][]float64, tun Tuning) []float64 {
	var rel [][]float64
	for _, share := range shares {
		var s float64
		n := 0
		for _, x := range share {
			if !math.IsNaN(x) {
				s += x
				n++
			}
		}
		if n == 0 {
			continue
		}
		if m := s / float64(n); m >= tun.DilutionMinShare && m < tun.DilutionMaxShare {
			r := make([]float64, len(share))
			for j, x := range share {
				r[j] = x / m
			}
			rel = append(rel, r)
		}
	}
	if len(rel) < tun.MinDilutionSeries || len(shares) == 0 {
		return nil
	}
	common := make([]float64, len(shares[0]))
	col := make([]float64, 0, len(rel))
	for j := range common {
		col = col[:0]
		for _, r := range rel {
			if !math.IsNaN(r[j]) {
				col = append(col, r[j])
			}
		}
		common[j] = math.NaN() // a bucket without samples stays missing
		if len(col) > 0 {
			common[j] = median(col)
		}
	}
	return common
}

// sumBuckets sums xs over consecutive runs of k buckets (the last run may be shorter).
func sumBuckets(xs []float64, k int) []float64 {
	if k <= 1 {
		return xs
	}
	out := make([]float64, (len(xs)+k-1)/k)
	for i, x := range xs {
		out[i/k] += x
	}
	return out
}
