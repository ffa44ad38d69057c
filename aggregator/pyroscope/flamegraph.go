package pyroscope

import (
	"slices"
	"sort"

	"github.com/fleetprof/fleetprof/model"
)

// fnode is a call tree node with values for one side (a flame graph) or two
// (a diff: left and right).
type fnode struct {
	name     string
	total    [2]int64
	self     [2]int64
	children map[string]*fnode
}

// otherName is the node small subtrees are merged into when max_nodes bounds
// the graph, as Pyroscope names it.
const otherName = "other"

// buildTree merges the profiles' stacks (side i from profs[i], values multiplied
// by scales[i]) into one tree whose root holds the totals.
func buildTree(profs []*model.Profile, scales []int64) *fnode {
	root := &fnode{name: "total"}
	for side, p := range profs {
		if p == nil || side >= len(scales) || side > 1 {
			continue
		}
		sc := scales[side]
		for _, st := range p.Stacks {
			v := st.Value * sc
			if v <= 0 || len(st.Frames) == 0 {
				continue
			}
			n := root
			n.total[side] += v
			for _, f := range st.Frames {
				c := n.children[f]
				if c == nil {
					if n.children == nil {
						n.children = map[string]*fnode{}
					}
					c = &fnode{name: f}
					n.children[f] = c
				}
				c.total[side] += v
				n = c
			}
			n.self[side] += v
		}
	}
	return root
}

func (n *fnode) sorted() []*fnode {
	out := make([]*fnode, 0, len(n.children))
	for _, c := range n.children {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (n *fnode) weight() int64 { return max(n.total[0], n.total[1]) }

// minValue is the smallest weight a node may have to be drawn when at most
// maxNodes are (0: no bound).
func minValue(root *fnode, maxNodes int64) int64 {
	if maxNodes <= 0 {
		return 0
	}
	var ws []int64
	var walk func(*fnode)
	walk = func(n *fnode) {
		ws = append(ws, n.weight())
		for _, c := range n.children {
			walk(c)
		}
	}
	walk(root)
	if int64(len(ws)) <= maxNodes {
		return 0
	}
	slices.Sort(ws)
	slices.Reverse(ws)
	return ws[maxNodes-1]
}

// layout writes the tree as Pyroscope's flame graph levels: per node x offset,
// total and self for each side, then the name index; offsets are delta encoded
// against the end of the previous node of the level, as Grafana reads them.
func layout(root *fnode, sides int, maxNodes int64) (names []string, levels [][]int64, maxSelf int64) {
	minVal := minValue(root, maxNodes)
	index := map[string]int{}
	var walk func(n *fnode, depth int, x [2]int64)
	walk = func(n *fnode, depth int, x [2]int64) {
		i, ok := index[n.name]
		if !ok {
			i = len(names)
			index[n.name] = i
			names = append(names, n.name)
		}
		if depth == len(levels) {
			levels = append(levels, nil)
		}
		for s := range sides {
			levels[depth] = append(levels[depth], x[s], n.total[s], n.self[s])
			maxSelf = max(maxSelf, n.self[s])
			x[s] += n.self[s]
		}
		levels[depth] = append(levels[depth], int64(i))
		var other [2]int64
		for _, c := range n.sorted() {
			if c.weight() < minVal {
				other[0] += c.total[0]
				other[1] += c.total[1]
				continue
			}
			walk(c, depth+1, x)
			x[0] += c.total[0]
			x[1] += c.total[1]
		}
		if other[0] != 0 || other[1] != 0 {
			walk(&fnode{name: otherName, total: other, self: other}, depth+1, x)
		}
	}
	walk(root, 0, [2]int64{})
	stride := 3*sides + 1
	for _, l := range levels {
		for s := range sides {
			prev := int64(0)
			for j := 3 * s; j < len(l); j += stride {
				l[j] -= prev
				prev += l[j] + l[j+1]
			}
		}
	}
	return names, levels, maxSelf
}
