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
}

// windows are the bucket ranges derived from Config for one service.
type windows struct {
	n, winLo, winHi, period, tol int
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
	w.winLo = m
	if a := buckets(cfg.AnalysisWindow, svc.Step); a > 0 {
		w.winLo = max(m, w.winHi-a)
	}
	res := &Result{}
	// Series are independent until dedup: analyze them in parallel, collect in order.
	type outcome struct {
		c    *candidate
		drop *Dropped
		kind seriesOutcome
	}
	outs := make([]outcome, len(svc.Series))
	workers := cfg.Parallelism
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(svc.Series)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(svc.Series) {
					return
				}
				c, drop, kind := analyzeSeries(svc, &svc.Series[i], cfg, w)
				outs[i] = outcome{c, drop, kind}
			}
		})
	}
	wg.Wait()
	var ups, downs []*candidate
	for _, o := range outs {
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
			if o.c.abs > 0 {
				ups = append(ups, o.c)
			} else {
				downs = append(downs, o.c)
			}
		}
	}
	g := newCallGraph(svc.Edges)
	ups = dedup(ups, g, cfg, w.tol)
	ups = costShift(ups, downs, g, cfg, w.tol, res)
	ups = dedup(ups, g, cfg, w.tol)
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

// analyzeSeries runs the per-series stages.
func analyzeSeries(svc *Service, sr *Series, cfg Config, w windows) (*candidate, *Dropped, seriesOutcome) {
	var si, st float64
	for i := range sr.Inclusive {
		si += sr.Inclusive[i]
		st += svc.Total[i]
	}
	if st == 0 || si/st < cfg.MinShare {
		return nil, nil, outcomeBelowMinShare
	}
	vc, vdrop := versionCandidate(svc, sr, cfg, w)
	tc, tdrop := timeCandidate(svc, sr, cfg, w)
	var c *candidate
	var drop *Dropped
	switch {
	case vc != nil && tc != nil:
		// One change, seen both ways: the paired comparison is the better estimate.
		vc.filters = append(vc.filters, findings.FilterMerge)
		c, drop = thresholdStage(vc, cfg)
	case vc != nil:
		c, drop = thresholdStage(vc, cfg)
	case tc != nil:
		c, drop = thresholdStage(tc, cfg)
	case tdrop != nil:
		drop = tdrop
	case vdrop != nil:
		drop = vdrop
	default:
		return nil, nil, outcomeNoChange
	}
	if drop != nil {
		return nil, drop, outcomeDropped
	}
	return c, nil, outcomeCandidate
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
	adjusted = make([]float64, len(s))
	offsets = make([]float64, len(s))
	for i := range s {
		offsets[i] = prof[i%period] - mp
		adjusted[i] = s[i] - offsets[i]
	}
	return adjusted, offsets
}

// windowEstimate pools a function's counts over buckets [lo, hi), per host group when
// the service has groups (so their spread measures over-dispersion), and removes the
// window's average seasonal offset.
func windowEstimate(svc *Service, sr *Series, lo, hi int, offsets []float64) estimate {
	var inc, tot []float64
	if len(sr.GroupInclusive) > 0 {
		for _, g := range sortedKeys(sr.GroupInclusive) {
			inc = append(inc, sr.GroupInclusive[g][lo:hi]...)
			tot = append(tot, svc.GroupTotal[g][lo:hi]...)
		}
	} else {
		inc, tot = sr.Inclusive[lo:hi], svc.Total[lo:hi]
	}
	e := quasiBinomial(inc, tot)
	if offsets != nil {
		e.P -= mean(offsets[lo:hi])
	}
	return e
}

// timeCandidate is the before/after path: change points on the (deseasonalized)
// share series, merged into one net change per function, then went-away and
// significance.
func timeCandidate(svc *Service, sr *Series, cfg Config, w windows) (*candidate, *Dropped) {
	if w.winHi < w.winLo {
		return nil, nil
	}
	s := shareSeries(sr.Inclusive, svc.Total)
	s2, offsets := deseasonalize(s, w.period, w.winLo)
	cps, err := changepoint.Detect(s2, cfg.ChangePoint)
	if err != nil {
		return nil, &Dropped{Function: sr.Function, Stage: StageSignificance, Reason: err.Error()}
	}
	var in []changepoint.ChangePoint
	prev := 0 // start of the baseline segment
	for _, c := range cps {
		if c.Index < w.winLo {
			prev = c.Index
			continue
		}
		if c.Index <= w.winHi {
			in = append(in, c)
		}
	}
	if len(in) == 0 {
		return nil, nil
	}
	baseHi := in[0].Index
	afterLo := in[len(in)-1].Index
	before := windowEstimate(svc, sr, prev, baseHi, offsets)
	// Merge: the change points in the window are one change from the baseline to the
	// latest level; the segments between them show whether it went away meanwhile.
	segs := make([]estimate, len(in))
	for i, c := range in {
		hi := w.n
		if i+1 < len(in) {
			hi = in[i+1].Index
		}
		segs[i] = windowEstimate(svc, sr, c.Index, hi, offsets)
	}
	after := segs[len(segs)-1]
	net := after.P - before.P
	peak := after
	for _, sg := range segs {
		if math.Abs(sg.P-before.P) > math.Abs(peak.P-before.P) {
			peak = sg
		}
	}
	zAlpha := math.Sqrt2 * math.Erfinv(1-cfg.ChangePoint.Alpha)
	peakDelta := peak.P - before.P
	if peakDelta*net <= 0 || math.Abs(net) < cfg.WentAwayFraction*math.Abs(peakDelta) {
		// Only a significant reversion from the peak counts: short segments make the
		// peak noisy.
		if zr := math.Abs(peak.P-after.P) / math.Hypot(peak.SE, after.SE); zr > zAlpha {
			return nil, &Dropped{Function: sr.Function, Stage: StageWentAway,
				Reason: fmt.Sprintf("net change %+.3g is under %.0f%% of the peak change %+.3g (reversion z=%.1f)", net, 100*cfg.WentAwayFraction, peakDelta, zr)}
		}
	}
	// The change time is the first change point after which the level carries at
	// least WentAwayFraction of the net change.
	change := in[len(in)-1].Index
	for i, sg := range segs {
		if d := sg.P - before.P; d*net > 0 && math.Abs(d) >= cfg.WentAwayFraction*math.Abs(net) {
			change = in[i].Index
			break
		}
	}
	z := net / math.Hypot(before.SE, after.SE)
	p := twoSidedP(z)
	if p >= cfg.ChangePoint.Alpha {
		return nil, &Dropped{Function: sr.Function, Stage: StageSignificance,
			Reason: fmt.Sprintf("persisted change %+.3g not significant (p=%.2g, dispersion %.1f)", net, p, math.Max(before.Dispersion, after.Dispersion))}
	}
	for _, c := range in {
		p = math.Max(p, c.PValue)
	}
	c := &candidate{
		fn: sr.Function, domain: findings.DomainOf(sr.Function), change: change, lo: prev, hi: w.n,
		before: before, after: after, abs: net, p: p,
		filters: []string{findings.FilterSignificance, findings.FilterWentAway},
	}
	if before.P > 0 {
		c.rel = net / before.P
	}
	if offsets != nil {
		c.filters = append(c.filters, findings.FilterSeasonality)
	}
	if len(in) > 1 {
		c.filters = append(c.filters, findings.FilterMerge)
	}
	c.vBefore = dominantVersion(svc, prev, baseHi)
	c.vAfter = dominantVersion(svc, afterLo, w.n)
	return c, nil
}

// versionCandidate is the rollout path: when two versions ran in the same buckets,
// compare their shares bucket by bucket.
func versionCandidate(svc *Service, sr *Series, cfg Config, w windows) (*candidate, *Dropped) {
	if len(sr.VersionInclusive) < 2 {
		return nil, nil
	}
	type ver struct {
		name  string
		first int
	}
	var vs []ver
	for _, v := range sortedKeys(sr.VersionInclusive) {
		tot := svc.VersionTotal[v]
		for i, x := range tot {
			if x > 0 {
				vs = append(vs, ver{v, i})
				break
			}
		}
	}
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].first < vs[j].first })
	var best *candidate
	for k := 1; k < len(vs); k++ {
		a, b := vs[k-1].name, vs[k].name
		ta, tb := svc.VersionTotal[a], svc.VersionTotal[b]
		ia, ib := sr.VersionInclusive[a], sr.VersionInclusive[b]
		var overlap []int
		for t := range w.n {
			if ta[t] > 0 && tb[t] > 0 {
				overlap = append(overlap, t)
			}
		}
		if len(overlap) < cfg.MinOverlapBuckets || overlap[len(overlap)-1] < w.winLo {
			continue
		}
		// A few overlap buckets say little about over-dispersion; the old version's
		// buckets before the rollout say more (and include diurnal swings, which only
		// makes this conservative).
		histDisp := 1.0
		if h := overlap[0]; h >= 10 {
			histDisp = quasiBinomial(ia[:h], ta[:h]).Dispersion
		}
		before, after, diff, z := pairedDiff(ia, ta, ib, tb, overlap, histDisp)
		p := twoSidedP(z)
		if p >= cfg.ChangePoint.Alpha {
			continue // no evidence of a change: not a dropped candidate
		}
		if best != nil && p >= best.p {
			continue
		}
		best = &candidate{
			fn: sr.Function, domain: findings.DomainOf(sr.Function),
			change: overlap[0], lo: overlap[0], hi: overlap[len(overlap)-1] + 1,
			before: before, after: after, abs: diff, p: p, vBefore: a, vAfter: b,
			filters: []string{findings.FilterVersionPair, findings.FilterSignificance},
		}
		// The pooled shares differ slightly from the paired difference; report shares
		// consistent with it.
		best.after.P = before.P + diff
		if before.P > 0 {
			best.rel = diff / before.P
		}
	}
	return best, nil
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
		for {
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
			if used[d] || !near(d, rep, tol) || !g.isAncestor(d.fn, rep.fn) {
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
// was not added.
func costShift(ups, downs []*candidate, g *callGraph, cfg Config, tol int, res *Result) []*candidate {
	var out []*candidate
	for _, c := range ups {
		fell := 0.0
		var from []string
		for _, d := range downs {
			if d.domain == c.domain && near(c, d, tol) && !g.related(c.fn, d.fn) {
				fell += -d.abs
				from = append(from, d.fn)
			}
		}
		if fell > 0 && fell >= cfg.CostShiftFraction*c.abs {
			res.Dropped = append(res.Dropped, Dropped{Function: c.fn, Stage: StageCostShift,
				Reason: fmt.Sprintf("rise %+.3g matched by falls %.3g in %s", c.abs, fell, strings.Join(from, ", "))})
			continue
		}
		c.filters = append(c.filters, findings.FilterCostShift)
		out = append(out, c)
	}
	return out
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
