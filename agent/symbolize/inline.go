package symbolize

import (
	"cmp"
	"debug/dwarf"
	"debug/elf"
	"fmt"
	"slices"

	"github.com/ianlancetaylor/demangle"
)

// inlineFunc is one PC range of a concrete (out-of-line) function together
// with every call inlined into it.
type inlineFunc struct {
	lo, hi uint64
	calls  []inlineCall // shared by all ranges of one function, DIE pre-order
}

// inlineCall is one range of one DW_TAG_inlined_subroutine.
type inlineCall struct {
	lo, hi uint64
	name   string
}

// inlines appends the names of the calls inlined at addr, outermost first.
func (o *object) inlines(dst []string, addr uint64) []string {
	i, found := slices.BinarySearchFunc(o.inl, addr, func(f inlineFunc, a uint64) int { return cmp.Compare(f.lo, a) })
	if !found {
		i--
	}
	if i < 0 || addr >= o.inl[i].hi {
		return dst
	}
	// Pre-order lists a caller's range before the ranges nested in it, so
	// the matches come out outermost first.
	for _, c := range o.inl[i].calls {
		if addr >= c.lo && addr < c.hi {
			dst = append(dst, c.name)
		}
	}
	return dst
}

// parseInlines reads DW_TAG_inlined_subroutine entries of every concrete
// function in f's DWARF.
func parseInlines(f *elf.File) ([]inlineFunc, error) {
	d, err := f.DWARF()
	if err != nil {
		return nil, fmt.Errorf("load dwarf: %w", err)
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
	)
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			return nil, fmt.Errorf("read dwarf entry: %w", err)
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
	var out []inlineFunc
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
		if len(calls) == 0 {
			continue
		}
		for _, rg := range g.ranges {
			if rg[1] > rg[0] {
				out = append(out, inlineFunc{lo: rg[0], hi: rg[1], calls: calls})
			}
		}
	}
	slices.SortFunc(out, func(a, b inlineFunc) int { return cmp.Compare(a.lo, b.lo) })
	return slices.Clip(out), nil
}
