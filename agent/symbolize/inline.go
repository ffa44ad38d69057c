package symbolize

import (
	"cmp"
	"debug/dwarf"
	"debug/elf"
	"fmt"
	"slices"

	"github.com/ianlancetaylor/demangle"
)

// inlineRun is a PC range with one inline context: the calls inlined at
// every address in it, outermost first. An object's runs are sorted and
// disjoint, so a lookup is one binary search.
type inlineRun struct {
	lo, hi uint64
	chain  []string
}

// inlineTable is an object's inline runs in compact form, 16 bytes a run:
// a big Go binary has hundreds of thousands of runs but only thousands of
// distinct chains.
type inlineTable struct {
	runs   []inlineRange // sorted by lo, disjoint
	chains [][]string
}

type inlineRange struct {
	lo    uint64
	n     uint32 // hi - lo
	chain uint32 // index into chains
}

// inlines appends the names of the calls inlined at addr, outermost first.
func (o *object) inlines(dst []string, addr uint64) []string {
	runs := o.inl.runs
	i, found := slices.BinarySearchFunc(runs, addr, func(r inlineRange, a uint64) int { return cmp.Compare(r.lo, a) })
	if !found {
		i--
	}
	if i < 0 || addr-runs[i].lo >= uint64(runs[i].n) {
		return dst
	}
	return append(dst, o.inl.chains[runs[i].chain]...)
}

// chainInterner numbers distinct inline chains.
type chainInterner struct {
	index  map[string]uint32
	chains [][]string
	key    []byte // reused: a lookup allocates nothing
}

// intern returns the index of chain (which the caller may reuse).
func (ci *chainInterner) intern(chain []string) uint32 {
	ci.key = ci.key[:0]
	for _, n := range chain {
		ci.key = append(ci.key, n...)
		ci.key = append(ci.key, 0)
	}
	if i, ok := ci.index[string(ci.key)]; ok {
		return i
	}
	if ci.index == nil {
		ci.index = map[string]uint32{}
	}
	i := uint32(len(ci.chains))
	ci.chains = append(ci.chains, slices.Clone(chain))
	ci.index[string(ci.key)] = i
	return i
}

// add appends the run [lo, hi) with chain to t, merging it into the last
// run when they touch and share the chain.
func (ci *chainInterner) add(t *inlineTable, lo, hi uint64, chain []string) {
	if hi <= lo || hi-lo > 1<<32-1 {
		return
	}
	c := ci.intern(chain)
	if n := len(t.runs); n > 0 && t.runs[n-1].chain == c && t.runs[n-1].lo+uint64(t.runs[n-1].n) == lo {
		t.runs[n-1].n += uint32(hi - lo)
		return
	}
	t.runs = append(t.runs, inlineRange{lo: lo, n: uint32(hi - lo), chain: c})
}

// finish sorts t's runs and trims slack.
func (ci *chainInterner) finish(t *inlineTable) {
	slices.SortStableFunc(t.runs, func(a, b inlineRange) int { return cmp.Compare(a.lo, b.lo) })
	t.runs = slices.Clone(t.runs)
	t.chains = ci.chains
}

// compactInlines turns wide runs (sorted, disjoint) into a table.
func compactInlines(runs []inlineRun) inlineTable {
	var t inlineTable
	var ci chainInterner
	for _, r := range runs {
		ci.add(&t, r.lo, r.hi, r.chain)
	}
	ci.finish(&t)
	return t
}

// flattenCalls turns nested call ranges of one function, in DIE pre-order
// (a caller before the calls nested in it), into disjoint runs.
func flattenCalls(dst []inlineRun, calls []inlineCall) []inlineRun {
	points := make([]uint64, 0, 2*len(calls))
	for _, c := range calls {
		points = append(points, c.lo, c.hi)
	}
	slices.Sort(points)
	points = slices.Compact(points)
	var prev []string
	for i := 0; i+1 < len(points); i++ {
		lo, hi := points[i], points[i+1]
		var chain []string
		for _, c := range calls {
			if lo >= c.lo && lo < c.hi {
				chain = append(chain, c.name)
			}
		}
		if len(chain) == 0 {
			prev = nil
			continue
		}
		if n := len(dst); n > 0 && dst[n-1].hi == lo && slices.Equal(prev, chain) {
			dst[n-1].hi = hi
			continue
		}
		dst = append(dst, inlineRun{lo: lo, hi: hi, chain: chain})
		prev = chain
	}
	return dst
}

// inlineCall is one range of one DW_TAG_inlined_subroutine.
type inlineCall struct {
	lo, hi uint64
	name   string
}

// tagGNUCallSite is DW_TAG_GNU_call_site, GCC's pre-DWARF 5 call site.
const tagGNUCallSite dwarf.Tag = 0x4109

// parseInlines reads DW_TAG_inlined_subroutine entries of every concrete
// function in f's DWARF.
func parseInlines(f *elf.File) (inlineTable, error) {
	d, err := f.DWARF()
	if err != nil {
		return inlineTable{}, fmt.Errorf("load dwarf: %w", err)
	}
	type call struct {
		lo, hi uint64
		origin dwarf.Offset
	}
	type group struct {
		ranges [][2]uint64
		calls  []call
	}
	var (
		names  = map[dwarf.Offset]string{}       // subprogram name by DIE offset
		refs   = map[dwarf.Offset]dwarf.Offset{} // unnamed DIE -> DIE it specifies
		groups []*group
		cur    *group
		// stack has one entry per open DIE with children: whether it is a
		// concrete function that started a group.
		stack []bool
		isC   bool // current unit is C: its types hold no functions
	)
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			return inlineTable{}, fmt.Errorf("read dwarf entry: %w", err)
		}
		if e == nil {
			break
		}
		if e.Tag == 0 {
			if n := len(stack); n > 0 {
				if stack[n-1] {
					cur = nil
				}
				stack = stack[:n-1]
			}
			continue
		}
		startsGroup := false
		switch e.Tag {
		case dwarf.TagCompileUnit, dwarf.TagPartialUnit:
			lang, _ := e.Val(dwarf.AttrLanguage).(int64)
			isC = lang == 0x1 || lang == 0x2 || lang == 0xc || lang == 0x1d || lang == 0x2c
		case dwarf.TagStructType, dwarf.TagUnionType, dwarf.TagClassType:
			// C types hold no functions; C++ ones declare methods whose
			// linkage names concrete functions refer to.
			if isC && e.Children {
				r.SkipChildren()
				continue
			}
		case dwarf.TagEnumerationType, dwarf.TagSubroutineType, dwarf.TagArrayType,
			dwarf.TagFormalParameter, dwarf.TagVariable, dwarf.TagCallSite, tagGNUCallSite:
			// Nothing below these names a function or an inlined call;
			// call sites are numerous in optimized code.
			if e.Children {
				r.SkipChildren()
				continue
			}
		case dwarf.TagSubprogram:
			if n, ok := e.Val(dwarf.AttrLinkageName).(string); ok && n != "" {
				names[e.Offset] = demangle.Filter(n)
			} else if n, ok := e.Val(dwarf.AttrName).(string); ok && n != "" {
				names[e.Offset] = n
			} else if o, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset); ok {
				refs[e.Offset] = o
			} else if o, ok := e.Val(dwarf.AttrSpecification).(dwarf.Offset); ok {
				refs[e.Offset] = o
			}
			if cur == nil && e.Children {
				rs, err := d.Ranges(e)
				if err == nil && len(rs) > 0 {
					cur = &group{ranges: rs}
					groups = append(groups, cur)
					startsGroup = true
				}
			}
		case dwarf.TagInlinedSubroutine:
			o, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset)
			if ok && cur != nil {
				rs, err := d.Ranges(e)
				if err == nil {
					for _, rg := range rs {
						cur.calls = append(cur.calls, call{lo: rg[0], hi: rg[1], origin: o})
					}
				}
			}
		}
		if e.Children {
			stack = append(stack, startsGroup)
		}
	}
	resolve := func(o dwarf.Offset) (string, bool) {
		for range 8 {
			if n, ok := names[o]; ok {
				return n, true
			}
			next, ok := refs[o]
			if !ok {
				return "", false
			}
			o = next
		}
		return "", false
	}
	var out []inlineRun
	for _, g := range groups {
		if len(g.calls) == 0 {
			continue
		}
		calls := make([]inlineCall, 0, len(g.calls))
		for _, c := range g.calls {
			if n, ok := resolve(c.origin); ok && c.hi > c.lo {
				calls = append(calls, inlineCall{lo: c.lo, hi: c.hi, name: n})
			}
		}
		out = flattenCalls(out, calls)
	}
	slices.SortFunc(out, func(a, b inlineRun) int { return cmp.Compare(a.lo, b.lo) })
	return compactInlines(out), nil
}
