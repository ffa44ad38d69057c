package evaluate

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/defense"
	"github.com/fleetprof/fleetprof/analyzer/detect"
	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/simulate"
)

// StagedConfig is the staged-rollout sweep: fleets whose releases roll out in stages
// longer than the detector's merge tolerance (10% → 50% → 100% of hosts, hours
// apart), each with one injected self-cost regression, a cost shift (in the first
// release, beside its regression) and the usual negative controls. They are analysed
// as the analyzer loop does: every Every from each release's first stage until the
// next release (or the end of the data), the findings of each run stored as the loop
// stores them (defense.MergeStored), so a regression split across stages shows as
// several stored findings. Start from DefaultStagedConfig.
type StagedConfig struct {
	// Sizes are the injected relative self-cost increases (one regression per
	// release); StageDurations the time between stages.
	Sizes          []float64
	StageDurations []time.Duration
	// Stages are the fractions of hosts of each stage (ending at 1).
	Stages []float64
	// After is how long each release is analysed after its full rollout; it also
	// separates the releases.
	After time.Duration
	// Every is the analysis period (a multiple of Sim.Bucket).
	Every time.Duration
	// Sim is the base fleet (Duration, Stages, StageDuration and the regressions
	// are set per run); Seeds are offsets added to Sim.Seed, pooled per row.
	Sim    simulate.Config
	Seeds  []int64
	Detect detect.Config
	// DateTolerance: a stored finding is dated at the first stage when its change
	// time is within this of the rollout's start.
	DateTolerance time.Duration
}

// DefaultStagedConfig is stages of 2 and 4 hours, regressions of +5…+50%, one per
// release on two releases, analysed every 10 minutes (the bucket) through each
// rollout and 3 hours after it with the analyzer loop's window, after two days of
// history.
func DefaultStagedConfig() StagedConfig {
	sim := simulate.DefaultConfig()
	sim.Services, sim.Hosts, sim.Functions = 1, 20, 40
	// Two days of history before the loop's analysis window (seasonality needs
	// them) at the first run.
	sim.History = 50 * time.Hour
	sim.Releases = 2
	d := detect.DefaultConfig()
	d.AnalysisWindow = defense.DefaultConfig().Window
	return StagedConfig{
		Sizes:          []float64{0.05, 0.2, 0.5},
		StageDurations: []time.Duration{2 * time.Hour, 4 * time.Hour},
		Stages:         []float64{0.1, 0.5, 1},
		After:          3 * time.Hour,
		Every:          sim.Bucket,
		Sim:            sim,
		Detect:         d,
		DateTolerance:  30 * time.Minute,
	}
}

// Validate reports the first invalid field.
func (c StagedConfig) Validate() error {
	if len(c.Sizes) == 0 || len(c.StageDurations) == 0 || c.After <= 0 {
		return fmt.Errorf("sizes %v, stage durations %v, after %v: want at least one of each", c.Sizes, c.StageDurations, c.After)
	}
	if c.Every < c.Sim.Bucket || c.Every%c.Sim.Bucket != 0 {
		return fmt.Errorf("every %v: want a multiple of the bucket %v", c.Every, c.Sim.Bucket)
	}
	if err := c.fleet(c.StageDurations[0]).Validate(); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return c.Detect.Validate()
}

// span is each release's rollout with stages sd apart and After.
func (c StagedConfig) span(sd time.Duration) time.Duration {
	return time.Duration(len(c.Stages)-1)*sd + c.After
}

// fleet is Sim with stages sd apart, one regression per release, and room for each
// release's span before the next (the simulator spaces releases evenly after the
// history).
func (c StagedConfig) fleet(sd time.Duration) simulate.Config {
	sc := c.Sim
	sc.Stages, sc.StageDuration = c.Stages, sd
	sc.Duration = sc.History + time.Duration(sc.Releases+1)*c.span(sd)
	sc.Regressions = nil
	sc.RandomRegressions = sc.Releases * sc.Services
	return sc
}

// StagedRow is one (stage duration, size) cell of the sweep.
type StagedRow struct {
	StageDuration time.Duration `json:"stage_duration"`
	Size          float64       `json:"size"`
	// Regressions are the injected regressions; Detected those with a stored
	// finding; Stored the stored findings matching them (one each is the aim);
	// Single the regressions with exactly one.
	Regressions int `json:"regressions"`
	Detected    int `json:"detected"`
	Stored      int `json:"stored"`
	Single      int `json:"single"`
	// DatedFirstStage counts detected regressions whose last stored finding is
	// dated within DateTolerance of the first stage; Sized those whose last stored
	// finding's absolute change is within ±30% of the injected change at full rollout
	// (self when the finding reports self shares, else inclusive); SizeRatio is the
	// mean of that ratio.
	DatedFirstStage int     `json:"dated_first_stage"`
	Sized           int     `json:"sized"`
	SizeRatio       float64 `json:"size_ratio"`
	// WithCallees are the regressions in functions with callees (self below
	// inclusive: a rise of the function's own code only); WithCalleesDetected those
	// detected; SelfSized those whose last stored finding reports the self size.
	WithCallees         int `json:"with_callees"`
	WithCalleesDetected int `json:"with_callees_detected"`
	SelfSized           int `json:"self_sized"`
	// Runs is the number of periodic runs; ShiftRuns the runs through a cost shift's
	// rollout, ShiftReported those reporting its target or source, and the same
	// during its first (10%) stage.
	Runs               int `json:"runs"`
	ShiftRuns          int `json:"shift_runs"`
	ShiftReported      int `json:"shift_reported"`
	FirstStageRuns     int `json:"first_stage_runs"`
	FirstStageReported int `json:"first_stage_reported"`
	FalseStored        int `json:"false_stored"`
	Series             int `json:"series"`
	// MeanLatency is the mean time from the first stage until a run first reports
	// the regression.
	MeanLatency   time.Duration `json:"mean_latency"`
	latN          int
	latSum        time.Duration
	sizeN         int
	FalseFindings []string `json:"false_findings,omitempty"`
	// Split describes the regressions stored as more than one finding.
	Split []string `json:"split,omitempty"`
}

// RunStaged runs the staged-rollout sweep, one row per stage duration and size.
func RunStaged(ctx context.Context, cfg StagedConfig) ([]StagedRow, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("evaluate staged config: %w", err)
	}
	seeds := cfg.Seeds
	if len(seeds) == 0 {
		seeds = []int64{0}
	}
	var rows []StagedRow
	for di, sd := range cfg.StageDurations {
		for si, size := range cfg.Sizes {
			row := StagedRow{StageDuration: sd, Size: size}
			for _, off := range seeds {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				sc := cfg.fleet(sd)
				sc.Seed += off + int64(100*di+si)
				sc.RandomMinSize, sc.RandomMaxSize = size, size
				if err := runStagedOne(sc, cfg, cfg.span(sd), &row); err != nil {
					return nil, fmt.Errorf("stages %v size %v seed %d: %w", sd, size, sc.Seed, err)
				}
			}
			if row.latN > 0 {
				row.MeanLatency = row.latSum / time.Duration(row.latN)
			}
			if row.sizeN > 0 {
				row.SizeRatio /= float64(row.sizeN)
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

func runStagedOne(sc simulate.Config, cfg StagedConfig, span time.Duration, row *StagedRow) error {
	fleet, err := simulate.New(sc)
	if err != nil {
		return err
	}
	tr := fleet.Truth()
	svcs := BuildServices(fleet)
	tol := defense.MergeTolerance(cfg.Detect)
	every := int(cfg.Every / sc.Bucket)
	for _, info := range tr.Services {
		svc := svcs[info.Name]
		var regs, shifts []simulate.Injection
		for _, in := range tr.Regressions {
			if in.Service == info.Name {
				regs = append(regs, in)
			}
		}
		controls := map[string]bool{}
		for _, c := range tr.Controls {
			if c.Service != info.Name {
				continue
			}
			controls[c.Function], controls[c.To] = true, true
			if c.Kind == "cost_shift" {
				shifts = append(shifts, c)
			}
		}
		delete(controls, "")
		ancestors := callersOf(svc, regs)
		// The store: stored findings by id, the last run's body of each.
		stored := map[string]findings.Finding{}
		first := map[string]time.Time{} // id → end of the first run that stored it
		for _, rel := range info.Releases {
			lo := int(rel.Start.Sub(svc.Start)/sc.Bucket) + 1
			hi := min(svc.Buckets(), int(rel.Start.Add(span).Sub(svc.Start)/sc.Bucket))
			for end := lo; end <= hi; end += every {
				res, err := detect.Run(truncate(svc, end), cfg.Detect)
				if err != nil {
					continue // too short for the configured windows
				}
				row.Runs++
				at := svc.Start.Add(time.Duration(end) * sc.Bucket)
				for _, c := range shifts {
					if c.Start.After(at) || !c.Full.Add(cfg.After).After(at) {
						continue
					}
					firstStage := at.Before(c.Start.Add(sc.StageDuration))
					row.ShiftRuns++
					if firstStage {
						row.FirstStageRuns++
					}
					if slices.ContainsFunc(res.Findings, func(f findings.Finding) bool {
						return (f.Function == c.To || f.Function == c.Function) && !ancestors[f.Function]
					}) {
						row.ShiftReported++
						if firstStage {
							row.FirstStageReported++
						}
					}
				}
				fs := slices.Clone(res.Findings)
				prev := make([]findings.Finding, 0, len(stored))
				for _, id := range slices.Sorted(maps.Keys(stored)) {
					prev = append(prev, stored[id])
				}
				defense.MergeStored(fs, prev, tol, at)
				for _, f := range fs {
					if _, ok := stored[f.ID]; !ok {
						first[f.ID] = at
					}
					stored[f.ID] = f
				}
			}
		}
		row.Series += len(svc.Series)
		byReg := make([][]string, len(regs))
		for _, id := range slices.Sorted(maps.Keys(stored)) {
			f := stored[id]
			if i := matchRegression(f, regs, sc.Bucket); i >= 0 {
				byReg[i] = append(byReg[i], id)
				continue
			}
			if ancestors[f.Function] {
				continue
			}
			row.FalseStored++
			why := ""
			if controls[f.Function] {
				why = " (a negative control)"
			}
			row.FalseFindings = append(row.FalseFindings, fmt.Sprintf("seed %d %s %s %+.3g%% at %s %s→%s [%s]%s", sc.Seed, info.Name,
				f.Function, 100*f.RelativeChange, f.ChangeTime.Sub(svc.Start), f.VersionBefore, f.VersionAfter, strings.Join(f.FiltersPassed, ","), why))
		}
		for i, in := range regs {
			row.Regressions++
			callees := in.SelfBefore < in.InclusiveBefore*(1-1e-6)
			if callees {
				row.WithCallees++
			}
			ids := byReg[i]
			if len(ids) == 0 {
				continue
			}
			row.Detected++
			row.Stored += len(ids)
			if callees {
				row.WithCalleesDetected++
			}
			if len(ids) == 1 {
				row.Single++
			} else {
				var parts []string
				for _, id := range ids {
					f := stored[id]
					parts = append(parts, fmt.Sprintf("%s %+.3g%% at %s", f.Function, 100*f.RelativeChange, f.ChangeTime.Sub(in.Start)))
				}
				row.Split = append(row.Split, fmt.Sprintf("seed %d %s %s +%.0f%% (stages at %s): %s", sc.Seed, info.Name, in.Function,
					100*in.Size, in.Start.Sub(svc.Start), strings.Join(parts, "; ")))
			}
			// The last stored finding is what a reader sees; latency counts from the
			// first stage to the first run that stored any.
			last, firstAt := stored[ids[0]], first[ids[0]]
			for _, id := range ids[1:] {
				if stored[id].LastSeen.After(last.LastSeen) {
					last = stored[id]
				}
				if first[id].Before(firstAt) {
					firstAt = first[id]
				}
			}
			row.latSum += firstAt.Sub(in.Start)
			row.latN++
			if d := last.ChangeTime.Sub(in.Start); d >= -cfg.DateTolerance && d <= cfg.DateTolerance {
				row.DatedFirstStage++
			}
			self := slices.Contains(last.FiltersPassed, detect.FilterSelfShare)
			if self && callees {
				row.SelfSized++
			}
			want := in.InclusiveAfter - in.InclusiveBefore
			if self {
				want = in.SelfAfter - in.SelfBefore
			}
			if want > 0 {
				r := last.AbsoluteChange / want
				row.SizeRatio += r
				row.sizeN++
				if r >= 0.7 && r <= 1.3 {
					row.Sized++
				}
			}
		}
	}
	return nil
}

// StagedTable formats the staged-rollout sweep for humans: one line per stage
// duration and size.
func StagedTable(rows []StagedRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-6s %5s %5s %6s %7s %6s %7s %6s %6s %9s %9s %11s %11s %6s %9s\n", "stages", "size", "regs", "recall", "stored", "single",
		"dated", "sized", "ratio", "callees", "self", "shift-runs", "shift@10%", "false", "latency")
	for _, r := range rows {
		lat := "-"
		if r.MeanLatency > 0 {
			lat = r.MeanLatency.Round(time.Minute).String()
		}
		fmt.Fprintf(&b, "%-6s %5.2f %5d %6.2f %7d %6d %7d %6d %6.2f %9s %9s %11s %11s %6d %9s\n", r.StageDuration, r.Size, r.Regressions,
			ratio(r.Detected, r.Regressions), r.Stored, r.Single, r.DatedFirstStage, r.Sized, r.SizeRatio,
			fmt.Sprintf("%d/%d", r.WithCalleesDetected, r.WithCallees), fmt.Sprintf("%d/%d", r.SelfSized, r.WithCalleesDetected),
			fmt.Sprintf("%d/%d", r.ShiftReported, r.ShiftRuns), fmt.Sprintf("%d/%d", r.FirstStageReported, r.FirstStageRuns), r.FalseStored, lat)
	}
	b.WriteString("(stored: stored findings matching the regressions, one each is the aim; single: regressions stored once; dated: last finding at the first stage; " +
		"sized: within ±30% of the full rollout's change, ratio its mean; callees: detected/injected in functions with callees, self: of those, sized as self; " +
		"shift-runs: periodic runs reporting the cost shift / runs through its rollout, shift@10%: the same in its first stage; false: other stored findings; latency: first stage → first stored)\n")
	return b.String()
}
