package pyroscope

import (
	"slices"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

func TestParseSelector(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    []Matcher
		wantErr bool
	}{
		{in: "", want: nil},
		{in: "{}", want: nil},
		{in: `{service_name="api", version=~"v2.*", x!='a"b', y!~` + "`z`" + `}`, want: []Matcher{
			{Name: "service_name", Op: "=", Value: "api"}, {Name: "version", Op: "=~", Value: "v2.*"},
			{Name: "x", Op: "!=", Value: `a"b`}, {Name: "y", Op: "!~", Value: "z"}}},
		{in: `{a="x\"y"}`, want: []Matcher{{Name: "a", Op: "=", Value: `x"y`}}},
		{in: `service_name="api"`, wantErr: true},
		{in: `{a=b}`, wantErr: true},
		{in: `{a=~"("}`, wantErr: true},
		{in: `{a="x" b="y"}`, wantErr: true},
		{in: `{1a="x"}`, wantErr: true},
		{in: `{a="x`, wantErr: true},
	} {
		got, err := ParseSelector(c.in)
		if (err != nil) != c.wantErr {
			t.Errorf("%s: err %v, wantErr %v", c.in, err, c.wantErr)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: got %+v, want %+v", c.in, got, c.want)
			continue
		}
		for i := range got {
			if got[i].Name != c.want[i].Name || got[i].Op != c.want[i].Op || got[i].Value != c.want[i].Value {
				t.Errorf("%s: matcher %d = %+v, want %+v", c.in, i, got[i], c.want[i])
			}
		}
	}
	ms, _ := ParseSelector(`{v=~"v2.*"}`)
	if !ms[0].Matches("v2.1") || ms[0].Matches("xv2") {
		t.Error("regexp matcher must be anchored")
	}
}

func TestParseAppName(t *testing.T) {
	ls, kind, err := ParseAppName("shop.cpu{__session_id__=1,version=v2,pod=p-1,region=eu}")
	if err != nil || kind != "cpu" || ls.Service != "shop" || ls.Version != "v2" || ls.Pod != "p-1" || len(ls.Extra) != 1 || ls.Extra[0].Key != "region" {
		t.Fatalf("got %+v %q %v", ls, kind, err)
	}
	for _, bad := range []string{"{a=b}", "app{a}", "app{a=b", "app{pid=x}"} {
		if _, _, err := ParseAppName(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

// TestLayout checks the flame graph encoding Grafana decodes: [x delta, total,
// self, name] per node, x relative to the end of the previous node of the level.
func TestLayout(t *testing.T) {
	p := &model.Profile{Stacks: []model.StackCount{
		{Frames: []string{"main", "a"}, Value: 3},
		{Frames: []string{"main", "b"}, Value: 2},
		{Frames: []string{"main"}, Value: 1},
	}}
	root := buildTree([]*model.Profile{p}, []int64{10})
	names, levels, maxSelf := layout(root, 1, 0)
	if !slices.Equal(names, []string{"total", "main", "a", "b"}) || maxSelf != 30 {
		t.Fatalf("names %v maxSelf %d", names, maxSelf)
	}
	want := [][]int64{{0, 60, 0, 0}, {0, 60, 10, 1}, {10, 30, 30, 2, 0, 20, 20, 3}}
	for i := range want {
		if !slices.Equal(levels[i], want[i]) {
			t.Errorf("level %d = %v, want %v", i, levels[i], want[i])
		}
	}
	// max_nodes 3 keeps total, main and a; b goes to "other".
	names, _, _ = layout(root, 1, 3)
	if !slices.Contains(names, otherName) || slices.Contains(names, "b") {
		t.Errorf("max_nodes 3: names %v", names)
	}
}

func TestFromText(t *testing.T) {
	at := time.Unix(1_700_000_030, 0)
	s, err := fromText([]byte("a;b 3\na;b 2\na 1\n"), false, labelsFor("x"), at, 10_000_000)
	if err != nil || len(s) != 2 || s[0].Value != 5 || s[0].TS != 1_700_000_000-1_700_000_000%60 {
		t.Fatalf("%+v %v", s, err)
	}
	s, err = fromText([]byte("a;b\na;b\n"), true, labelsFor("x"), at, 10_000_000)
	if err != nil || len(s) != 1 || s[0].Value != 2 {
		t.Fatalf("lines: %+v %v", s, err)
	}
}

func FuzzParseSelector(f *testing.F) {
	f.Add(`{service_name="api", version=~"v2.*"}`)
	f.Add(`{a!~'x|y', b!="\u00e9"}`)
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseSelector(s)
		if err == nil {
			for _, m := range ms {
				_ = m.Matches("v")
			}
		}
	})
}

func FuzzFromText(f *testing.F) {
	f.Add([]byte("a;b;c 12\nd 1\n"), false)
	f.Add([]byte("a;b\n"), true)
	f.Fuzz(func(t *testing.T, body []byte, lines bool) {
		s, err := fromText(body, lines, labelsFor("x"), time.Unix(1_700_000_000, 0), 10_000_000)
		if err == nil && len(s) == 0 {
			t.Fatal("no error and no samples")
		}
	})
}

func labelsFor(svc string) samplebatch.Labels { return samplebatch.Labels{Service: svc} }

// TestProfileTypeIDs: stored types map to the ids Pyroscope gives Go's
// profiles (or the generic form), and each id reads back to its stored type.
func TestProfileTypeIDs(t *testing.T) {
	for _, c := range []struct{ stored, id string }{
		{"cpu", "process_cpu:cpu:nanoseconds:cpu:nanoseconds"},
		{"alloc_space/bytes", "memory:alloc_space:bytes:space:bytes"},
		{"alloc_objects/count", "memory:alloc_objects:count:space:bytes"},
		{"inuse_space/bytes", "memory:inuse_space:bytes:space:bytes"},
		{"inuse_objects/count", "memory:inuse_objects:count:space:bytes"},
		{"goroutine/count", "goroutines:goroutine:count:goroutine:count"},
		{"contentions/count", "contentions:contentions:count:contentions:count"},
		{"delay/nanoseconds", "delay:delay:nanoseconds:delay:nanoseconds"},
	} {
		if got := pyroscopeTypes(c.stored)[0].GetID(); got != c.id {
			t.Errorf("%s: id %s, want %s", c.stored, got, c.id)
		}
		if pt, err := parseProfileType(c.id); err != nil || pt.stored != c.stored {
			t.Errorf("%s: parsed %+v, %v; want %s", c.id, pt, err, c.stored)
		}
	}
	for _, bad := range []string{"", "process_cpu", "memory:alloc_space:bytes:cpu:nanoseconds", "x:cpu:nanoseconds:cpu:nanoseconds", "memory:Alloc:bytes:space:bytes"} {
		if pt, err := parseProfileType(bad); err == nil {
			t.Errorf("%q: parsed as %+v, want an error", bad, pt)
		}
	}
}
