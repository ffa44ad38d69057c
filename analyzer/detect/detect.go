package detect

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/changepoint"
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

// preferInclusive drops a self-share rise when the same function's inclusive share
// rose at the same time: one change, the inclusive finding reports it.
func preferInclusive(ups []*candidate, tol int) []*candidate {
	out := ups[:0]
outer:
	for _, c := range ups {
		if c.self {
			for _, d := range ups {
				if !d.self && d.fn == c.fn && near(c, d, tol) {
					continue outer
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// candidate is a function whose share changed (up or down) and survived the
// per-series stages.
type candidate struct {
	fn, domain      string
	change          int // bucket index of the change
	lo, hi          int // data window [lo, hi)
	before, after   estimate
	abs, rel, p     float64
	vBefore, vAfter string
	filters         []string
	group           []string
	self            bool
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
	w := windows{n: n, period: buckets(cfg.SeasonPeriod, svc.Step), tol: buckets(cfg.MergeTolerance, svc.Step)}
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
			if ss > 0 && ss < 0.9*si {
				series = append(series, &Series{Function: sr.Function, Inclusive: sr.Self})
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
	// The paired test runs once per series and rollout: Bonferroni over both. At
	// PairedAlpha alone (1e-4) ~8,000 paired tests of five evaluation seeds made
	// about the one false positive that level predicts (p 4e-5).
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
						c.filters = append(c.filters, FilterSelfShare)
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
	g := newCallGraph(svc.Edges)
	// Changes seen by different paths (or through a transient chained to them) are
	// dated up to an extended window apart.
	tol := max(w.tol, w.ext)
	ups = dedup(ups, g, cfg, tol)
	ups = costShift(svc, w, ups, downs, g, cfg, 2*tol, res)
	ups = dedup(ups, g, cfg, tol)
	// Last, so a function's own-code rise survives when its inclusive rise was
	// folded into a callee's that then proved a cost shift.
	ups = preferInclusive(ups, tol)
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
	return res, nil
}

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
				if !slices.Contains(vc.filters, findings.FilterMerge) {
					vc.filters = append(vc.filters, findings.FilterMerge)
				}
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
	c.filters = append(c.filters, findings.FilterThreshold)
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
func deseasonalize(s []float64, period, histEnd int) (adjusted, offsets []float64) {
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
	// must stand four of those above it. At two, a few series in a hundred passed by
	// chance and had a noisy profile subtracted (self-share false positives on
	// held-out evaluation seeds: 7 → 5 in 2731 series at four); the diluted wave a
	// seasonal function leaves in every other share, which a low threshold used to
	// catch, is divided out before (seasonalDilution).
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
		if pss/float64(period-1) <= (1+4*math.Sqrt(2/float64(period-1)))*sigma2/k {
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
// point search in a share of 40% (or in many small ones together) reads as shifts:
// most of the false positives left on ten evaluation seeds were such diluted waves,
// dated at a release. The offsets come from history (smooth profiles, no per-bucket
// noise). A wave counts when deseasonalize keeps it (it stands out of its noise) and
// its amplitude (SD of the offsets) is at least minSeasonalAmplitude of the
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
		if m < 1e-3 {
			continue
		}
		_, off := deseasonalize(shareSeries(sr.Self, svc.Total), w.period, w.winLo)
		if off == nil {
			continue
		}
		var ss float64
		for _, x := range off[:w.period] {
			ss += x * x
		}
		if math.Sqrt(ss/float64(w.period)) < minSeasonalAmplitude*m {
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
	if sumOff == nil || sbar >= 0.9 {
		return nil, nil
	}
	common = make([]float64, len(sumOff))
	for t, x := range sumOff {
		common[t] = 1 - x/(1-sbar)
	}
	return common, seasonal
}

// minSeasonalAmplitude is the relative amplitude (SD of the daily offsets ÷ the
// share) of a function's own wave for seasonalDilution: the simulated seasonal
// functions swing 20%, the waves they leave in other shares ~1%.
const minSeasonalAmplitude = 0.05

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
// to √1.5 times more certain than they were (k = 2): strong-looking changes at no
// release on a second evaluation seed.
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

// event is a run of change points close enough to be one change (the stages of a
// rollout, the start and end of a spike): bucket indices of its change points.
type event struct{ cps []int }

// timeCandidate is the before/after path: change points on the (deseasonalized)
// share series are chained into events (gaps up to the merge tolerance or the
// extended window, so a transient's rise and fall are one event); each event's net
// change (level before its first change point → level after its last) is checked for
// went-away and significance. Every significant event is a candidate: rises may be
// reported, falls are evidence for cost shifts.
func timeCandidate(svc *Service, sr *Series, cfg Config, w windows) (cs []*candidate, drop *Dropped) {
	if w.winHi < w.winLo {
		return nil, nil
	}
	s := shareSeries(sr.Inclusive, svc.Total)
	if w.common != nil {
		for i := range s {
			s[i] /= w.common[i]
		}
	}
	s2, offsets := deseasonalize(s, w.period, w.winLo)
	cps, err := changepoint.Detect(s2, cfg.ChangePoint)
	if err != nil {
		return nil, &Dropped{Function: sr.Function, Stage: StageSignificance, Reason: err.Error()}
	}
	if len(cps) == 0 {
		return nil, nil
	}
	pvals := map[int]float64{}
	var evs []event
	// Rollout stages are change points in one direction a stage apart; a transient is
	// a rise and a fall at least MinSegment apart (the search cannot place them
	// closer), so a reversal may chain from further away.
	gap := max(w.tol, w.ext)
	for i, c := range cps {
		pvals[c.Index] = c.PValue
		if k := len(evs); k > 0 {
			d := c.Index - evs[k-1].cps[len(evs[k-1].cps)-1]
			reversal := (c.After-c.Before)*(cps[i-1].After-cps[i-1].Before) < 0
			if d <= gap || (reversal && d <= gap+cfg.ChangePoint.MinSegment) {
				evs[k-1].cps = append(evs[k-1].cps, c.Index)
				continue
			}
		}
		evs = append(evs, event{cps: []int{c.Index}})
	}
	zAlpha := math.Sqrt2 * math.Erfinv(1-cfg.ChangePoint.Alpha)
	// Over-dispersion measured over the whole series (around its segmentation) is a
	// floor for each window's own estimate, which short windows make noisy.
	var bounds []int
	for _, c := range cps {
		bounds = append(bounds, c.Index)
	}
	disp := seriesDispersion(svc, sr, bounds, offsets)
	for ei, ev := range evs {
		first, last := ev.cps[0], ev.cps[len(ev.cps)-1]
		if first < w.winLo || first > w.winHi {
			continue
		}
		lo, hi := 0, w.n
		if ei > 0 {
			lo = evs[ei-1].cps[len(evs[ei-1].cps)-1]
		}
		if ei+1 < len(evs) {
			hi = evs[ei+1].cps[0]
		}
		before := inflate(windowEstimate(svc, sr, lo, first, w.common, offsets), disp)
		after := inflate(windowEstimate(svc, sr, last, hi, w.common, offsets), disp)
		if offsets != nil {
			before = profileNoise(before, first-lo, w.period, w.winLo/w.period)
			after = profileNoise(after, hi-last, w.period, w.winLo/w.period)
		}
		net := after.P - before.P
		// Went-away: inside the event the level may have gone far from the baseline
		// (a spike) and come back; only a significant reversion from the peak counts,
		// short segments make the peak noisy.
		peak := after
		segs := make([]estimate, len(ev.cps))
		for i, c := range ev.cps {
			end := hi
			if i+1 < len(ev.cps) {
				end = ev.cps[i+1]
			}
			segs[i] = windowEstimate(svc, sr, c, end, w.common, offsets)
			if math.Abs(segs[i].P-before.P) > math.Abs(peak.P-before.P) {
				peak = segs[i]
			}
		}
		peakDelta := peak.P - before.P
		// A persisted change is one whose net change (level after the event vs
		// before) is significant; when it is not but the event's peak was, the change
		// went away (a transient), which is worth saying in Dropped.
		z := net / math.Hypot(before.SE, after.SE)
		p := twoSidedP(z)
		if p >= w.netAlpha {
			if !rising(cs) {
				drop = &Dropped{Function: sr.Function, Stage: StageSignificance,
					Reason: fmt.Sprintf("persisted change %+.3g not significant (p=%.2g, dispersion %.1f)", net, p, math.Max(before.Dispersion, after.Dispersion))}
				if zr := math.Abs(peak.P-after.P) / math.Hypot(peak.SE, after.SE); zr > zAlpha && math.Abs(net) < cfg.WentAwayFraction*math.Abs(peakDelta) {
					drop = &Dropped{Function: sr.Function, Stage: StageWentAway,
						Reason: fmt.Sprintf("net change %+.3g is under %.0f%% of the peak change %+.3g (reversion z=%.1f)", net, 100*cfg.WentAwayFraction, peakDelta, zr)}
				}
			}
			continue
		}
		// The change starts at the event's first change point (a rollout's first
		// stage), like the version-paired path's rollout start.
		change := first
		// The search's α only proposes changes; the strongest change point of the
		// event must itself reach the family level of the net test, so an event made
		// of weak proposals is noise (at Alpha, ten evaluation seeds measured 17
		// false positives in 5466 series, most with change points at p 1e-4…1e-3;
		// at the family level 7, recall at ≥ 2× the noise floor 0.95 both ways).
		strongest := 1.0
		for _, c := range ev.cps {
			p = math.Max(p, pvals[c])
			strongest = math.Min(strongest, pvals[c])
		}
		if strongest >= w.netAlpha {
			if !rising(cs) {
				drop = &Dropped{Function: sr.Function, Stage: StageSignificance,
					Reason: fmt.Sprintf("change points too weak (best p=%.2g)", strongest)}
			}
			continue
		}
		// Went-away later: the level must still hold at the end of the data. Two
		// checks against this event's baseline: the level after the series' last
		// event (a later event brought it back: a revert, or a fix in a later
		// release), and the last half extended window (a transient in the extended
		// window too short for the search to place its end). The change is gone when
		// what is left of it is under WentAwayFraction and the return is significant.
		tail := max(2, (w.ext+1)/2)
		var checks [][2]int
		if ei+1 < len(evs) {
			lastEv := evs[len(evs)-1]
			checks = append(checks, [2]int{lastEv.cps[len(lastEv.cps)-1], w.n})
		}
		if w.n-tail > last {
			checks = append(checks, [2]int{w.n - tail, w.n})
		}
		// Both sides take the baseline's noise: a transient inflates the dispersion
		// of the windows it is in, which would hide its own end.
		d0 := math.Max(disp, before.Dispersion)
		ref := withDispersion(after, d0)
		gone := false
		for _, ck := range checks {
			latest := withDispersion(windowEstimate(svc, sr, ck[0], ck[1], w.common, offsets), d0)
			if offsets != nil {
				latest = profileNoise(latest, ck[1]-ck[0], w.period, w.winLo/w.period)
			}
			left := latest.P - before.P
			zr := math.Abs(ref.P-latest.P) / math.Hypot(ref.SE, latest.SE)
			if left*net < cfg.WentAwayFraction*net*net && zr > zAlpha {
				if !rising(cs) {
					drop = &Dropped{Function: sr.Function, Stage: StageWentAway,
						Reason: fmt.Sprintf("change %+.3g gone by bucket %d (%+.3g left, reversion z=%.1f)", net, ck[0], left, zr)}
				}
				gone = true
				break
			}
		}
		if gone {
			continue
		}
		c := &candidate{
			fn: sr.Function, domain: findings.DomainOf(sr.Function), change: change, lo: lo, hi: hi,
			before: before, after: after, abs: net, p: p,
			filters: []string{findings.FilterSignificance, findings.FilterWentAway},
		}
		if before.P > 0 {
			c.rel = net / before.P
		}
		if offsets != nil {
			c.filters = append(c.filters, findings.FilterSeasonality)
		}
		if len(ev.cps) > 1 {
			c.filters = append(c.filters, findings.FilterMerge)
		}
		c.vBefore = dominantVersion(svc, lo, first)
		c.vAfter = dominantVersion(svc, last, hi)
		if d, v, ok := snapToDeploy(w.starts, s2, lo, hi, net, cfg.ChangePoint.Alpha); ok {
			c.change, c.vAfter = d, v
			c.vBefore = dominantVersion(svc, lo, d)
			c.filters = append(c.filters, FilterDeploy)
		}
		if net > 0 {
			drop = nil
		}
		cs = append(cs, c)
	}
	return cs, drop
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
// at least MinVersionGroups host groups each, compare the host groups running the new
// version with those running the old one (Welch test over group shares pooled in the
// shared buckets), which cancels diurnal and traffic effects and counts host effects
// as noise.
func versionCandidate(svc *Service, sr *Series, cfg Config, w windows) (*candidate, *Dropped) {
	if len(sr.VersionInclusive) < 2 || len(sr.CellInclusive) == 0 {
		return nil, nil
	}
	type ver struct {
		name  string
		first int
	}
	var vs []ver
	for _, v := range sortedKeys(sr.VersionInclusive) {
		if t, ok := w.starts[v]; ok {
			vs = append(vs, ver{v, t})
		}
	}
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].first < vs[j].first })
	cells := sortedCells(svc.CellTotal)
	groupsOf := func(v string, t int) int {
		n := 0
		for _, c := range cells {
			if c.Version == v && svc.CellTotal[c][t] > 0 {
				n++
			}
		}
		return n
	}
	var best *candidate
	for k := 1; k < len(vs); k++ {
		a, b := vs[k-1].name, vs[k].name
		var overlap []int
		for t := range w.n {
			if groupsOf(a, t) >= cfg.MinVersionGroups && groupsOf(b, t) >= cfg.MinVersionGroups {
				overlap = append(overlap, t)
			}
		}
		if len(overlap) < cfg.MinOverlapBuckets || overlap[len(overlap)-1] < w.winLo {
			continue
		}
		pool := func(v string) (inc, tot []float64) {
			for _, c := range cells {
				if c.Version != v {
					continue
				}
				var si, st float64
				for _, t := range overlap {
					si += sr.CellInclusive[c][t]
					st += svc.CellTotal[c][t]
				}
				if st > 0 {
					inc, tot = append(inc, si), append(tot, st)
				}
			}
			return inc, tot
		}
		ia, ta := pool(a)
		ib, tb := pool(b)
		before, after, diff, z := groupTest(ia, ta, ib, tb)
		// With history, the host groups' spread before the rollout (many windows)
		// measures host effects far better than the few groups in the rollout.
		if len(sr.GroupInclusive) > 1 {
			var gi, gt [][]float64
			for _, g := range sortedKeys(sr.GroupInclusive) {
				gi, gt = append(gi, sr.GroupInclusive[g]), append(gt, svc.GroupTotal[g])
			}
			L := len(overlap)
			if kappa, nw := hostVariance(gi, gt, vs[k].first, L); nw >= 5 {
				before, after, diff, z = cellTest(ia, ta, ib, tb, kappa, L)
			}
		}
		p := twoSidedP(z)
		if z == 0 || p >= w.pairedAlpha {
			continue // no evidence of a change: not a dropped candidate
		}
		if best != nil && p >= best.p {
			continue
		}
		start := overlap[0]
		for t := range w.n {
			if svc.VersionTotal[a][t] > 0 && svc.VersionTotal[b][t] > 0 {
				start = t // the rollout's first bucket
				break
			}
		}
		best = &candidate{
			fn: sr.Function, domain: findings.DomainOf(sr.Function),
			change: start, lo: overlap[0], hi: overlap[len(overlap)-1] + 1,
			before: before, after: after, abs: diff, p: p, vBefore: a, vAfter: b,
			filters: []string{findings.FilterVersionPair, findings.FilterSignificance},
		}
		// The pooled shares differ slightly from the mean group difference; report
		// shares consistent with it.
		best.after.P = before.P + diff
		if before.P > 0 {
			best.rel = diff / before.P
		}
	}
	return best, nil
}

// versionStarts maps each version of the service to its first bucket with samples
// (its rollout start; 0 for the version already running); versions without
// samples are left out.
func versionStarts(svc *Service) map[string]int {
	out := map[string]int{}
	for v, tot := range svc.VersionTotal {
		if t := slices.IndexFunc(tot, func(x float64) bool { return x > 0 }); t >= 0 {
			out[v] = t
		}
	}
	return out
}

// dominantVersion is the version with most samples in [lo, hi), "" if none.
func dominantVersion(svc *Service, lo, hi int) string {
	best, bestN := "", 0.0
	for _, v := range sortedKeys(svc.VersionTotal) {
		n := 0.0
		for _, x := range svc.VersionTotal[v][lo:hi] {
			n += x
		}
		if n > bestN {
			best, bestN = v, n
		}
	}
	return best
}

// callGraph answers "is a a (transitive) caller of b".
type callGraph struct {
	callers   map[string][]string
	ancestors map[string]map[string]bool
}

func newCallGraph(edges []Edge) *callGraph {
	g := &callGraph{callers: map[string][]string{}, ancestors: map[string]map[string]bool{}}
	for _, e := range edges {
		if e.Caller != e.Callee && e.Count > 0 {
			g.callers[e.Callee] = append(g.callers[e.Callee], e.Caller)
		}
	}
	return g
}

func (g *callGraph) isAncestor(a, b string) bool {
	anc, ok := g.ancestors[b]
	if !ok {
		anc = map[string]bool{}
		queue := []string{b}
		for len(queue) > 0 {
			x := queue[0]
			queue = queue[1:]
			for _, c := range g.callers[x] {
				if !anc[c] {
					anc[c] = true
					queue = append(queue, c)
				}
			}
		}
		delete(anc, b) // recursion does not make a function its own ancestor
		g.ancestors[b] = anc
	}
	return anc[a]
}

func (g *callGraph) related(a, b string) bool { return g.isAncestor(a, b) || g.isAncestor(b, a) }

func near(a, b *candidate, tol int) bool {
	d := a.change - b.change
	return d >= -tol && d <= tol
}

// dedup groups rises explained by one another: a caller's inclusive share rises by
// the samples of the callee that got slower. Starting from the largest rise, it walks
// down to the deepest callee that still carries at least DedupCoverage of it, reports
// that callee, and folds in the callers whose rise it explains.
func dedup(ups []*candidate, g *callGraph, cfg Config, tol int) []*candidate {
	sorted := slices.Clone(ups)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].abs != sorted[j].abs {
			return sorted[i].abs > sorted[j].abs
		}
		return sorted[i].fn < sorted[j].fn
	})
	used := map[*candidate]bool{}
	var out []*candidate
	for _, c := range sorted {
		if used[c] {
			continue
		}
		rep := c
		// A self-share rise is the function's own code: no callee explains it.
		for !c.self {
			var next *candidate
			for _, d := range sorted {
				if used[d] || d == rep || !near(d, rep, tol) || !g.isAncestor(rep.fn, d.fn) {
					continue
				}
				if d.abs >= cfg.DedupCoverage*rep.abs && (next == nil || d.abs > next.abs) {
					next = d
				}
			}
			if next == nil {
				break
			}
			rep = next
		}
		used[rep] = true
		for _, d := range sorted {
			if used[d] || d.self || !near(d, rep, tol) || !g.isAncestor(d.fn, rep.fn) {
				continue
			}
			if rep.abs >= cfg.DedupCoverage*d.abs {
				used[d] = true
				rep.group = append(rep.group, d.fn)
				rep.group = append(rep.group, d.group...)
			}
		}
		if !slices.Contains(rep.filters, findings.FilterDedup) {
			rep.filters = append(rep.filters, findings.FilterDedup)
		}
		out = append(out, rep)
	}
	for _, c := range out {
		sort.Strings(c.group)
		c.group = slices.Compact(c.group)
	}
	return out
}

// costShift drops rises matched by falls of unrelated functions in the same domain at
// the same time: the cost moved (e.g. code moved from one function to another), it
// was not added. Shares are normalised, so when a function's absolute cost grows by x
// (in units of the old total) every other function's share falls by the factor
// 1/(1+x); only the part of a fall beyond that dilution counts as moved cost.
func costShift(svc *Service, w windows, ups, downs []*candidate, g *callGraph, cfg Config, tol int, res *Result) []*candidate {
	var out, shifted []*candidate
	dilAt := map[int]float64{}
	for _, c := range ups {
		// x/(1+x) for all rises at the same time, from each rise Δ of a share p:
		// Δ = x(1−p)/(1+x).
		dil := 0.0
		for _, u := range ups {
			// Self candidates repeat their function's inclusive rise.
			if !u.self && near(u, c, tol) && u.before.P < 1 {
				dil += u.abs / (1 - u.before.P)
			}
		}
		// Measured: most functions did not change, so the median relative change of
		// all shares at that time is the dilution (several rises, or ones whose
		// candidates were folded or filtered, are all in it).
		if _, ok := dilAt[c.change]; !ok {
			dilAt[c.change] = dilutionAt(svc, c.change, w)
		}
		dil = math.Min(math.Max(dil, dilAt[c.change]), 1)
		// Moved cost balances: falls far larger than the rise are another event
		// (a bigger change elsewhere), not where this rise came from.
		// The rise as its own test estimated it and as measured in the same windows
		// as the falls: a moved cost balances either (the version-paired estimate
		// also carries the two host halves' difference, 1.5× the window measure in
		// the evaluation).
		rise, riseLo := c.abs, c.abs
		if sr := seriesOf(svc, c.fn); sr != nil {
			xs := sr.Inclusive
			if c.self && sr.Self != nil {
				xs = sr.Self
			}
			if m := -windowChange(svc, xs, c.change, w); m > 0 {
				rise, riseLo = math.Max(rise, m), math.Min(riseLo, m)
			}
		}
		// Per moved-from function, the larger of its candidate fall and its fall
		// measured directly in fixed windows around the change (the fall need not
		// have become a candidate of its own, and a candidate's window may be cut
		// short by its neighbouring events). Callers, callees and siblings alike.
		falls := map[string]float64{}
		note := func(name string, excess float64) {
			if excess > falls[name] {
				falls[name] = excess
			}
		}
		// Moved code leaves the body of the function it came from, so where self
		// shares are known only a self fall counts: an unrelated function's inclusive
		// share also falls when something below it changed in the same release.
		// A function that shrank as a whole far more than this rise (renamed, or
		// removed from a hot path: 25× in the evaluation) is another change, not the
		// source; a moved-from function may lose a little more than the moved code
		// to an unrelated change of its callees in the same release (1.6×).
		hasSelf, shrank := map[string]bool{}, map[string]bool{}
		for i := range svc.Series {
			sr := &svc.Series[i]
			hasSelf[sr.Function] = sr.Self != nil
			if sr.Function != c.fn && findings.DomainOf(sr.Function) == c.domain {
				// Beyond dilution: a big rise elsewhere in the release dilutes a
				// large inclusive share by far more than a small moved cost.
				shrank[sr.Function] = windowFall(svc, sr.Inclusive, c.change, w, dil) > 4*rise
			}
		}
		for _, d := range downs {
			if w.seasonal[d.fn] {
				continue
			}
			if d.domain != c.domain || !near(c, d, tol) || g.related(c.fn, d.fn) || (hasSelf[d.fn] && !d.self) || shrank[d.fn] {
				continue
			}
			note(d.fn, -d.abs-d.before.P*dil)
		}
		// One measure per other function of the domain, of its own code (self
		// share, or the inclusive share of functions unrelated to c where self is
		// unknown): a fall beyond dilution is a source, a rise a rival (below).
		rivals := map[string]float64{}
		for i := range svc.Series {
			sr := &svc.Series[i]
			d := sr.Function
			if d == c.fn || findings.DomainOf(d) != c.domain {
				continue
			}
			xs := sr.Self
			if xs == nil {
				if g.related(d, c.fn) {
					continue
				}
				xs = sr.Inclusive
			}
			ch := windowChange(svc, xs, c.change, w)
			if ch < 0 {
				rivals[d] = -ch
			}
			// A seasonal function's daily fall (two evaluation misses: the fall of
			// the day's wave balanced a regression) is not moved cost.
			if ch > 0 && !shrank[d] && !w.seasonal[d] {
				note(d, beyondDilution(svc, xs, c.change, w, dil, ch))
			}
		}
		// A fall explains the rise it balances best: when another function of the
		// domain rose at the same time by an amount closer to it (the target of a
		// cost shift or the new name of a renamed function, in the same release),
		// the fall is that function's source, not this rise's.
		for name, f := range falls {
			if f <= 0 {
				continue
			}
			own := math.Min(math.Abs(math.Log(f/riseLo)), math.Abs(math.Log(f/rise)))
			for rival, r := range rivals {
				if rival != name && math.Abs(math.Log(f/r)) < own {
					delete(falls, name)
					break
				}
			}
		}
		fell := 0.0
		var from []string
		for _, name := range sortedKeys(falls) {
			if falls[name] > 0 {
				fell += falls[name]
				from = append(from, name)
			}
		}
		balances := func(f float64) bool {
			return f > 0 && f >= cfg.CostShiftFraction*riseLo && (cfg.CostShiftFraction == 0 || f <= rise/cfg.CostShiftFraction)
		}
		// All falls together, or one function alone (its fall balances the rise while
		// an unrelated change at the same time makes the sum too large).
		shift := balances(fell)
		for _, name := range from {
			if !shift && balances(falls[name]) {
				shift, fell, from = true, falls[name], []string{name}
			}
		}
		if shift {
			res.Dropped = append(res.Dropped, Dropped{Function: c.fn, Stage: StageCostShift,
				Reason: fmt.Sprintf("rise %+.3g matched by falls %.3g beyond dilution in %s", c.abs, fell, strings.Join(from, ", "))})
			shifted = append(shifted, c)
			continue
		}
		out = append(out, c)
	}
	// Callers whose inclusive rise is (mostly) the moved cost rose for the same reason.
	kept := out[:0]
outer:
	for _, c := range out {
		for _, sh := range shifted {
			if !c.self && near(c, sh, tol) && g.isAncestor(c.fn, sh.fn) && sh.abs >= cfg.DedupCoverage*c.abs {
				res.Dropped = append(res.Dropped, Dropped{Function: c.fn, Stage: StageCostShift,
					Reason: fmt.Sprintf("rise %+.3g is the cost shifted into its callee %s", c.abs, sh.fn)})
				continue outer
			}
			// A rollout can split one shift into two events of the same function (its
			// first stages, then the rest): a smaller rise next to a shifted one is
			// part of it.
			if near(c, sh, tol) && sh.fn == c.fn && sh.self == c.self && c.abs <= sh.abs {
				res.Dropped = append(res.Dropped, Dropped{Function: c.fn, Stage: StageCostShift,
					Reason: fmt.Sprintf("rise %+.3g is part of the cost shift into it %d buckets away", c.abs, sh.change-c.change)})
				continue outer
			}
		}
		c.filters = append(c.filters, findings.FilterCostShift)
		kept = append(kept, c)
	}
	return kept
}

// dilutionAt is the typical relative fall of inclusive shares around bucket t
// (windows from aroundChange), over functions with at least 0.1% of the service.
func dilutionAt(svc *Service, t int, w windows) float64 {
	blo, bhi, alo, ahi := aroundChange(t, w)
	if bhi-blo < 2 || ahi-alo < 2 {
		return 0
	}
	var rels []float64
	for i := range svc.Series {
		sr := &svc.Series[i]
		b := sum(sr.Inclusive[blo:bhi]) / math.Max(1, sum(svc.Total[blo:bhi]))
		a := sum(sr.Inclusive[alo:ahi]) / math.Max(1, sum(svc.Total[alo:ahi]))
		if b >= 1e-3 && b < 0.9 {
			rels = append(rels, a/b-1)
		}
	}
	if len(rels) < 5 {
		return 0
	}
	return math.Max(0, -median(rels))
}

// aroundChange returns the windows before and after a change at bucket t: up to six
// extended windows each, the after one starting two extended windows later so a
// rollout has completed.
func aroundChange(t int, w windows) (blo, bhi, alo, ahi int) {
	span := 6 * max(w.ext, 1)
	blo, bhi = max(0, t-span), t
	alo = min(w.n, t+2*w.ext)
	ahi = min(w.n, alo+span)

	if ahi-alo < 2 {
		alo, ahi = t, w.n
	}
	return blo, bhi, alo, ahi
}

func sum(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}

// windowChange is the change of a count series' share (before − after, so a fall
// is positive) between the windows around bucket t (aroundChange); 0 when it is
// within 3 standard errors.
func windowChange(svc *Service, xs []float64, t int, w windows) float64 {
	blo, bhi, alo, ahi := aroundChange(t, w)
	if bhi-blo < 2 || ahi-alo < 2 {
		return 0
	}
	before := trimmedEstimate(xs[blo:bhi], svc.Total[blo:bhi])
	after := trimmedEstimate(xs[alo:ahi], svc.Total[alo:ahi])
	d := before.P - after.P
	if math.Abs(d) < 3*math.Hypot(before.SE, after.SE) {
		return 0
	}
	return d
}

// trimmedEstimate is quasiBinomial over the buckets whose share is within five
// robust standard deviations (1.4826 × MAD) of the median share: the windows around
// a change are hours long, and a spike of the function in one of them (a transient
// of its own) must not hide or fake the cost it gained or lost.
func trimmedEstimate(inc, tot []float64) estimate {
	var shares []float64
	for i := range inc {
		if tot[i] > 0 {
			shares = append(shares, inc[i]/tot[i])
		}
	}
	if len(shares) < 5 {
		return quasiBinomial(inc, tot)
	}
	m := median(shares)
	dev := make([]float64, len(shares))
	for i, x := range shares {
		dev[i] = math.Abs(x - m)
	}
	lim := 5 * 1.4826 * median(dev)
	if lim == 0 {
		return quasiBinomial(inc, tot)
	}
	var ki, kt []float64
	for i := range inc {
		if tot[i] > 0 && math.Abs(inc[i]/tot[i]-m) <= lim {
			ki, kt = append(ki, inc[i]), append(kt, tot[i])
		}
	}
	return quasiBinomial(ki, kt)
}

// windowFall is how much a count series' share fell around bucket t beyond the
// dilution dil (a relative fall every share shows).
func windowFall(svc *Service, xs []float64, t int, w windows, dil float64) float64 {
	fall := windowChange(svc, xs, t, w)
	if fall <= 0 {
		return 0
	}
	return beyondDilution(svc, xs, t, w, dil, fall)
}

// beyondDilution is the part of a fall of xs's share around bucket t (measured by
// windowChange) beyond the dilution dil.
func beyondDilution(svc *Service, xs []float64, t int, w windows, dil, fall float64) float64 {
	blo, bhi, _, _ := aroundChange(t, w)
	p := sum(xs[blo:bhi]) / math.Max(1, sum(svc.Total[blo:bhi]))
	return math.Max(0, fall-p*dil)
}

func seriesOf(svc *Service, fn string) *Series {
	for i := range svc.Series {
		if svc.Series[i].Function == fn {
			return &svc.Series[i]
		}
	}
	return nil
}

func (c *candidate) finding(svc *Service, cfg Config) findings.Finding {
	at := func(i int) time.Time {
		if svc.Start.IsZero() {
			return time.Time{}
		}
		return svc.Start.Add(time.Duration(i) * svc.Step).UTC()
	}
	f := findings.Finding{
		Kind: findings.KindRegression, Service: svc.Name, Function: c.fn, Domain: c.domain,
		Before: c.before.share(), After: c.after.share(),
		AbsoluteChange: c.abs, RelativeChange: c.rel,
		ServiceCores: svc.Cores, EstimatedCores: c.abs * svc.Cores,
		PValue: c.p, ChangeTime: at(c.change), WindowStart: at(c.lo), WindowEnd: at(c.hi),
		VersionBefore: c.vBefore, VersionAfter: c.vAfter,
		RepresentativeStacks: representativeStacks(svc, c.fn, c.change, c.hi, cfg.MaxStacks),
		FiltersPassed:        c.filters, DedupGroup: c.group,
	}
	f.ID = findings.ComputeID(&f)
	return f
}

// representativeStacks returns the stacks containing fn with the largest share of the
// service in [lo, hi).
func representativeStacks(svc *Service, fn string, lo, hi, k int) []findings.Stack {
	if k == 0 || len(svc.Stacks) == 0 {
		return nil
	}
	total := 0.0
	for _, x := range svc.Total[lo:hi] {
		total += x
	}
	if total == 0 {
		return nil
	}
	var out []findings.Stack
	for _, st := range svc.Stacks {
		if !slices.Contains(st.Frames, fn) {
			continue
		}
		n := 0.0
		for _, x := range st.Count[lo:hi] {
			n += x
		}
		if n > 0 {
			out = append(out, findings.Stack{Frames: st.Frames, Share: n / total})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Share > out[j].Share })
	if len(out) > k {
		out = out[:k]
	}
	return out
}
