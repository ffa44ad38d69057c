package interp

import (
	"slices"
	"strings"
)

// Frame is one interpreter frame, already named.
type Frame struct {
	Name string // e.g. "module.qualname"
	// Entry marks the oldest frame one native evaluation call runs: the
	// frames from a leaf up to and including the next Entry frame belong
	// to one native call of the interpreter loop.
	Entry bool
	// Location is where the frame's function is defined
	// (samplebatch.Location), "" if unknown.
	Location string
}

// TruncatedFrame stands for interpreter frames the walk did not read
// because it stopped at its depth limit.
const TruncatedFrame = "[truncated]"

// unknownPrefix starts the names the symbolizer gives frames it could not name.
const unknownPrefix = "[unknown]"

// Merge returns native (root first) with the interpreter frames put in
// place of the native evaluation frames, those whose name isEval reports.
// frames are leaf first, as a walk reads them; truncated says the walk
// stopped at its depth limit with older frames left unread.
//
// Matching runs from the leaf, whose frames a walk always has: the n-th
// evaluation frame from the leaf takes the n-th group of frames (a group
// ends at an Entry frame). When the native stack has fewer evaluation frames
// than groups (an unwinder that lost the interpreter's frames, as
// frame-pointer unwinding of a binary without frame pointers does), all
// evaluation and unknown frames go and the interpreter frames take the place
// of the first of them, so the interpreter's order is kept above the native
// frames that were named.
//
// locs is parallel to names: each interpreter frame's Location, "" for the
// native ones; it is nil when no frame has a location.
func Merge(native []string, frames []Frame, truncated bool, isEval func(string) bool) (names, locs []string) {
	if len(frames) == 0 {
		return native, nil
	}
	groups := groupsRootFirst(frames)
	var evals []int
	for i, n := range native {
		if isEval(n) {
			evals = append(evals, i)
		}
	}
	out := merged{names: make([]string, 0, len(native)+len(frames)+1)}
	if slices.ContainsFunc(frames, func(f Frame) bool { return f.Location != "" }) {
		out.locs = make([]string, 0, cap(out.names))
	}
	if len(evals) >= len(groups) {
		// evals[len(evals)-len(groups)+g] takes group g (both root first).
		first := len(evals) - len(groups)
		next := 0
		for i, n := range native {
			if next < len(evals) && evals[next] == i {
				if next >= first {
					if next == first && truncated {
						out.native(TruncatedFrame)
					}
					out.interp(groups[next-first])
				} else {
					out.native(n)
				}
				next++
				continue
			}
			out.native(n)
		}
		return out.names, out.locs
	}
	placed := false
	place := func() {
		if truncated {
			out.native(TruncatedFrame)
		}
		for _, g := range groups {
			out.interp(g)
		}
		placed = true
	}
	for _, n := range native {
		if isEval(n) || strings.HasPrefix(n, unknownPrefix) {
			if !placed {
				place()
			}
			continue
		}
		out.native(n)
	}
	if !placed {
		place()
	}
	return out.names, out.locs
}

// merged is Merge's result; locs is nil when no frame has a location.
type merged struct{ names, locs []string }

func (m *merged) native(name string) {
	m.names = append(m.names, name)
	if m.locs != nil {
		m.locs = append(m.locs, "")
	}
}

func (m *merged) interp(g []Frame) {
	for _, f := range g {
		m.names = append(m.names, f.Name)
		if m.locs != nil {
			m.locs = append(m.locs, f.Location)
		}
	}
}

// groupsRootFirst splits leaf-first frames into the groups of one native
// evaluation call each, and returns the groups and their frames root first.
func groupsRootFirst(frames []Frame) [][]Frame {
	var groups [][]Frame
	var cur []Frame
	for _, f := range frames {
		cur = append(cur, f)
		if f.Entry {
			groups = append(groups, cur)
			cur = nil
		}
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	out := make([][]Frame, len(groups))
	for i, g := range groups {
		rev := make([]Frame, len(g))
		for j, f := range g {
			rev[len(g)-1-j] = f
		}
		out[len(groups)-1-i] = rev
	}
	return out
}
