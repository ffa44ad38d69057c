package model

import (
	"math"
	"sort"
)

// The functions here build the query results from a Profile in Go; they are
// pure so they are tested without an engine.

// location is where frame i of s is defined; "" and 0 when s has no location for it.
func (s StackCount) location(i int) (file string, line int) {
	if i >= len(s.Locations) {
		return "", 0
	}
	file, line, _ = SplitLocation(s.Locations[i])
	return file, line
}

func pct(n, total int64) float64 {
	if total == 0 {
		return 0
	}
	return float64(n) / float64(total) * 100
}

// TopFromProfile ranks functions by self samples (then inclusive, then
// name); limit <= 0 means all. Inclusive counts a function once per stack.
func TopFromProfile(p *Profile, limit int) *Top {
	type acc struct {
		self, incl int64
		file       string
		line       int
	}
	m := map[string]*acc{}
	get := func(f string) *acc {
		a := m[f]
		if a == nil {
			a = &acc{}
			m[f] = a
		}
		return a
	}
	seen := map[string]struct{}{}
	for _, s := range p.Stacks {
		if len(s.Frames) == 0 || s.Value == 0 {
			continue
		}
		clear(seen)
		for i, f := range s.Frames {
			if _, ok := seen[f]; ok {
				continue
			}
			seen[f] = struct{}{}
			a := get(f)
			a.incl += s.Value
			if a.file == "" {
				a.file, a.line = s.location(i)
			}
		}
		get(s.Frames[len(s.Frames)-1]).self += s.Value
	}
	t := &Top{Total: p.Total, Count: len(m), PeriodNS: p.PeriodNS, Functions: make([]FunctionStat, 0, len(m))}
	for f, a := range m {
		t.Functions = append(t.Functions, FunctionStat{Function: f, Self: a.self, Inclusive: a.incl,
			SelfPct: pct(a.self, p.Total), InclusivePct: pct(a.incl, p.Total), File: a.file, Line: a.line})
	}
	sort.Slice(t.Functions, func(i, j int) bool {
		a, b := t.Functions[i], t.Functions[j]
		if a.Self != b.Self {
			return a.Self > b.Self
		}
		if a.Inclusive != b.Inclusive {
			return a.Inclusive > b.Inclusive
		}
		return a.Function < b.Function
	})
	if limit > 0 && len(t.Functions) > limit {
		t.Functions = t.Functions[:limit]
	}
	return t
}

// FlameFromProfile builds the flame graph: root "root" holds the total,
// children are sorted by Total descending, then name.
func FlameFromProfile(p *Profile) *FlameNode {
	root := &FlameNode{Name: "root"}
	idx := map[*FlameNode]map[string]*FlameNode{}
	for _, s := range p.Stacks {
		if s.Value == 0 {
			continue
		}
		root.Total += s.Value
		n := root
		for i, f := range s.Frames {
			kids := idx[n]
			if kids == nil {
				kids = map[string]*FlameNode{}
				idx[n] = kids
			}
			c := kids[f]
			if c == nil {
				c = &FlameNode{Name: f}
				kids[f] = c
				n.Children = append(n.Children, c)
			}
			if c.File == "" {
				c.File, c.Line = s.location(i)
			}
			c.Total += s.Value
			n = c
		}
		n.Self += s.Value
	}
	sortFlame(root)
	return root
}

func sortFlame(n *FlameNode) {
	sort.Slice(n.Children, func(i, j int) bool {
		a, b := n.Children[i], n.Children[j]
		if a.Total != b.Total {
			return a.Total > b.Total
		}
		return a.Name < b.Name
	})
	for _, c := range n.Children {
		sortFlame(c)
	}
}

// DiffProfiles compares two profiles normalized to their own totals: the
// merged call tree and the movers, functions ordered by |Δ inclusive share|
// (movers <= 0 means all).
func DiffProfiles(base, cmp *Profile, movers int) *Diff {
	d := &Diff{BaseTotal: base.Total, CmpTotal: cmp.Total, Root: &DiffNode{Name: "root"}}
	idx := map[*DiffNode]map[string]*DiffNode{}
	walk := func(p *Profile, isBase bool) {
		for _, s := range p.Stacks {
			if s.Value == 0 {
				continue
			}
			n := d.Root
			bump := func(n *DiffNode) {
				if isBase {
					n.Base += s.Value
				} else {
					n.Cmp += s.Value
				}
			}
			bump(n)
			for _, f := range s.Frames {
				kids := idx[n]
				if kids == nil {
					kids = map[string]*DiffNode{}
					idx[n] = kids
				}
				c := kids[f]
				if c == nil {
					c = &DiffNode{Name: f}
					kids[f] = c
					n.Children = append(n.Children, c)
				}
				bump(c)
				n = c
			}
			if isBase {
				n.BaseSelf += s.Value
			} else {
				n.CmpSelf += s.Value
			}
		}
	}
	walk(base, true)
	walk(cmp, false)
	finishDiff(d.Root, base.Total, cmp.Total)

	bt, ct := TopFromProfile(base, 0), TopFromProfile(cmp, 0)
	mv := map[string]*Mover{}
	for _, f := range bt.Functions {
		mv[f.Function] = &Mover{Function: f.Function, BaseSelfPct: f.SelfPct, BaseInclusivePct: f.InclusivePct}
	}
	for _, f := range ct.Functions {
		m := mv[f.Function]
		if m == nil {
			m = &Mover{Function: f.Function}
			mv[f.Function] = m
		}
		m.CmpSelfPct, m.CmpInclusivePct = f.SelfPct, f.InclusivePct
	}
	d.Movers = make([]Mover, 0, len(mv))
	for _, m := range mv {
		m.DeltaInclusivePct = m.CmpInclusivePct - m.BaseInclusivePct
		d.Movers = append(d.Movers, *m)
	}
	sort.Slice(d.Movers, func(i, j int) bool {
		a, b := math.Abs(d.Movers[i].DeltaInclusivePct), math.Abs(d.Movers[j].DeltaInclusivePct)
		if a != b {
			return a > b
		}
		return d.Movers[i].Function < d.Movers[j].Function
	})
	if movers > 0 && len(d.Movers) > movers {
		d.Movers = d.Movers[:movers]
	}
	return d
}

func finishDiff(n *DiffNode, bt, ct int64) {
	n.BasePct, n.CmpPct = pct(n.Base, bt), pct(n.Cmp, ct)
	n.DeltaPct = n.CmpPct - n.BasePct
	sort.Slice(n.Children, func(i, j int) bool {
		a, b := n.Children[i], n.Children[j]
		if a.Base+a.Cmp != b.Base+b.Cmp {
			return a.Base+a.Cmp > b.Base+b.Cmp
		}
		return a.Name < b.Name
	})
	for _, c := range n.Children {
		finishDiff(c, bt, ct)
	}
}
