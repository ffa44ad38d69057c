package interp

import "strings"

// Frame is one interpreter frame, already named.
type Frame struct {
	Name string // e.g. "module.qualname"
	// Entry marks the oldest frame one native evaluation call runs: the
	// frames from a leaf up to and including the next Entry frame belong
	// to one native call of the interpreter loop.
	Entry bool
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
func Merge(native []string, frames []Frame, truncated bool, isEval func(string) bool) []string {
	if len(frames) == 0 {
		return native
	}
	groups := groupsRootFirst(frames)
	var evals []int
	for i, n := range native {
		if isEval(n) {
			evals = append(evals, i)
		}
	}
	out := make([]string, 0, len(native)+len(frames)+1)
	if len(evals) >= len(groups) {
		// evals[len(evals)-len(groups)+g] takes group g (both root first).
		first := len(evals) - len(groups)
		next := 0
		for i, n := range native {
			if next < len(evals) && evals[next] == i {
				if next >= first {
					if next == first && truncated {
						out = append(out, TruncatedFrame)
					}
					out = append(out, groups[next-first]...)
				} else {
					out = append(out, n)
				}
				next++
				continue
			}
			out = append(out, n)
		}
		return out
	}
	placed := false
	place := func() {
		if truncated {
			out = append(out, TruncatedFrame)
		}
		for _, g := range groups {
			out = append(out, g...)
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
		out = append(out, n)
	}
	if !placed {
		place()
	}
	return out
}

// groupsRootFirst splits leaf-first frames into evaluation groups and
// returns them root first, each group's names root first.
func groupsRootFirst(frames []Frame) [][]string {
	var groups [][]string
	var cur []string
	for _, f := range frames {
		cur = append(cur, f.Name)
		if f.Entry {
			groups = append(groups, cur)
			cur = nil
		}
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	out := make([][]string, len(groups))
	for i, g := range groups {
		rev := make([]string, len(g))
		for j, n := range g {
			rev[len(g)-1-j] = n
		}
		out[len(groups)-1-i] = rev
	}
	return out
}
