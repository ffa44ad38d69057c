package findings

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestDomainOf(t *testing.T) {
	tests := []struct{ in, want string }{
		{"net/http.(*conn).serve", "net/http"},
		{"net/http.(*conn)", "net/http"},
		{"encoding/json.Marshal", "encoding/json"},
		{"main.main", "main"},
		{"runtime.mallocgc", "runtime"},
		{"github.com/a/b.T.Method.func1", "github.com/a/b"},
		{"memcpy", "memcpy"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := DomainOf(tt.in); got != tt.want {
			t.Errorf("DomainOf(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	ct := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	f := Finding{
		Kind: KindRegression, Service: "api", Function: "encoding/json.Marshal",
		Before: Share{Value: 0.01, Lo: 0.009, Hi: 0.011}, After: Share{Value: 0.0105, Lo: 0.0101, Hi: 0.0109},
		AbsoluteChange: 0.0005, RelativeChange: 0.05, ChangeTime: ct, PValue: 1e-6,
		FiltersPassed: []string{FilterSignificance},
	}
	f.ID = ComputeID(&f)
	var buf bytes.Buffer
	if err := Encode(&buf, ct, []Finding{f}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"schema": "fleetprof.findings/v1"`) {
		t.Fatalf("schema missing:\n%s", buf.String())
	}
	got, err := Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Findings) != 1 || got.Findings[0].ID != f.ID || !got.Findings[0].ChangeTime.Equal(ct) {
		t.Fatalf("round trip: got %+v", got.Findings)
	}
	// The id ignores measured values.
	g := f
	g.After.Value = 0.02
	if ComputeID(&g) != f.ID {
		t.Error("id depends on measured values")
	}
	g.Function = "other"
	if ComputeID(&g) == f.ID {
		t.Error("id ignores function")
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"other schema", `{"schema":"fleetprof.findings/v2","findings":[]}`, "unsupported"},
		{"not findings", `{"schema":"x","findings":[]}`, "not a findings document"},
		{"bad kind", `{"schema":"fleetprof.findings/v1","findings":[{"kind":"x","id":"1","service":"s","function":"f"}]}`, "finding 0: kind"},
		{"no id", `{"schema":"fleetprof.findings/v1","findings":[{"kind":"regression","service":"s","function":"f"}]}`, "empty id"},
		{"opportunity part", `{"schema":"fleetprof.findings/v1","findings":[{"kind":"opportunity","id":"1","service":"s","function":"f"}]}`, "without opportunity"},
		{"gradual part", `{"schema":"fleetprof.findings/v1","findings":[{"kind":"gradual","id":"1","service":"s","function":"f"}]}`, "gradual part"},
		{"gradual part on a step", `{"schema":"fleetprof.findings/v1","findings":[{"kind":"regression","id":"1","service":"s","function":"f","gradual":{"start":"2026-01-01T00:00:00Z","end":"2026-01-02T00:00:00Z"}}]}`, "gradual part"},
		{"ramp ends before it starts", `{"schema":"fleetprof.findings/v1","findings":[{"kind":"gradual","id":"1","service":"s","function":"f","gradual":{"start":"2026-01-02T00:00:00Z","end":"2026-01-01T00:00:00Z"}}]}`, "want end after start"},
		{"garbage", `{`, "decode findings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want containing %q", err, tt.want)
			}
		})
	}
}

// first_seen/last_seen are optional (added in v1): absent when unset, RFC 3339 when set,
// and not part of the id.
func TestSeenTimes(t *testing.T) {
	seen := time.Date(2026, 11, 25, 12, 10, 0, 0, time.UTC)
	base := Finding{Kind: KindRegression, Service: "api", Function: "f", ChangeTime: seen.Add(-time.Hour)}
	base.ID = ComputeID(&base)
	withSeen := base
	withSeen.FirstSeen, withSeen.LastSeen = seen, seen.Add(10*time.Minute)
	tests := []struct {
		name     string
		f        Finding
		want     []string
		dontWant []string
	}{
		{"unset", base, nil, []string{"first_seen", "last_seen"}},
		{"set", withSeen, []string{`"first_seen": "2026-11-25T12:10:00Z"`, `"last_seen": "2026-11-25T12:20:00Z"`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Encode(&buf, time.Time{}, []Finding{tt.f}); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("document lacks %s:\n%s", w, buf.String())
				}
			}
			for _, w := range tt.dontWant {
				if strings.Contains(buf.String(), w) {
					t.Errorf("document has %s:\n%s", w, buf.String())
				}
			}
			got, err := Decode(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if g := got.Findings[0]; !g.FirstSeen.Equal(tt.f.FirstSeen) || !g.LastSeen.Equal(tt.f.LastSeen) || ComputeID(&g) != base.ID {
				t.Errorf("round trip %+v", g)
			}
		})
	}
}

// A gradual finding (added in v1) round-trips with its ramp, and its id is that of
// its kind, so a ramp and a step of one function at one time are two findings.
func TestGradualRoundTrip(t *testing.T) {
	start := time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC)
	f := Finding{
		Kind: KindGradual, Service: "api", Function: "encoding/json.Marshal",
		Before: Share{Value: 0.01, Lo: 0.0098, Hi: 0.0102}, After: Share{Value: 0.0115, Lo: 0.0113, Hi: 0.0117},
		AbsoluteChange: 0.0015, RelativeChange: 0.15, PValue: 1e-9, ChangeTime: start,
		Gradual: &Gradual{Start: start, End: start.Add(30 * time.Hour), SlopePerHour: 0.0015 / 30,
			CumulativeChange: 0.15, Releases: []string{"v1.2.0", "v1.3.0"}},
	}
	f.ID = ComputeID(&f)
	var buf bytes.Buffer
	if err := Encode(&buf, start, []Finding{f}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"kind": "gradual"`, `"slope_per_hour": 0.00005`, `"cumulative_change": 0.15`, `"releases": [`} {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("document lacks %s:\n%s", w, buf.String())
		}
	}
	got, err := Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	g := got.Findings[0]
	if g.Gradual == nil || !g.Gradual.End.Equal(f.Gradual.End) || g.Gradual.SlopePerHour != f.Gradual.SlopePerHour ||
		strings.Join(g.Gradual.Releases, ",") != "v1.2.0,v1.3.0" || g.ID != f.ID {
		t.Fatalf("round trip: got %+v (gradual %+v)", g, g.Gradual)
	}
	step := f
	step.Kind, step.Gradual = KindRegression, nil
	if ComputeID(&step) == f.ID {
		t.Error("a step and a ramp share an id")
	}
}
