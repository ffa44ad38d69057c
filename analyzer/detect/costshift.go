package detect

import (
	"fmt"
	"math"
	"strings"

	"github.com/fleetprof/fleetprof/analyzer/findings"
)

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
		dilSum := dil
		dil = math.Min(math.Max(dil, dilAt[c.change]), 1)
		// Moved cost balances: falls far larger than the rise are another event
		// (a bigger change elsewhere), not where this rise came from.
		// The rise as its own test estimated it and as measured in the same windows
		// as the falls: a moved cost balances either (the version-paired estimate
		// also carries the two host halves' difference).
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
		// removed from a hot path; Tuning.ShrinkFactor) is another change, not the
		// source; a moved-from function may lose a little more than the moved code
		// to an unrelated change of its callees in the same release.
		hasSelf, shrank := map[string]bool{}, map[string]bool{}
		for i := range svc.Series {
			sr := &svc.Series[i]
			hasSelf[sr.Function] = sr.Self != nil
			if sr.Function != c.fn && findings.DomainOf(sr.Function) == c.domain {
				// Beyond dilution: a big rise elsewhere in the release dilutes a
				// large inclusive share by far more than a small moved cost.
				shrank[sr.Function] = windowFall(svc, sr.Inclusive, c.change, w, dil) > cfg.Tuning.ShrinkFactor*rise
			}
		}
		for _, d := range downs {
			if w.seasonal[d.fn] {
				continue
			}
			// A version-paired fall is the full difference between the versions,
			// which a fleet-wide rise during a partial stage shows only in part.
			if d.overlap != nil && c.overlap == nil {
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
			// A seasonal function's daily fall (the fall of the day's wave can
			// balance a regression) is not moved cost.
			if ch > 0 && !shrank[d] && !w.seasonal[d] {
				note(d, beyondDilution(svc, xs, c.change, w, dil, ch))
			}
		}
		shift, fell, from := balancing(falls, rivals, rise, riseLo, cfg.CostShiftFraction)
		how := "beyond dilution"
		if !shift && c.overlap != nil {
			// Like with like: a version-paired rise against the paired falls.
			pf, pr := pairedChanges(svc, c, g, cfg, w, math.Min(math.Max(dilSum, pairedDilution(svc, c, w)), 1))
			if shift, fell, from = balancing(pf, pr, c.abs, c.abs, cfg.CostShiftFraction); shift {
				how = "beyond dilution between the host groups of " + c.vBefore + " and " + c.vAfter
			}
		}
		if shift {
			res.Dropped = append(res.Dropped, Dropped{Function: c.fn, Stage: StageCostShift,
				Reason: fmt.Sprintf("rise %+.3g matched by falls %.3g %s in %s", c.abs, fell, how, strings.Join(from, ", "))})
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
		c.pass(findings.FilterCostShift)
		kept = append(kept, c)
	}
	return kept
}

// balancing reports whether falls (per moved-from function, beyond dilution) balance
// a rise estimated as rise and riseLo (its own test's and a second measure), with the
// falls counted and their functions. A fall explains the rise it balances best: when
// a rival (another function of the domain) rose at the same time by an amount closer
// to it (the target of a cost shift or the new name of a renamed function, in the
// same release), the fall is the rival's source, not this rise's. All falls together,
// or one function alone (its fall balances the rise while an unrelated change at the
// same time makes the sum too large), must be within frac (Config.CostShiftFraction)
// of the rise.
func balancing(falls, rivals map[string]float64, rise, riseLo, frac float64) (bool, float64, []string) {
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
		return f > 0 && f >= frac*riseLo && (frac == 0 || f <= rise/frac)
	}
	if balances(fell) {
		return true, fell, from
	}
	for _, name := range from {
		if balances(falls[name]) {
			return true, falls[name], []string{name}
		}
	}
	return false, fell, from
}

// pairedChanges measures the other functions of a version-paired rise c's domain as
// c was measured: per host group over c's overlap buckets, new version against old
// (groupTest), the self share (or, where self is unknown, the inclusive share of a
// function unrelated to c). A staged rollout shows a moved cost in full only there: a
// 10% stage moves fleet-wide shares by a tenth of it. Changes within
// Tuning.PairedChangeSEs standard errors are none. Falls beyond the dilution dil are
// sources, except from functions that shrank as a whole (Tuning.ShrinkFactor) or have
// a daily wave of their own; rises are rivals (balancing).
func pairedChanges(svc *Service, c *candidate, g *callGraph, cfg Config, w windows, dil float64) (falls, rivals map[string]float64) {
	cells := sortedCells(svc.CellTotal)
	change := func(counts map[Cell][]float64) (before, diff float64) {
		ia, ta := poolCells(svc, counts, cells, c.vBefore, c.overlap)
		ib, tb := poolCells(svc, counts, cells, c.vAfter, c.overlap)
		ea, _, d, z := groupTest(ia, ta, ib, tb)
		if !(math.Abs(z) >= cfg.Tuning.PairedChangeSEs) {
			return ea.P, 0
		}
		return ea.P, d
	}
	falls, rivals = map[string]float64{}, map[string]float64{}
	for i := range svc.Series {
		sr := &svc.Series[i]
		d := sr.Function
		if d == c.fn || findings.DomainOf(d) != c.domain || len(sr.CellInclusive) == 0 {
			continue
		}
		xs := sr.CellSelf
		if xs == nil {
			if g.related(d, c.fn) {
				continue
			}
			xs = sr.CellInclusive
		}
		p, ch := change(xs)
		switch {
		case ch > 0:
			rivals[d] = ch
		case ch < 0 && !w.seasonal[d]:
			if pi, inc := change(sr.CellInclusive); -inc-pi*dil > cfg.Tuning.ShrinkFactor*c.abs {
				continue
			}
			if f := -ch - p*dil; f > 0 {
				falls[d] = f
			}
		}
	}
	return falls, rivals
}

// pairedDilution is the typical relative fall of inclusive shares between a
// version-paired candidate's versions over its overlap buckets (as dilutionAt over
// time), over functions with Tuning.DilutionMinShare..DilutionMaxShare of the service.
func pairedDilution(svc *Service, c *candidate, w windows) float64 {
	pooled := func(xs []float64, v string) float64 {
		var si, st float64
		for _, t := range c.overlap {
			si += xs[t]
			st += svc.VersionTotal[v][t]
		}
		return si / math.Max(1, st)
	}
	var rels []float64
	for i := range svc.Series {
		sr := &svc.Series[i]
		a, b := sr.VersionInclusive[c.vBefore], sr.VersionInclusive[c.vAfter]
		if a == nil || b == nil {
			continue
		}
		if pa := pooled(a, c.vBefore); pa >= w.tun.DilutionMinShare && pa < w.tun.DilutionMaxShare {
			rels = append(rels, pooled(b, c.vAfter)/pa-1)
		}
	}
	if len(rels) < w.tun.MinDilutionSeries {
		return 0
	}
	return math.Max(0, -median(rels))
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
		if b >= w.tun.DilutionMinShare && b < w.tun.DilutionMaxShare {
			rels = append(rels, a/b-1)
		}
	}
	if len(rels) < w.tun.MinDilutionSeries {
		return 0
	}
	return math.Max(0, -median(rels))
}

// aroundChange returns the windows before and after a change at bucket t: up to six
// extended windows each, the after one starting two extended windows later so a
// rollout has completed.
func aroundChange(t int, w windows) (blo, bhi, alo, ahi int) {
	span := w.tun.AroundSpan * max(w.ext, 1)
	blo, bhi = max(0, t-span), t
	alo = min(w.n, t+w.tun.AroundSettle*w.ext)
	ahi = min(w.n, alo+span)

	if ahi-alo < 2 {
		alo, ahi = t, w.n
	}
	return blo, bhi, alo, ahi
}

// windowChange is the change of a count series' share (before − after, so a fall
// is positive) between the windows around bucket t (aroundChange); 0 when it is
// within 3 standard errors.
func windowChange(svc *Service, xs []float64, t int, w windows) float64 {
	blo, bhi, alo, ahi := aroundChange(t, w)
	if bhi-blo < 2 || ahi-alo < 2 {
		return 0
	}
	before := trimmedEstimate(xs[blo:bhi], svc.Total[blo:bhi], w.tun)
	after := trimmedEstimate(xs[alo:ahi], svc.Total[alo:ahi], w.tun)
	d := before.P - after.P
	if math.Abs(d) < w.tun.WindowChangeSEs*math.Hypot(before.SE, after.SE) {
		return 0
	}
	return d
}

// trimmedEstimate is quasiBinomial over the buckets whose share is within five
// robust standard deviations (1.4826 × MAD) of the median share: the windows around
// a change are hours long, and a spike of the function in one of them (a transient
// of its own) must not hide or fake the cost it gained or lost.
func trimmedEstimate(inc, tot []float64, tun Tuning) estimate {
	var shares []float64
	for i := range inc {
		if tot[i] > 0 {
			shares = append(shares, inc[i]/tot[i])
		}
	}
	if len(shares) < tun.MinTrimBuckets {
		return quasiBinomial(inc, tot)
	}
	m := median(shares)
	dev := make([]float64, len(shares))
	for i, x := range shares {
		dev[i] = math.Abs(x - m)
	}
	lim := tun.TrimRobustSDs * 1.4826 * median(dev)
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
