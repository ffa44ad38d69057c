package detect

import (
	"slices"
	"sort"

	"github.com/fleetprof/fleetprof/analyzer/findings"
)

// preferInclusive folds a self-share rise into the same function's inclusive rise at
// the same time: one change, one finding, which reports the self shares when they
// explain the rise (candidate.finding). A version-paired rise spans its rollout: a
// rise of the other share dated at a later stage of it is the same change.
func preferInclusive(ups []*candidate, tol int) []*candidate {
	out := ups[:0]
outer:
	for _, c := range ups {
		if c.self {
			for _, d := range ups {
				if !d.self && d.fn == c.fn && (near(c, d, tol) || inRollout(c, d, tol) || inRollout(d, c, tol)) {
					if d.selfPart == nil || c.abs > d.selfPart.abs {
						d.selfPart = c
					}
					continue outer
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// inRollout reports whether b is dated within version-paired candidate a's rollout
// (from its first stage to the end of its comparison), give or take tol buckets.
func inRollout(a, b *candidate, tol int) bool {
	return a.overlap != nil && b.change >= a.change-tol && b.change <= a.hi+tol
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
		rep.pass(findings.FilterDedup)
		out = append(out, rep)
	}
	for _, c := range out {
		sort.Strings(c.group)
		c.group = slices.Compact(c.group)
	}
	return out
}
