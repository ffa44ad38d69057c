package detect

import (
	"fmt"
	"math"

	"github.com/fleetprof/fleetprof/analyzer/changepoint"
	"github.com/fleetprof/fleetprof/analyzer/findings"
)

// event is a run of change points close enough to be one change (the stages of a
// rollout, the start and end of a spike): bucket indices of its change points.
type event struct{ cps []int }

// timePath is one series on the before/after path, after the change-point search.
type timePath struct {
	svc *Service
	sr  *Series
	cfg Config
	w   windows
	// s is the share series searched (seasonal dilution divided out,
	// deseasonalized); offsets the seasonal profile subtracted (nil if none).
	s, offsets []float64
	evs        []event
	pvals      map[int]float64 // change point index → its p-value
	// disp is the over-dispersion measured over the whole series (around its
	// segmentation): a floor for each window's own estimate, which short windows
	// make noisy.
	disp float64
	// zAlpha is the z of the search's level: a reversion must exceed it.
	zAlpha float64
}

// eventChange is one event measured: the levels before and after it (between the
// neighbouring events), the level furthest from the baseline, the net change.
type eventChange struct {
	ei, first, last, lo, hi int
	before, after, peak     estimate
	net, p                  float64
}

// timeCandidate is the before/after path: change points on the (deseasonalized)
// share series are chained into events (gaps up to the merge tolerance or the
// extended window, so a transient's rise and fall are one event); each event's net
// change (level before its first change point → level after its last) goes through
// the steps of eventSteps. Every event that passes is a candidate: rises may be
// reported, falls are evidence for cost shifts. drop is why the last rise was not
// (nil when a rise is a candidate).
func timeCandidate(svc *Service, sr *Series, cfg Config, w windows) (cs []*candidate, drop *Dropped) {
	if w.winHi < w.winLo {
		return nil, nil
	}
	tp, err := searchSeries(svc, sr, cfg, w)
	if err != nil {
		return nil, &Dropped{Function: sr.Function, Stage: StageSignificance, Reason: err.Error()}
	}
	if tp == nil {
		return nil, nil
	}
outer:
	for ei, ev := range tp.evs {
		if first := ev.cps[0]; first < w.winLo || first > w.winHi {
			continue
		}
		e := tp.measure(ei)
		for _, step := range eventSteps {
			if d := step(tp, &e); d != nil {
				if !rising(cs) {
					drop = d
				}
				continue outer
			}
		}
		c := tp.candidate(e)
		if c.abs > 0 {
			drop = nil
		}
		cs = append(cs, c)
	}
	return cs, drop
}

// eventSteps are the tests an event's change must pass, in order. A step that
// rejects returns why (a Dropped); it may refine e.
var eventSteps = []func(tp *timePath, e *eventChange) *Dropped{
	(*timePath).persisted,
	(*timePath).strongEnough,
	(*timePath).stillThere,
}

// searchSeries builds the series to search, runs the change-point search and
// chains the change points into events. Nil when there is no change point.
func searchSeries(svc *Service, sr *Series, cfg Config, w windows) (*timePath, error) {
	s := shareSeries(sr.Inclusive, svc.Total)
	if w.common != nil {
		for i := range s {
			s[i] /= w.common[i]
		}
	}
	s2, offsets := deseasonalize(s, w.period, w.winLo, w.tun.SeasonProfileSDs)
	cps, err := changepoint.Detect(s2, cfg.ChangePoint)
	if err != nil {
		return nil, err
	}
	if len(cps) == 0 {
		return nil, nil
	}
	tp := &timePath{svc: svc, sr: sr, cfg: cfg, w: w, s: s2, offsets: offsets,
		pvals: map[int]float64{}, zAlpha: math.Sqrt2 * math.Erfinv(1-cfg.ChangePoint.Alpha)}
	tp.evs = chainEvents(cps, max(w.tol, w.ext), cfg.ChangePoint.MinSegment)
	var bounds []int
	for _, c := range cps {
		tp.pvals[c.Index] = c.PValue
		bounds = append(bounds, c.Index)
	}
	tp.disp = seriesDispersion(svc, sr, bounds, offsets)
	return tp, nil
}

// chainEvents groups change points into events. Rollout stages are change points in
// one direction a stage apart (up to gap buckets); a transient is a rise and a fall
// at least minSegment apart (the search cannot place them closer), so a reversal
// may chain from further away.
func chainEvents(cps []changepoint.ChangePoint, gap, minSegment int) []event {
	var evs []event
	for i, c := range cps {
		if k := len(evs); k > 0 {
			d := c.Index - evs[k-1].cps[len(evs[k-1].cps)-1]
			reversal := (c.After-c.Before)*(cps[i-1].After-cps[i-1].Before) < 0
			if d <= gap || (reversal && d <= gap+minSegment) {
				evs[k-1].cps = append(evs[k-1].cps, c.Index)
				continue
			}
		}
		evs = append(evs, event{cps: []int{c.Index}})
	}
	return evs
}

// estimate is the level of buckets [lo, hi), seasonal offsets and dilution removed.
func (tp *timePath) estimate(lo, hi int) estimate {
	return windowEstimate(tp.svc, tp.sr, lo, hi, tp.w.common, tp.offsets)
}

// withProfileNoise adds the seasonal profile's error to e, a window of L buckets.
func (tp *timePath) withProfileNoise(e estimate, L int) estimate {
	if tp.offsets == nil {
		return e
	}
	return profileNoise(e, L, tp.w.period, tp.w.winLo/tp.w.period)
}

// measure estimates event ei's levels: before (from the previous event), after (to
// the next), and the peak among its segments.
func (tp *timePath) measure(ei int) eventChange {
	ev := tp.evs[ei]
	e := eventChange{ei: ei, first: ev.cps[0], last: ev.cps[len(ev.cps)-1], lo: 0, hi: tp.w.n}
	if ei > 0 {
		prev := tp.evs[ei-1].cps
		e.lo = prev[len(prev)-1]
	}
	if ei+1 < len(tp.evs) {
		e.hi = tp.evs[ei+1].cps[0]
	}
	e.before = tp.withProfileNoise(inflate(tp.estimate(e.lo, e.first), tp.disp), e.first-e.lo)
	e.after = tp.withProfileNoise(inflate(tp.estimate(e.last, e.hi), tp.disp), e.hi-e.last)
	e.net = e.after.P - e.before.P
	// Inside the event the level may have gone far from the baseline (a spike) and
	// come back.
	e.peak = e.after
	for i, c := range ev.cps {
		end := e.hi
		if i+1 < len(ev.cps) {
			end = ev.cps[i+1]
		}
		if seg := tp.estimate(c, end); math.Abs(seg.P-e.before.P) > math.Abs(e.peak.P-e.before.P) {
			e.peak = seg
		}
	}
	return e
}

// persisted is the significance test of the net change at the family level. When it
// fails but the peak reverted significantly and the net change is under
// WentAwayFraction of the peak, the change went away (a transient).
func (tp *timePath) persisted(e *eventChange) *Dropped {
	z := e.net / math.Hypot(e.before.SE, e.after.SE)
	e.p = twoSidedP(z)
	if e.p < tp.w.netAlpha {
		return nil
	}
	fn := tp.sr.Function
	peakDelta := e.peak.P - e.before.P
	if zr := math.Abs(e.peak.P-e.after.P) / math.Hypot(e.peak.SE, e.after.SE); zr > tp.zAlpha && math.Abs(e.net) < tp.cfg.WentAwayFraction*math.Abs(peakDelta) {
		return &Dropped{Function: fn, Stage: StageWentAway,
			Reason: fmt.Sprintf("net change %+.3g is under %.0f%% of the peak change %+.3g (reversion z=%.1f)", e.net, 100*tp.cfg.WentAwayFraction, peakDelta, zr)}
	}
	return &Dropped{Function: fn, Stage: StageSignificance,
		Reason: fmt.Sprintf("persisted change %+.3g not significant (p=%.2g, dispersion %.1f)", e.net, e.p, math.Max(e.before.Dispersion, e.after.Dispersion))}
}

// strongEnough requires the strongest change point of the event to reach the family
// level too: the search's α only proposes changes, and an event made of weak
// proposals is noise. The event's p is the weakest of its tests.
func (tp *timePath) strongEnough(e *eventChange) *Dropped {
	strongest := 1.0
	for _, c := range tp.evs[e.ei].cps {
		e.p = math.Max(e.p, tp.pvals[c])
		strongest = math.Min(strongest, tp.pvals[c])
	}
	if strongest < tp.w.netAlpha {
		return nil
	}
	return &Dropped{Function: tp.sr.Function, Stage: StageSignificance,
		Reason: fmt.Sprintf("change points too weak (best p=%.2g)", strongest)}
}

// stillThere is the later went-away check: the level must still hold at the end of
// the data. Two checks against this event's baseline: the level after the series'
// last event (a later event brought it back: a revert, or a fix in a later
// release), and the tail of the extended window (a transient in the extended window
// too short for the search to place its end). The change is gone when what is left
// of it is under WentAwayFraction and the return is significant.
func (tp *timePath) stillThere(e *eventChange) *Dropped {
	w := tp.w
	tail := max(w.tun.MinTailBuckets, int(math.Ceil(w.tun.TailFraction*float64(w.ext))))
	var checks [][2]int
	if e.ei+1 < len(tp.evs) {
		lastEv := tp.evs[len(tp.evs)-1]
		checks = append(checks, [2]int{lastEv.cps[len(lastEv.cps)-1], w.n})
	}
	if w.n-tail > e.last {
		checks = append(checks, [2]int{w.n - tail, w.n})
	}
	// Both sides take the baseline's noise: a transient inflates the dispersion of
	// the windows it is in, which would hide its own end.
	d0 := math.Max(tp.disp, e.before.Dispersion)
	ref := withDispersion(e.after, d0)
	for _, ck := range checks {
		latest := tp.withProfileNoise(withDispersion(tp.estimate(ck[0], ck[1]), d0), ck[1]-ck[0])
		left := latest.P - e.before.P
		zr := math.Abs(ref.P-latest.P) / math.Hypot(ref.SE, latest.SE)
		if left*e.net < tp.cfg.WentAwayFraction*e.net*e.net && zr > tp.zAlpha {
			return &Dropped{Function: tp.sr.Function, Stage: StageWentAway,
				Reason: fmt.Sprintf("change %+.3g gone by bucket %d (%+.3g left, reversion z=%.1f)", e.net, ck[0], left, zr)}
		}
	}
	return nil
}

// candidate makes the candidate of an event that passed every step, dated at its
// first change point (a rollout's first stage, like the version-paired path's
// rollout start) or at a rollout start in the confidence set of its location.
func (tp *timePath) candidate(e eventChange) *candidate {
	svc := tp.svc
	c := &candidate{
		fn: tp.sr.Function, domain: findings.DomainOf(tp.sr.Function), change: e.first, lo: e.lo, hi: e.hi,
		before: e.before, after: e.after, abs: e.net, p: e.p,
	}
	c.pass(findings.FilterSignificance)
	c.pass(findings.FilterWentAway)
	if e.before.P > 0 {
		c.rel = e.net / e.before.P
	}
	if tp.offsets != nil {
		c.pass(findings.FilterSeasonality)
	}
	if len(tp.evs[e.ei].cps) > 1 {
		c.pass(findings.FilterMerge)
	}
	c.vBefore = dominantVersion(svc, e.lo, e.first)
	c.vAfter = dominantVersion(svc, e.last, e.hi)
	if d, v, ok := snapToDeploy(tp.w.starts, tp.s, e.lo, e.hi, e.net, tp.cfg.ChangePoint.Alpha); ok {
		c.change, c.vAfter = d, v
		c.vBefore = dominantVersion(svc, e.lo, d)
		c.pass(FilterDeploy)
	}
	return c
}
