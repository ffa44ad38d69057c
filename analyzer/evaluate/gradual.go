package evaluate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/detect"
	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/simulate"
)

// GradualConfig is the sweep of gradual regressions: for each ramp duration and size,
// fleets whose one release starts regressions that ramp in over that duration, with
// trend controls (a function's cost falling over the whole run) beside the usual
// negative controls. Start from DefaultGradualConfig.
type GradualConfig struct {
	// Sizes are the self-cost increases the ramps reach; Ramps their durations.
	Sizes []float64
	Ramps []time.Duration
	// PerService is the number of ramps per service per fleet.
	PerService int
	// Tail is the data after a ramp ends; the same stretch plus the ramp comes before
	// the release (the simulator places the release mid-run), so every fleet has at
	// least two days of history.
	Tail time.Duration
	// Sim is the base fleet (Duration, History, Releases and Regressions are set per
	// run); Seeds are offsets added to Sim.Seed, pooled per row (empty: {0}).
	Sim    simulate.Config
	Seeds  []int64
	Detect detect.Config
	// Latency searches the shortest data prefix (hourly) on which the long-term stage
	// reports a detected ramp, up to the end of the data.
	Latency bool
}

// DefaultGradualConfig is ramps of +2…+50% over 6, 24 and 72 hours, three per fleet,
// on 20 hosts in 30-minute buckets, with one trend control (−30% over the run).
func DefaultGradualConfig() GradualConfig {
	sim := simulate.DefaultConfig()
	sim.Services, sim.Hosts, sim.Functions = 1, 20, 40
	sim.Bucket = 30 * time.Minute
	sim.Releases, sim.RandomRegressions = 1, 0
	sim.TrendControls, sim.TrendSize = 1, 0.3
	return GradualConfig{
		Sizes:      []float64{0.02, 0.05, 0.1, 0.2, 0.5},
		Ramps:      []time.Duration{6 * time.Hour, 24 * time.Hour, 72 * time.Hour},
		PerService: 3,
		Tail:       48 * time.Hour,
		Sim:        sim,
		Detect:     detect.DefaultConfig(),
		Latency:    true,
	}
}

// Validate reports the first invalid field.
func (c GradualConfig) Validate() error {
	if len(c.Sizes) == 0 || len(c.Ramps) == 0 || c.PerService < 1 || c.Tail <= 0 {
		return fmt.Errorf("sizes %v, ramps %v, per service %d, tail %v: want at least one of each", c.Sizes, c.Ramps, c.PerService, c.Tail)
	}
	if err := c.Sim.Validate(); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return c.Detect.Validate()
}

// GradualRow is one (ramp, size) cell of the sweep.
type GradualRow struct {
	Ramp time.Duration `json:"ramp"`
	Size float64       `json:"size"`
	// Regressions are the injected ramps; Detected those any finding reports (a
	// gradual one, or a step dated in the ramp); Gradual those a gradual finding
	// reports.
	Regressions int `json:"regressions"`
	Detected    int `json:"detected"`
	Gradual     int `json:"gradual"`
	// Steps counts the step findings on ramped functions (a staircase when several
	// per ramp).
	Steps int `json:"steps"`
	// FalsePositives are findings (step or gradual) matching no ramp nor a caller of
	// one, of them GradualFalse gradual ones; Series the function series examined.
	FalsePositives int `json:"false_positives"`
	GradualFalse   int `json:"gradual_false"`
	Series         int `json:"series"`
	// TrendsReported counts findings on a trend control's function; ControlsReported
	// those on the other negative controls.
	TrendsReported   int `json:"trends_reported"`
	ControlsReported int `json:"controls_reported"`
	// MeanLatency is the mean time from a ramp's start until the long-term stage, on
	// the data up to then, first reports it.
	MeanLatency time.Duration `json:"mean_latency"`
	latN        int
	latSum      time.Duration
	// FalseFindings describes each false positive, StepFindings each step finding
	// on a ramped function.
	FalseFindings []string `json:"false_findings,omitempty"`
	StepFindings  []string `json:"step_findings,omitempty"`
}

// Recall is Detected / Regressions; GradualRecall Gradual / Regressions.
func (r GradualRow) Recall() float64        { return ratio(r.Detected, r.Regressions) }
func (r GradualRow) GradualRecall() float64 { return ratio(r.Gradual, r.Regressions) }

// FPPerSeries is FalsePositives / Series.
func (r GradualRow) FPPerSeries() float64 { return ratio(r.FalsePositives, r.Series) }

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// RunGradual runs the gradual sweep, one row per ramp duration and size.
func RunGradual(ctx context.Context, cfg GradualConfig) ([]GradualRow, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("evaluate gradual config: %w", err)
	}
	seeds := cfg.Seeds
	if len(seeds) == 0 {
		seeds = []int64{0}
	}
	var rows []GradualRow
	for ri, ramp := range cfg.Ramps {
		for si, size := range cfg.Sizes {
			row := GradualRow{Ramp: ramp, Size: size}
			for _, off := range seeds {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				sc := cfg.Sim
				sc.Seed += off + int64(100*ri+si)
				sc.History = 0
				sc.Duration = 2 * (ramp + cfg.Tail)
				sc.Regressions = nil
				for range cfg.PerService * sc.Services {
					sc.Regressions = append(sc.Regressions, simulate.RegressionSpec{Size: size, Release: 1, Ramp: ramp})
				}
				dc := cfg.Detect
				dc.AnalysisWindow = ramp + cfg.Tail - dc.ExtendedWindow
				if err := runGradualOne(sc, dc, cfg.Latency, &row); err != nil {
					return nil, fmt.Errorf("ramp %v size %v seed %d: %w", ramp, size, sc.Seed, err)
				}
			}
			if row.latN > 0 {
				row.MeanLatency = row.latSum / time.Duration(row.latN)
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

func runGradualOne(sc simulate.Config, dc detect.Config, withLatency bool, row *GradualRow) error {
	fleet, err := simulate.New(sc)
	if err != nil {
		return err
	}
	tr := fleet.Truth()
	svcs := BuildServices(fleet)
	for _, info := range tr.Services {
		svc := svcs[info.Name]
		res, err := detect.Run(svc, dc)
		if err != nil {
			return err
		}
		row.Series += res.Stats.Series
		var regs []simulate.Injection
		for _, in := range tr.Regressions {
			if in.Service == info.Name {
				regs = append(regs, in)
			}
		}
		trends, controls := map[string]bool{}, map[string]bool{}
		for _, c := range tr.Controls {
			if c.Service != info.Name {
				continue
			}
			if c.Kind == "trend" {
				trends[c.Function] = true
			} else {
				controls[c.Function], controls[c.To] = true, true
			}
		}
		delete(controls, "")
		ancestors := callersOf(svc, regs)
		fs := slices.Clone(res.Findings)
		for _, g := range res.Gradual {
			fs = append(fs, g.Finding(svc))
		}
		for _, f := range fs {
			if i := matchRamp(f, regs, sc.Bucket); i >= 0 {
				if f.Gradual == nil {
					row.Steps++
					row.StepFindings = append(row.StepFindings, fmt.Sprintf("seed %d %s %s %+.3g%% at %s (ramp %s … %s) [%s]", sc.Seed, info.Name,
						f.Function, 100*f.RelativeChange, f.ChangeTime.Sub(svc.Start), regs[i].Start.Sub(svc.Start), regs[i].End.Sub(svc.Start), strings.Join(f.FiltersPassed, ",")))
				}
				continue
			}
			switch {
			case trends[f.Function]:
				row.TrendsReported++
			case controls[f.Function] && !ancestors[f.Function]:
				row.ControlsReported++
			}
			if ancestors[f.Function] {
				continue // rose with the ramp below it: redundant, not false
			}
			row.FalsePositives++
			if f.Gradual != nil {
				row.GradualFalse++
			}
			row.FalseFindings = append(row.FalseFindings, fmt.Sprintf("seed %d %s %s %s %+.3g%% at %s p=%.2g [%s]", sc.Seed, info.Name,
				f.Kind, f.Function, 100*f.RelativeChange, f.ChangeTime.Sub(svc.Start), f.PValue, strings.Join(f.FiltersPassed, ",")))
		}
		for _, in := range regs {
			row.Regressions++
			var any, ramp bool
			for _, f := range fs {
				if matchRamp(f, []simulate.Injection{in}, sc.Bucket) == 0 {
					any = true
					ramp = ramp || f.Gradual != nil
				}
			}
			if any {
				row.Detected++
			}
			if !ramp {
				continue
			}
			row.Gradual++
			if withLatency {
				if lat, ok := gradualLatency(svc, dc.Gradual, dc.Tuning, in, sc.Bucket); ok {
					row.latSum += lat
					row.latN++
				}
			}
		}
	}
	return nil
}

// matchRamp returns the index of the ramp f reports, or −1: the same function and,
// for a gradual finding, a ramp overlapping the injected one; for a step, a change
// from the ramp's start to a few hours after its end (matchRegression's margins).
func matchRamp(f findings.Finding, regs []simulate.Injection, step time.Duration) int {
	for i, in := range regs {
		if f.Function != in.Function && !slices.Contains(f.DedupGroup, in.Function) {
			continue
		}
		if g := f.Gradual; g != nil {
			if g.Start.Before(in.End.Add(3*time.Hour)) && in.Start.Add(-2*step).Before(g.End) {
				return i
			}
			continue
		}
		if !f.ChangeTime.Before(in.Start.Add(-2*step)) && f.ChangeTime.Before(in.End.Add(3*time.Hour)) {
			return i
		}
	}
	return -1
}

// gradualLatency finds the shortest prefix of svc, in hourly steps from the ramp's
// start plus the shortest ramp, on which the long-term stage reports the ramp.
func gradualLatency(svc *detect.Service, cfg detect.GradualConfig, tun detect.Tuning, in simulate.Injection, step time.Duration) (time.Duration, bool) {
	start := int(in.Start.Sub(svc.Start) / step)
	inc := max(1, int(time.Hour/step))
	// No ramp is reported before it spans MinRampBuckets.
	first := start + max(1, cfg.MinRampBuckets*int(cfg.Bucket/step))
	for end := first; end <= svc.Buckets(); end += inc {
		gs, err := detect.DetectGradual(truncate(svc, end), cfg, tun)
		if err != nil {
			continue
		}
		for _, g := range gs {
			if matchRamp(g.Finding(svc), []simulate.Injection{in}, step) == 0 {
				return time.Duration(end-start) * step, true
			}
		}
	}
	return 0, false
}

// GradualTable formats the gradual sweep for humans: one line per ramp and size.
func GradualTable(rows []GradualRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-6s %6s %5s %6s %8s %6s %10s %8s %7s %9s %9s\n", "ramp", "size", "ramps", "recall", "gradual", "steps", "fp/series", "fp(grad)", "trends", "controls", "latency")
	for _, r := range rows {
		lat := "-"
		if r.latN > 0 || r.MeanLatency > 0 {
			lat = r.MeanLatency.Round(time.Minute).String()
		}
		fmt.Fprintf(&b, "%-6s %6.2f %5d %6.2f %8.2f %6d %10.4f %8d %7d %9d %9s\n", r.Ramp, r.Size, r.Regressions, r.Recall(), r.GradualRecall(),
			r.Steps, r.FPPerSeries(), r.GradualFalse, r.TrendsReported, r.ControlsReported, lat)
	}
	b.WriteString("(size: self-cost rise the ramp reaches; recall: any finding; gradual: a gradual finding; steps: step findings on ramped functions; latency: ramp start → the long-term stage reports it)\n")
	return b.String()
}
