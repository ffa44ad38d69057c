package detect

import (
	"fmt"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/changepoint"
)

// Config holds every parameter of the detection pipeline. Start from DefaultConfig.
type Config struct {
	// MinShare skips functions whose mean inclusive share is below it (1e-5 = 0.001%).
	MinShare float64
	// ChangePoint configures the change-point search on each share series (its Alpha
	// is the level of the search, which only proposes changes).
	ChangePoint changepoint.Config
	// Alpha is the level of the before/after test that confirms a change (and of the
	// strongest change point of its event). It is per change, and a series has a few
	// candidate changes per window, so it must be well below the target false-positive
	// rate per series.
	Alpha float64
	// FamilyAlpha bounds the false positives per service (Bonferroni): the
	// before/after test of an event's net change, and the strongest change point of
	// the event, must reach min(Alpha, FamilyAlpha / series tested), the series being
	// the inclusive and self shares above MinShare. Noise events at p ≈ 1e-4…1e-3 are
	// frequent across ~80 series with several events each, while a real change
	// compared over hours of data is far stronger; a service with few functions
	// keeps Alpha. How it was chosen: analyzer/evaluate/TUNING.md.
	FamilyAlpha float64
	// PairedAlpha is the level of the version-paired test, lowered to FamilyAlpha /
	// (series tested × rollouts in the window) when that is smaller. It only runs
	// while two versions share buckets on enough host groups (a rollout), and its
	// noise is the scatter between host groups.
	PairedAlpha float64
	// AnalysisWindow is how far back (before ExtendedWindow) a change may start to be
	// reported; 0 means anywhere in the series. Older data is history: it sets the
	// baseline and the seasonal profile.
	AnalysisWindow time.Duration
	// ExtendedWindow is the most recent stretch in which a change must still be
	// present; a change point needs at least this much data after it.
	ExtendedWindow time.Duration
	// WentAwayFraction: a change went away when its net change (baseline → latest
	// level) is under this fraction of its peak (the level of the segment furthest
	// from the baseline) and the reversion from the peak is significant; also when,
	// after it, the level after the series' last event or in the last half extended
	// window is back under this fraction of it (a later revert, a late transient).
	WentAwayFraction float64
	// SeasonPeriod is the seasonal cycle (daily); 0 disables the seasonality stage.
	// Needs at least two periods of history before the analysis window.
	SeasonPeriod time.Duration
	// MinAbsoluteChange (share units) and MinRelativeChange (fraction of the
	// before share) are both required of a finding.
	MinAbsoluteChange float64
	MinRelativeChange float64
	// MergeTolerance is how close in time two changes must be to count as the same
	// event (merge, dedup and cost-shift).
	MergeTolerance time.Duration
	// DedupCoverage: a caller's rise is explained by a callee's if the callee's
	// absolute rise is at least this fraction of the caller's.
	DedupCoverage float64
	// CostShiftFraction: a rise is a cost shift when same-domain functions fell, at
	// the same time, by at least this fraction of it and at most the rise divided by
	// it (moved cost balances).
	CostShiftFraction float64
	// MinOverlapBuckets is how many buckets two versions must both run in before the
	// version-paired test is used.
	MinOverlapBuckets int
	// MinVersionGroups is how many host groups must run each version in those
	// buckets: the paired test measures noise as the scatter between host groups, and
	// one host on the new version (a 1% stage) would turn its host effect into a
	// "regression".
	MinVersionGroups int
	// SelfShares also tests each function's self share (not for leaves, whose self
	// and inclusive shares are the same).
	SelfShares bool
	// MaxStacks is the number of representative stacks per finding.
	MaxStacks int
	// Parallelism is the number of series analyzed at once; 0 means GOMAXPROCS.
	Parallelism int
	// Tuning holds the stages' inner thresholds (DefaultTuning).
	Tuning Tuning
	// Gradual tunes the long-term stage for ramps (DefaultGradualConfig).
	Gradual GradualConfig
}

// DefaultConfig returns the defaults: 6h analysis window, 1h extended window, daily
// seasonality, α = 0.01, and thresholds of +1% relative and 0.001% of the service
// absolute.
func DefaultConfig() Config {
	return Config{
		MinShare:          1e-5,
		ChangePoint:       changepoint.MeanShiftConfig(),
		Alpha:             1e-3,
		FamilyAlpha:       0.008,
		PairedAlpha:       1e-4,
		AnalysisWindow:    6 * time.Hour,
		ExtendedWindow:    time.Hour,
		WentAwayFraction:  0.3,
		SeasonPeriod:      24 * time.Hour,
		MinAbsoluteChange: 1e-5,
		MinRelativeChange: 0.01,
		MergeTolerance:    30 * time.Minute,
		DedupCoverage:     0.5,
		CostShiftFraction: 0.75,
		MinOverlapBuckets: 3,
		MinVersionGroups:  3,
		MaxStacks:         3,
		SelfShares:        true,
		Tuning:            DefaultTuning(),
		Gradual:           DefaultGradualConfig(),
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if err := c.ChangePoint.Validate(); err != nil {
		return fmt.Errorf("change point: %w", err)
	}
	if !(c.Alpha > 0 && c.Alpha < 1) || !(c.PairedAlpha > 0 && c.PairedAlpha < 1) || !(c.FamilyAlpha > 0 && c.FamilyAlpha < 1) {
		return fmt.Errorf("alpha %v, family alpha %v, paired alpha %v: want 0 < alpha < 1", c.Alpha, c.FamilyAlpha, c.PairedAlpha)
	}
	if err := checkFractions([]namedValue{
		{"min share", c.MinShare}, {"went-away fraction", c.WentAwayFraction},
		{"min absolute change", c.MinAbsoluteChange}, {"min relative change", c.MinRelativeChange},
		{"dedup coverage", c.DedupCoverage}, {"cost-shift fraction", c.CostShiftFraction},
	}); err != nil {
		return err
	}
	if c.DedupCoverage == 0 {
		return fmt.Errorf("dedup coverage 0: want > 0")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"analysis window", c.AnalysisWindow}, {"extended window", c.ExtendedWindow}, {"season period", c.SeasonPeriod}, {"merge tolerance", c.MergeTolerance}} {
		if d.v < 0 {
			return fmt.Errorf("%s %v: want >= 0", d.name, d.v)
		}
	}
	if c.MinOverlapBuckets < 2 {
		return fmt.Errorf("min overlap buckets %d: want >= 2", c.MinOverlapBuckets)
	}
	if c.MinVersionGroups < 2 {
		return fmt.Errorf("min version groups %d: want >= 2", c.MinVersionGroups)
	}
	if c.Parallelism < 0 {
		return fmt.Errorf("parallelism %d: want >= 0", c.Parallelism)
	}
	if c.MaxStacks < 0 {
		return fmt.Errorf("max stacks %d: want >= 0", c.MaxStacks)
	}
	if err := c.Tuning.Validate(); err != nil {
		return fmt.Errorf("tuning: %w", err)
	}
	if c.Gradual.Enabled {
		if err := c.Gradual.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// buckets converts a duration to a whole number of buckets (rounding up).
func buckets(d, step time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + step - 1) / step)
}
