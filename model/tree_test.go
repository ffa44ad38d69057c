package model

import "testing"

// TestLocations: flame nodes and top rows carry the file and first line of a
// frame whose stack has a location, from any stack through that node.
func TestLocations(t *testing.T) {
	p := &Profile{Total: 5, Stacks: []StackCount{
		{Frames: []string{"main", "app.outer"}, Value: 1},
		{Frames: []string{"main", "app.outer", "app.inner"}, Locations: []string{"", "/srv/app.py:10", "/srv/app.py:14"}, Value: 3},
		{Frames: []string{"main", "gc"}, Locations: []string{"", "bad"}, Value: 1},
	}}
	type loc struct {
		file string
		line int
	}
	want := map[string]loc{"main": {}, "app.outer": {"/srv/app.py", 10}, "app.inner": {"/srv/app.py", 14}, "gc": {}}
	got := map[string]loc{}
	var walk func(n *FlameNode)
	walk = func(n *FlameNode) {
		for _, c := range n.Children {
			got[c.Name] = loc{c.File, c.Line}
			walk(c)
		}
	}
	walk(FlameFromProfile(p))
	for _, f := range TopFromProfile(p, 0).Functions {
		if l := (loc{f.File, f.Line}); l != want[f.Function] {
			t.Errorf("top %s: %+v, want %+v", f.Function, l, want[f.Function])
		}
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("flame %s: %+v, want %+v", name, got[name], w)
		}
	}
}
