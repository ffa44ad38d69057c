package detect

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/findings"
)

// Stage names used in Dropped.Stage (the stage that removed a candidate).
const (
	StageMinShare     = "min_share"
	StageSignificance = findings.FilterSignificance
	StageWentAway     = findings.FilterWentAway
	StageThreshold    = findings.FilterThreshold
	StageDedup        = findings.FilterDedup
	StageCostShift    = findings.FilterCostShift
	// StageGradual removes the steps a ramp found by the long-term stage is made of.
	StageGradual = "gradual"
)

// Result is the outcome of Run.
type Result struct {
	// Findings are the regressions, largest estimated cost first.
	Findings []findings.Finding
	// Dropped lists candidates that had a significant change point (or a version
	// difference) but were removed by a later stage, and why. Functions below
	// MinShare or without any change are only counted in Stats.
	Dropped []Dropped
	Stats   Stats
	// Gradual are the ramps the long-term stage found (Config.Gradual), separate from
	// the step findings.
	Gradual []Gradual
}

// Dropped is a candidate removed by a stage.
type Dropped struct {
	Function string
	Stage    string
	Reason   string
}

// Stats counts what the run looked at.
type Stats struct {
	Series, BelowMinShare, NoChange, Candidates int
}

// Detect runs the pipeline on one service and returns its regressions.
func Detect(svc *Service, cfg Config) ([]findings.Finding, error) {
	r, err := Run(svc, cfg)
	if err != nil {
		return nil, err
	}
	return r.Findings, nil
}

// FilterDeploy marks a change dated at the start of a version's rollout
// (snapToDeploy) instead of at its first change point.
const FilterDeploy = "deploy"

// FilterSelfShare marks a finding on the function's self share (samples where it is
// the leaf) instead of its inclusive share; Before/After are then self shares.
const FilterSelfShare = "self_share"

// candidate is a function whose share changed (up or down) and survived the
// per-series stages.
type candidate struct {
	fn, domain      string
	change          int // bucket index of the change
	lo, hi          int // data window [lo, hi)
	before, after   estimate
	abs, rel, p     float64
	vBefore, vAfter string
	// overlap are the buckets a version-paired candidate compared vBefore and
	// vAfter in (nil for the time path).
	overlap []int
	filters []string // stages passed (pass), in any order
	group   []string
	self    bool
	// selfPart is the same function's self-share rise at the same change, folded
	// into this inclusive candidate by preferInclusive.
	selfPart *candidate
}

// windows are the bucket ranges derived from Config for one service.
type windows struct {
	n, winLo, winHi, period, tol, ext int
	// common is the per-bucket factor by which the daily waves of strongly seasonal
	// functions dilute every other share (nil when there are none); time-path shares
	// are divided by it.
	common []float64
	// seasonal are the functions with such a wave of their own: their daily fall
	// is no source of moved cost.
	seasonal map[string]bool
	// starts is the first bucket with samples of each version (versionStarts).
	starts map[string]int
	// netAlpha is the level of the net before/after test (Config.FamilyAlpha);
	// pairedAlpha that of the version-paired test.
	netAlpha, pairedAlpha float64
	// tun is Config.Tuning.
	tun Tuning
}

// crossSeries is what the stages across series share.
type crossSeries struct {
	svc   *Service
	cfg   Config
	w     windows
	g     *callGraph
	downs []*candidate // falls: evidence for cost shifts, never reported
	tol   int          // buckets within which two candidates are one change
	res   *Result
}

// crossStage is a stage across series: it takes the rises left by the previous
// stage and returns those it keeps (recording drops in the Result).
type crossStage struct {
	name string
	run  func(x *crossSeries, ups []*candidate) []*candidate
}

// crossStages is the order of the stages after the per-series ones (analyzeSeries):
// dedup → cost shift → dedup → prefer inclusive.
var crossStages = []crossStage{
	{StageDedup, func(x *crossSeries, ups []*candidate) []*candidate { return dedup(ups, x.g, x.cfg, x.tol) }},
	{StageCostShift, func(x *crossSeries, ups []*candidate) []*candidate {
		return costShift(x.svc, x.w, ups, x.downs, x.g, x.cfg, x.cfg.Tuning.CostShiftToleranceFactor*x.tol, x.res)
	}},
	{StageDedup, func(x *crossSeries, ups []*candidate) []*candidate { return dedup(ups, x.g, x.cfg, x.tol) }},
	// Last, so a function's own-code rise survives when its inclusive rise was
	// folded into a callee's that then proved a cost shift.
	{FilterSelfShare, func(x *crossSeries, ups []*candidate) []*candidate { return preferInclusive(ups, x.tol) }},
}

// filterOrder is the order in which a finding lists the stages it passed
// (Finding.FiltersPassed): the pipeline's order, either path.
var filterOrder = []string{
	findings.FilterVersionPair, findings.FilterSignificance, findings.FilterWentAway,
	findings.FilterSeasonality, findings.FilterMerge, FilterDeploy, findings.FilterThreshold,
	FilterSelfShare, findings.FilterDedup, findings.FilterCostShift,
}

// pass records that c passed stage name (once).
func (c *candidate) pass(name string) {
	if !slices.Contains(c.filters, name) {
		c.filters = append(c.filters, name)
	}
}

// passed lists the stages c passed in filterOrder.
func (c *candidate) passed() []string {
	out := make([]string, 0, len(c.filters))
	for _, f := range filterOrder {
		if slices.Contains(c.filters, f) {
			out = append(out, f)
		}
	}
	return out
}

// Run runs the full pipeline on one service: per series significance (change points
// on the share series, or the version-paired test), went-away, seasonality and
// threshold stages, merging of a function's change points into one change; then
// across series dedup → cost shift → dedup.
func Run(svc *Service, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("detect config: %w", err)
	}
	if err := svc.Validate(); err != nil {
		return nil, fmt.Errorf("detect input: %w", err)
	}
	n := svc.Buckets()
	m := cfg.ChangePoint.MinSegment
	w := windows{n: n, period: buckets(cfg.SeasonPeriod, svc.Step), tol: buckets(cfg.MergeTolerance, svc.Step), tun: cfg.Tuning}
	ext := max(buckets(cfg.ExtendedWindow, svc.Step), m)
	w.winHi = n - ext
	w.ext = ext
	w.winLo = m
	if a := buckets(cfg.AnalysisWindow, svc.Step); a > 0 {
		w.winLo = max(m, w.winHi-a)
	}
	w.common, w.seasonal = seasonalDilution(svc, w)
	res := &Result{}
	// Series are independent until dedup: analyze them in parallel, collect in order.
	type outcome struct {
		cs   []*candidate
		drop *Dropped
		kind seriesOutcome
	}
	// Self shares are series too (gCPU of a function's own code): a function with a
	// large inclusive share hides a regression of its own code, which is a small
	// part of its inclusive samples. Leaves (self ≈ inclusive) need no second series.
	series := make([]*Series, 0, 2*len(svc.Series))
	isSelf := make([]bool, 0, 2*len(svc.Series))
	for i := range svc.Series {
		series = append(series, &svc.Series[i])
		isSelf = append(isSelf, false)
	}
	if cfg.SelfShares {
		for i := range svc.Series {
			sr := &svc.Series[i]
			if sr.Self == nil {
				continue
			}
			var si, ss float64
			for t := range sr.Self {
				si += sr.Inclusive[t]
				ss += sr.Self[t]
			}
			if ss > 0 && ss < cfg.Tuning.SelfSeriesMaxRatio*si {
				series = append(series, selfSeries(sr))
				isSelf = append(isSelf, true)
			}
		}
	}
	// Bonferroni over the series tested (inclusive and self shares above MinShare).
	tested := 0
	if st := sum(svc.Total); st > 0 {
		for _, sr := range series {
			if sum(sr.Inclusive)/st >= cfg.MinShare {
				tested++
			}
		}
	}
	w.netAlpha = math.Min(cfg.Alpha, cfg.FamilyAlpha/float64(max(tested, 1)))
	// The paired test runs once per series and rollout: Bonferroni over both.
	w.starts = versionStarts(svc)
	rollouts := 0
	for _, t := range w.starts {
		if t > 0 && t+buckets(cfg.ExtendedWindow, svc.Step) >= w.winLo {
			rollouts++
		}
	}
	w.pairedAlpha = math.Min(cfg.PairedAlpha, cfg.FamilyAlpha/float64(max(tested*rollouts, 1)))
	outs := make([]outcome, len(series))
	workers := cfg.Parallelism
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(series)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(series) {
					return
				}
				cs, drop, kind := analyzeSeries(svc, series[i], cfg, w)
				for _, c := range cs {
					c.self = isSelf[i]
					if c.self {
						c.pass(FilterSelfShare)
					}
				}
				outs[i] = outcome{cs, drop, kind}
			}
		})
	}
	wg.Wait()
	var ups, downs []*candidate
	for i, o := range outs {
		if isSelf[i] {
			// Counted with its inclusive series; only its candidates matter.
			for _, c := range o.cs {
				if c.abs > 0 {
					ups = append(ups, c)
				} else {
					downs = append(downs, c)
				}
			}
			continue
		}
		res.Stats.Series++
		switch o.kind {
		case outcomeBelowMinShare:
			res.Stats.BelowMinShare++
		case outcomeNoChange:
			res.Stats.NoChange++
		case outcomeDropped:
			res.Dropped = append(res.Dropped, *o.drop)
		case outcomeCandidate:
			res.Stats.Candidates++
			if o.drop != nil {
				res.Dropped = append(res.Dropped, *o.drop)
			}
			for _, c := range o.cs {
				if c.abs > 0 {
					ups = append(ups, c)
				} else {
					downs = append(downs, c)
				}
			}
		}
	}
	x := &crossSeries{svc: svc, cfg: cfg, w: w, g: newCallGraph(svc.Edges), downs: downs, res: res,
		// Changes seen by different paths (or through a transient chained to them)
		// are dated up to an extended window apart.
		tol: max(w.tol, w.ext)}
	for _, st := range crossStages {
		ups = st.run(x, ups)
	}
	for _, c := range ups {
		res.Findings = append(res.Findings, c.finding(svc, cfg))
	}
	sort.SliceStable(res.Findings, func(i, j int) bool {
		a, b := res.Findings[i], res.Findings[j]
		if a.AbsoluteChange != b.AbsoluteChange {
			return a.AbsoluteChange > b.AbsoluteChange
		}
		return a.Function < b.Function
	})
	if cfg.Gradual.Enabled {
		g, err := DetectGradual(svc, cfg.Gradual, cfg.Tuning)
		if err != nil {
			return nil, fmt.Errorf("detect gradual: %w", err)
		}
		res.Gradual = g
		res.Findings = dropStaircase(res.Findings, g, cfg.Gradual.StaircaseMargin, res)
	}
	return res, nil
}

// selfSeries is sr's self share as a series of its own. With self counts per
// (version, host group) it carries them and their per-version sums, so the
// version-paired test compares the function's own code between versions too: a
// self-code regression in a staged rollout is then dated at its first stage and
// sized as the difference between the versions, not by the fraction of hosts
// running the new one at each stage.
func selfSeries(sr *Series) *Series {
	s := &Series{Function: sr.Function, Inclusive: sr.Self}
	if len(sr.CellSelf) == 0 {
		return s
	}
	s.CellInclusive = sr.CellSelf
	for _, c := range sortedCells(sr.CellSelf) {
		xs := sr.CellSelf[c]
		v := mapSlice(&s.VersionInclusive, c.Version, len(xs))
		for t, x := range xs {
			v[t] += x
		}
	}
	return s
}

// dropStaircase removes step findings of a function dated within one of its ramps
// (widened by margin) and no larger than the ramp's whole rise: the step search sees
// a ramp as a staircase of steps, and the ramp's finding reports the rise once. A
// larger step is a change of its own (a release's step at the end of a slow drift).
func dropStaircase(fs []findings.Finding, ramps []Gradual, margin time.Duration, res *Result) []findings.Finding {
	return slices.DeleteFunc(fs, func(f findings.Finding) bool {
		for _, g := range ramps {
			if g.Function == f.Function && f.AbsoluteChange <= g.After-g.Before &&
				!f.ChangeTime.Before(g.StartTime.Add(-margin)) && f.ChangeTime.Before(g.EndTime.Add(margin)) {
				res.Dropped = append(res.Dropped, Dropped{Function: f.Function, Stage: StageGradual,
					Reason: fmt.Sprintf("step at %s within its ramp %s … %s", f.ChangeTime.Format(time.RFC3339), g.StartTime.Format(time.RFC3339), g.EndTime.Format(time.RFC3339))})
				return true
			}
		}
		return false
	})
}

func sum(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}

func seriesOf(svc *Service, fn string) *Series {
	for i := range svc.Series {
		if svc.Series[i].Function == fn {
			return &svc.Series[i]
		}
	}
	return nil
}
