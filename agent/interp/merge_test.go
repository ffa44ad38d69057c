package interp

import (
	"slices"
	"strings"
	"testing"
)

func TestMerge(t *testing.T) {
	isEval := func(s string) bool { return s == "eval" }
	// Leaf first, as a walk reads them: inner and middle run in the leaf
	// eval call (middle is its entry), outer in the one below.
	chain := []Frame{{Name: "m.inner"}, {Name: "m.middle", Entry: true}, {Name: "m.outer", Entry: true}}
	tests := []struct {
		name      string
		native    string
		frames    []Frame
		truncated bool
		want      string
	}{
		{"no interpreter frames", "main;eval;f", nil, false, "main;eval;f"},
		{"each eval takes its group", "main;eval;call;eval;zlib", chain, false, "main;m.outer;call;m.middle;m.inner;zlib"},
		{"one frame per eval (3.10)", "main;eval;eval", []Frame{{Name: "b", Entry: true}, {Name: "a", Entry: true}}, false, "main;a;b"},
		{"extra root-side eval kept", "main;eval;eval;eval", []Frame{{Name: "b", Entry: true}, {Name: "a", Entry: true}}, false, "main;eval;a;b"},
		{"lost eval frames: in place of unknown", "[unknown];[unknown];eval;zlib", chain, false, "m.outer;m.middle;m.inner;zlib"},
		{"no eval, no unknown: appended", "main;Py_BytesMain", chain, false, "main;Py_BytesMain;m.outer;m.middle;m.inner"},
		{"truncated marker root side", "main;eval", []Frame{{Name: "r"}, {Name: "r"}}, true, "main;[truncated];r;r"},
		{"truncated in fallback", "[unknown];zlib", []Frame{{Name: "r"}}, true, "[truncated];r;zlib"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			names, locs := Merge(strings.Split(tc.native, ";"), tc.frames, tc.truncated, isEval)
			if got := strings.Join(names, ";"); got != tc.want {
				t.Fatalf("Merge = %s, want %s", got, tc.want)
			}
			if locs != nil {
				t.Fatalf("locations %q for frames without any", locs)
			}
		})
	}
}

func TestMergeLocations(t *testing.T) {
	isEval := func(s string) bool { return s == "eval" }
	chain := []Frame{{Name: "m.inner", Location: "m.py:9"}, {Name: "m.middle", Location: "m.py:5", Entry: true}, {Name: "m.outer", Entry: true}}
	for _, tc := range []struct{ name, native, want string }{
		{"each eval takes its group", "main;eval;call;eval;zlib", ",,,m.py:5,m.py:9,"},
		{"fallback", "[unknown];eval;zlib", ",m.py:5,m.py:9,"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names, locs := Merge(strings.Split(tc.native, ";"), chain, false, isEval)
			if len(locs) != len(names) || strings.Join(locs, ",") != tc.want {
				t.Fatalf("Merge = %q, locations %q, want %s", names, locs, tc.want)
			}
		})
	}
}

func TestGroupsRootFirst(t *testing.T) {
	groups := groupsRootFirst([]Frame{{Name: "a"}, {Name: "b", Entry: true}, {Name: "c"}})
	var got [][]string
	for _, g := range groups {
		var names []string
		for _, f := range g {
			names = append(names, f.Name)
		}
		got = append(got, names)
	}
	want := [][]string{{"c"}, {"b", "a"}}
	if !slices.EqualFunc(got, want, slices.Equal[[]string]) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
