package simulate

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Config describes a simulated fleet. Start from DefaultConfig.
type Config struct {
	// Seed makes the fleet deterministic: same Config, same fleet, same samples.
	Seed int64
	// Services is the number of services; Hosts the number of hosts per service.
	Services int
	Hosts    int
	// HostGroups is how many groups hosts are split into for rollup rows
	// (group = host index mod HostGroups).
	HostGroups int
	// Start is the start of the first bucket; Duration / Bucket buckets follow.
	Start    time.Time
	Duration time.Duration
	Bucket   time.Duration
	// History is a quiet stretch at the start with no releases (0: none): detectors
	// need history before their analysis window, e.g. two days for seasonality.
	History time.Duration
	// SampleHz is the per-core sampling rate and CoresPerHost the mean busy cores of a
	// host: a host yields about SampleHz × CoresPerHost × Bucket samples per bucket.
	SampleHz     float64
	CoresPerHost float64
	// Functions is the number of service-owned functions in each service's catalogue
	// (standard-library leaves and the runtime come on top).
	Functions int
	// ZipfS is the Zipf exponent of self costs over the call tree's nodes.
	ZipfS float64
	// HostSigma is the standard deviation of the per-host log-normal effect on each
	// stack's cost (over-dispersion between hosts).
	HostSigma float64
	// Diurnal is the relative amplitude of the daily traffic cycle; DriftPerDay the
	// relative traffic growth per day. Both change sample volume, not the mix.
	Diurnal     float64
	DriftPerDay float64
	// SeasonalMix is the relative daily swing of one function's cost (a seasonal
	// negative control); 0 disables it.
	SeasonalMix float64
	// Spikes is the number of transient spikes per service (a function's cost multiplies
	// by SpikeSize for one to three buckets, then reverts); HostFailures the number of
	// host outages per service (no samples for a few buckets).
	Spikes       int
	SpikeSize    float64
	HostFailures int
	// Releases is the number of releases per service after the initial version v1;
	// each rolls out in Stages (fractions of hosts) StageDuration apart.
	Releases      int
	Stages        []float64
	StageDuration time.Duration
	// NoisePRs is the number of pull requests per release that change code without
	// changing cost (root-cause distractors).
	NoisePRs int
	// Regressions are the injected regressions; RandomRegressions adds that many more
	// on random functions with sizes in [RandomMinSize, RandomMaxSize] (log-uniform).
	Regressions       []RegressionSpec
	RandomRegressions int
	RandomMinSize     float64
	RandomMaxSize     float64
	// CostShifts and Refactors are negative controls per service: a cost shift moves
	// ShiftFraction of a function's self cost to another function of its package
	// (total unchanged); a refactor renames a function (cost unchanged).
	CostShifts    int
	ShiftFraction float64
	Refactors     int
	// TrendControls is the number of trend controls per service: a function whose
	// self cost falls linearly by TrendSize (0.3 = −30%) from the end of History to
	// the end of the data, with no release (shrinking data, not a regression).
	TrendControls int
	TrendSize     float64
}

// RegressionSpec asks for one regression: Function's self cost grows by Size (0.05 =
// +5%) in some release. Function may be empty (a random function); Release 0 means any.
// Ramp > 0 makes it gradual: on hosts running the release the cost grows linearly
// from the release's start and reaches Size after Ramp (a cache or table that fills
// with data after the change).
type RegressionSpec struct {
	Function string        `json:"function,omitempty"`
	Size     float64       `json:"size"`
	Release  int           `json:"release,omitempty"`
	Ramp     time.Duration `json:"ramp,omitempty"`
}

// DefaultConfig is a small fleet: 2 services × 20 hosts, one day of 10-minute buckets,
// 3 releases, 2 random regressions and one of each negative control per service.
func DefaultConfig() Config {
	return Config{
		Seed:              1,
		Services:          2,
		Hosts:             20,
		HostGroups:        8,
		Start:             time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC),
		Duration:          24 * time.Hour,
		Bucket:            10 * time.Minute,
		SampleHz:          19,
		CoresPerHost:      2,
		Functions:         60,
		ZipfS:             1.0,
		HostSigma:         0.1,
		Diurnal:           0.3,
		DriftPerDay:       0.05,
		SeasonalMix:       0.2,
		Spikes:            1,
		SpikeSize:         3,
		HostFailures:      1,
		Releases:          3,
		Stages:            []float64{0.01, 0.1, 0.5, 1},
		StageDuration:     30 * time.Minute,
		NoisePRs:          3,
		RandomRegressions: 2,
		RandomMinSize:     0.05,
		RandomMaxSize:     0.5,
		CostShifts:        1,
		ShiftFraction:     0.3,
		Refactors:         1,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Services < 1 || c.Services > len(servicePool):
		return fmt.Errorf("services %d: want 1..%d", c.Services, len(servicePool))
	case c.Hosts < 1:
		return fmt.Errorf("hosts %d: want >= 1", c.Hosts)
	case c.HostGroups < 1 || c.HostGroups > 256:
		return fmt.Errorf("host groups %d: want 1..256", c.HostGroups)
	case c.Bucket < time.Second:
		return fmt.Errorf("bucket %v: want >= 1s", c.Bucket)
	case c.Duration < c.Bucket:
		return fmt.Errorf("duration %v: want >= bucket %v", c.Duration, c.Bucket)
	case c.History < 0 || c.History >= c.Duration:
		return fmt.Errorf("history %v: want 0 <= history < duration %v", c.History, c.Duration)
	case !(c.SampleHz > 0) || !(c.CoresPerHost > 0):
		return fmt.Errorf("sample hz %v, cores per host %v: want > 0", c.SampleHz, c.CoresPerHost)
	case c.Functions < 8 || c.Functions > maxOwnedFunctions:
		return fmt.Errorf("functions %d: want 8..%d", c.Functions, maxOwnedFunctions)
	case !(c.ZipfS >= 0):
		return fmt.Errorf("zipf exponent %v: want >= 0", c.ZipfS)
	case !(c.HostSigma >= 0) || !(c.Diurnal >= 0 && c.Diurnal < 1) || !(c.SeasonalMix >= 0 && c.SeasonalMix < 1):
		return fmt.Errorf("host sigma %v, diurnal %v, seasonal mix %v: want >= 0 (amplitudes < 1)", c.HostSigma, c.Diurnal, c.SeasonalMix)
	case c.DriftPerDay <= -1:
		return fmt.Errorf("drift per day %v: want > -1", c.DriftPerDay)
	case c.Spikes < 0 || c.HostFailures < 0 || c.NoisePRs < 0 || c.CostShifts < 0 || c.Refactors < 0 || c.RandomRegressions < 0:
		return errors.New("negative count of spikes, host failures, noise PRs, controls or random regressions")
	case c.Spikes > 0 && !(c.SpikeSize > 0):
		return fmt.Errorf("spike size %v: want > 0", c.SpikeSize)
	case c.Releases < 0:
		return fmt.Errorf("releases %d: want >= 0", c.Releases)
	case len(c.Stages) == 0 || c.Stages[len(c.Stages)-1] != 1:
		return fmt.Errorf("stages %v: want increasing fractions ending at 1", c.Stages)
	case c.StageDuration < 0:
		return fmt.Errorf("stage duration %v: want >= 0", c.StageDuration)
	case c.CostShifts > 0 && !(c.ShiftFraction > 0 && c.ShiftFraction < 1):
		return fmt.Errorf("shift fraction %v: want in (0,1)", c.ShiftFraction)
	}
	for i := 1; i < len(c.Stages); i++ {
		if !(c.Stages[i] > c.Stages[i-1]) || c.Stages[i-1] <= 0 {
			return fmt.Errorf("stages %v: want increasing fractions in (0,1] ending at 1", c.Stages)
		}
	}
	if c.Stages[0] <= 0 {
		return fmt.Errorf("stages %v: want increasing fractions in (0,1] ending at 1", c.Stages)
	}
	wantReg := len(c.Regressions) + c.RandomRegressions + c.CostShifts + c.Refactors
	if wantReg > 0 && c.Releases == 0 {
		return errors.New("regressions or controls need at least one release")
	}
	if c.RandomRegressions > 0 && !(c.RandomMinSize > 0 && c.RandomMaxSize >= c.RandomMinSize) {
		return fmt.Errorf("random sizes [%v, %v]: want 0 < min <= max", c.RandomMinSize, c.RandomMaxSize)
	}
	for i, r := range c.Regressions {
		if !(r.Size > -1) || r.Size == 0 {
			return fmt.Errorf("regression %d (%s): size %v: want > -1 and != 0", i, r.Function, r.Size)
		}
		if r.Release < 0 || r.Release > c.Releases {
			return fmt.Errorf("regression %d (%s): release %d: want 0..%d", i, r.Function, r.Release, c.Releases)
		}
		if r.Ramp < 0 || r.Ramp > 0 && r.Ramp < c.Bucket {
			return fmt.Errorf("regression %d (%s): ramp %v: want 0 or >= bucket %v", i, r.Function, r.Ramp, c.Bucket)
		}
	}
	if c.TrendControls < 0 || c.TrendControls > 0 && !(c.TrendSize > 0 && c.TrendSize < 1) {
		return fmt.Errorf("trend controls %d of size %v: want >= 0, size in (0,1)", c.TrendControls, c.TrendSize)
	}
	return nil
}

// ParseRegressions parses the command-line form of regressions: a comma-separated list
// of FUNCTION=SIZE (e.g. "billing/pricing.(*Engine).Quote=0.05"), FUNCTION=SIZE@RAMP
// (a gradual regression reaching SIZE RAMP after its release, e.g. "…Quote=0.2@24h")
// and random:K items (K regressions on random functions). It returns the explicit specs and the random count.
func ParseRegressions(s string) ([]RegressionSpec, int, error) {
	var specs []RegressionSpec
	random := 0
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if k, ok := strings.CutPrefix(item, "random:"); ok {
			n, err := strconv.Atoi(k)
			if err != nil || n < 0 {
				return nil, 0, fmt.Errorf("regression %q: want random:K with K >= 0", item)
			}
			random += n
			continue
		}
		i := strings.LastIndexByte(item, '=')
		if i <= 0 {
			return nil, 0, fmt.Errorf("regression %q: want FUNCTION=SIZE or random:K", item)
		}
		sz, ramp, ramped := strings.Cut(item[i+1:], "@")
		size, err := strconv.ParseFloat(sz, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("regression %q: size: %w", item, err)
		}
		sp := RegressionSpec{Function: item[:i], Size: size}
		if ramped {
			if sp.Ramp, err = time.ParseDuration(ramp); err != nil || sp.Ramp <= 0 {
				return nil, 0, fmt.Errorf("regression %q: ramp %q: want a positive duration such as 24h", item, ramp)
			}
		}
		specs = append(specs, sp)
	}
	return specs, random, nil
}
