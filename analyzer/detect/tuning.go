package detect

import (
	"fmt"
	"math"
)

// Tuning holds the inner thresholds of the stages: each decides an outcome (a
// series tested or not, a fall counted as moved cost or not), so each is named and
// has a default here rather than being a literal in a function. How the defaults
// were chosen is recorded in analyzer/evaluate/TUNING.md; change one only with an
// evaluation run before and after.
type Tuning struct {
	// SelfSeriesMaxRatio: a function's self share is tested as a series of its own
	// when its self samples are under this fraction of its inclusive ones (above
	// it the function is nearly a leaf and the self series repeats the inclusive).
	SelfSeriesMaxRatio float64
	// SelfRiseFraction: when a function's self and inclusive shares rose together
	// and the self rise is at least this fraction of the inclusive one, the rise is
	// the function's own code: the finding reports the self shares, the inclusive
	// ones beside them (below it, callees rose too and the inclusive rise is
	// reported).
	SelfRiseFraction float64

	// SeasonProfileSDs: a daily profile is removed from a series only when its
	// spread across phases stands this many relative standard errors
	// (√(2/(period−1))) above what k noisy periods of no wave would give.
	SeasonProfileSDs float64
	// SeasonalMinShare is the smallest mean self share of a function whose own
	// daily wave is divided out of every other share (seasonalDilution).
	SeasonalMinShare float64
	// SeasonalMinAmplitude is the smallest relative amplitude (SD of the daily
	// offsets ÷ the share) of such a wave: the simulated seasonal functions swing
	// 20%, the waves they leave in other shares ~1%.
	SeasonalMinAmplitude float64
	// SeasonalMaxTotal: when the seasonal functions together hold at least this
	// share of the service, no common dilution factor is computed (the rest of the
	// service is too small to normalise by).
	SeasonalMaxTotal float64

	// TailFraction is the fraction of the extended window, at the end of the data,
	// in which a change must still hold (the later went-away check; at least
	// MinTailBuckets buckets).
	TailFraction float64
	// MinTailBuckets is the smallest such tail.
	MinTailBuckets int

	// MinHostVarianceWindows is how many history windows must measure the
	// host-group variance before the version-paired test uses it (cellTest)
	// instead of Welch's test over the groups in the rollout.
	MinHostVarianceWindows int

	// CostShiftToleranceFactor widens the merge tolerance for the cost-shift
	// stage: a rise and the falls balancing it are each dated by their own
	// search, so they may lie further apart than two views of one change.
	CostShiftToleranceFactor int
	// ShrinkFactor: a same-domain function whose fall beyond dilution exceeds this
	// multiple of a rise shrank as a whole (renamed, removed from a hot path) and
	// is no source of that rise's cost.
	ShrinkFactor float64
	// AroundSpan is the length, in extended windows, of the windows before and
	// after a change in which the cost-shift stage measures rises and falls.
	AroundSpan int
	// AroundSettle is how many extended windows after the change the after window
	// starts, so a rollout has completed.
	AroundSettle int
	// WindowChangeSEs: a change measured in those windows counts only beyond this
	// many standard errors.
	WindowChangeSEs float64
	// PairedChangeSEs: the cost-shift check of a version-paired rise counts a
	// function's change between the same versions and host groups (its paired
	// fall, or a rival's paired rise) only beyond this many standard errors.
	PairedChangeSEs float64
	// TrimRobustSDs: buckets whose share is further than this many robust standard
	// deviations (1.4826 × MAD) from the window's median are left out of those
	// windows (a spike of the function must not hide or fake moved cost).
	TrimRobustSDs float64
	// MinTrimBuckets is the smallest window that is trimmed at all.
	MinTrimBuckets int
	// DilutionMinShare and DilutionMaxShare bound the inclusive shares whose
	// median relative change measures the dilution at a change (dilutionAt);
	// MinDilutionSeries is how many such functions it needs.
	DilutionMinShare, DilutionMaxShare float64
	MinDilutionSeries                  int
}

// DefaultTuning returns the tuning the evaluation figures in the README were
// measured with.
func DefaultTuning() Tuning {
	return Tuning{
		SelfSeriesMaxRatio:       0.9,
		SelfRiseFraction:         0.8,
		SeasonProfileSDs:         4,
		SeasonalMinShare:         1e-3,
		SeasonalMinAmplitude:     0.05,
		SeasonalMaxTotal:         0.9,
		TailFraction:             0.5,
		MinTailBuckets:           2,
		MinHostVarianceWindows:   5,
		CostShiftToleranceFactor: 2,
		ShrinkFactor:             4,
		AroundSpan:               6,
		AroundSettle:             2,
		WindowChangeSEs:          3,
		PairedChangeSEs:          3,
		TrimRobustSDs:            5,
		MinTrimBuckets:           5,
		DilutionMinShare:         1e-3,
		DilutionMaxShare:         0.9,
		MinDilutionSeries:        5,
	}
}

// Validate reports the first invalid field.
func (t Tuning) Validate() error {
	if err := checkFractions([]namedValue{
		{"self series max ratio", t.SelfSeriesMaxRatio}, {"self rise fraction", t.SelfRiseFraction},
		{"seasonal min share", t.SeasonalMinShare},
		{"seasonal min amplitude", t.SeasonalMinAmplitude}, {"seasonal max total", t.SeasonalMaxTotal},
		{"tail fraction", t.TailFraction}, {"dilution min share", t.DilutionMinShare},
		{"dilution max share", t.DilutionMaxShare},
	}); err != nil {
		return err
	}
	if t.DilutionMinShare >= t.DilutionMaxShare {
		return fmt.Errorf("dilution shares [%v, %v): want min < max", t.DilutionMinShare, t.DilutionMaxShare)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"season profile SDs", t.SeasonProfileSDs}, {"shrink factor", t.ShrinkFactor},
		{"window change SEs", t.WindowChangeSEs}, {"paired change SEs", t.PairedChangeSEs},
		{"trim robust SDs", t.TrimRobustSDs},
	} {
		if !(f.v > 0) || math.IsInf(f.v, 0) {
			return fmt.Errorf("%s %v: want > 0", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name  string
		v, lo int
	}{
		{"min tail buckets", t.MinTailBuckets, 1}, {"min host variance windows", t.MinHostVarianceWindows, 2},
		{"cost-shift tolerance factor", t.CostShiftToleranceFactor, 1}, {"around span", t.AroundSpan, 1},
		{"around settle", t.AroundSettle, 0}, {"min trim buckets", t.MinTrimBuckets, 3},
		{"min dilution series", t.MinDilutionSeries, 1},
	} {
		if f.v < f.lo {
			return fmt.Errorf("%s %d: want >= %d", f.name, f.v, f.lo)
		}
	}
	return nil
}

// namedValue is a parameter's name and value, for range checks in Validate.
type namedValue struct {
	name string
	v    float64
}

// checkFractions reports the first value outside 0..1 (NaN included).
func checkFractions(fs []namedValue) error {
	for _, f := range fs {
		if !(f.v >= 0 && f.v <= 1) {
			return fmt.Errorf("%s %v: want 0..1", f.name, f.v)
		}
	}
	return nil
}
