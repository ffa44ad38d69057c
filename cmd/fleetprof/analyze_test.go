package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/defense"
	"github.com/fleetprof/fleetprof/analyzer/detect"
	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/loop"
	"github.com/fleetprof/fleetprof/analyzer/offense"
	"github.com/fleetprof/fleetprof/analyzer/opportunity"
	"github.com/fleetprof/fleetprof/model"
)

func TestParseAnalyzeFlags(t *testing.T) {
	vm := filepath.Join(t.TempDir(), "versions.txt")
	if err := os.WriteFile(vm, []byte("v1 abc123\nv2 def456\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		usage bool
		check func(*testing.T, *analyzeOptions)
	}{
		{"defaults", nil, false, func(t *testing.T, o *analyzeOptions) {
			if o.cfg.Window != 6*time.Hour || !o.cfg.Store || o.json || o.storage != "" || o.dataDir != defaultDataDir || o.aggregator != "" ||
				o.kind != kindAll || o.offense.Window != time.Hour || !o.offense.Store {
				t.Errorf("defaults %+v", o)
			}
		}},
		{"all", []string{"--storage", "embedded:/tmp/x", "--service", "a", "--service", "b", "--window", "3h",
			"--repo", "a=/src/a", "--version-map", "a=" + vm, "--json", "--dry-run", "--now", "2026-01-06T00:00:00Z"}, false,
			func(t *testing.T, o *analyzeOptions) {
				if len(o.cfg.Services) != 2 || o.cfg.Window != 3*time.Hour || o.cfg.Repos["a"] != "/src/a" ||
					o.cfg.VersionMaps["a"]["v2"] != "def456" || !o.json || o.cfg.Store ||
					!o.cfg.Now().Equal(time.Date(2026, 1, 6, 0, 0, 0, 0, time.UTC)) {
					t.Errorf("parsed %+v", o.cfg)
				}
			}},
		{"opportunities", []string{"--kind", "opportunity", "--opportunity-window", "30m", "--cost-per-core-year", "400",
			"--service", "a", "--dry-run", "--now", "2026-01-06T00:00:00Z"}, false,
			func(t *testing.T, o *analyzeOptions) {
				if o.runs(kindRegression) || !o.runs(kindOpportunity) || o.offense.Window != 30*time.Minute ||
					o.offense.Opportunity.CostPerCoreYear != 400 || o.offense.Store || len(o.offense.Services) != 1 ||
					!o.offense.Now().Equal(time.Date(2026, 1, 6, 0, 0, 0, 0, time.UTC)) {
					t.Errorf("parsed %+v", o.offense)
				}
			}},
		{"remote", []string{"--aggregator", "http://h:7070", "--kind", "regression", "--window", "2h", "--service", "a", "--dry-run"}, false,
			func(t *testing.T, o *analyzeOptions) {
				r := o.remote
				if o.aggregator != "http://h:7070" || r.Kind != "regression" || r.Window != "2h0m0s" || r.History != "" ||
					len(r.Services) != 1 || !r.DryRun {
					t.Errorf("remote request %+v", r)
				}
			}},
		{"aggregator and storage", []string{"--aggregator", "http://h:7070", "--storage", "embedded:/x"}, true, nil},
		{"bad kind", []string{"--kind", "both"}, true, nil},
		{"bad opportunity window", []string{"--opportunity-window", "0s"}, true, nil},
		{"bad opportunity share", []string{"--opportunity-min-share", "1"}, true, nil},
		{"bad repo", []string{"--repo", "nopath"}, true, nil},
		{"bad window", []string{"--window", "0s"}, true, nil},
		{"bad now", []string{"--now", "yesterday"}, true, nil},
		{"bad storage", []string{"--storage", "mysql://x"}, true, nil},
		{"missing version map", []string{"--version-map", "a=/does/not/exist"}, true, nil},
		{"extra args", []string{"x"}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseAnalyzeFlags(tt.args)
			var u usageError
			if tt.usage {
				if !errors.As(err, &u) {
					t.Fatalf("error %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}

// emptyStore is a store without samples.
type emptyStore struct{}

func (emptyStore) Services(context.Context, time.Time, time.Time) ([]string, error) { return nil, nil }
func (emptyStore) Rollup(context.Context, model.RollupQuery) ([]model.RollupRow, error) {
	return nil, nil
}
func (emptyStore) Versions(context.Context, string, time.Time, time.Time) ([]model.VersionSpan, error) {
	return nil, nil
}
func (emptyStore) Profile(context.Context, model.Selection) (*model.Profile, error) {
	return &model.Profile{}, nil
}
func (emptyStore) PutFindings(context.Context, []model.FindingRecord) error { return nil }
func (emptyStore) Findings(context.Context, model.FindingsQuery) ([]model.FindingRecord, error) {
	return nil, nil
}

func TestAnalyzeOnceEmpty(t *testing.T) {
	for _, js := range []bool{false, true} {
		o, err := parseAnalyzeFlags([]string{"--now", "2026-01-06T00:00:00Z"})
		if err != nil {
			t.Fatal(err)
		}
		o.json = js
		var out bytes.Buffer
		if err := analyzeOnce(context.Background(), emptyStore{}, o, &out, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
		want := []string{"no regressions", "no opportunities"}
		if js {
			want = []string{`"findings": []`}
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("json=%v: output %q lacks %q", js, out.String(), w)
			}
		}
	}
}

func TestPrintFindings(t *testing.T) {
	rep := &defense.Report{Findings: []findings.Finding{{
		Kind: findings.KindRegression, Service: "billing", Function: "billing/ledger.(*Engine).Encode",
		Before: findings.Share{Value: 0.038}, After: findings.Share{Value: 0.046}, RelativeChange: 0.22,
		EstimatedCores: 0.3, ChangeTime: time.Date(2026, 1, 5, 12, 20, 0, 0, time.UTC),
		VersionBefore: "v1", VersionAfter: "v2",
		RootCauses: []findings.RootCause{{PR: 105, Title: "Speed up Encode", Confidence: 0.61}},
	}}}
	var out bytes.Buffer
	if err := printFindings(&out, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"billing/ledger.(*Engine).Encode", "2026-01-05 12:20", "3.800% → 4.600%", "+22.0%", "v1 → v2", "#105 Speed up Encode (61%)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// Ramps get their own table after the steps: ramp span, rise per day, releases.
func TestPrintGradualFindings(t *testing.T) {
	start := time.Date(2026, 1, 5, 18, 0, 0, 0, time.UTC)
	ramp := findings.Finding{
		Kind: findings.KindGradual, Service: "billing", Function: "billing/ledger.(*Cache).Fill",
		Before: findings.Share{Value: 0.02}, After: findings.Share{Value: 0.024}, RelativeChange: 0.2,
		EstimatedCores: 0.1, ChangeTime: start,
		Gradual: &findings.Gradual{Start: start, End: start.Add(24 * time.Hour), SlopePerHour: 0.004 / 24, CumulativeChange: 0.2,
			Releases: []string{"v2", "v3"}},
		RootCauses: []findings.RootCause{{PR: 107, Title: "Cache ledger lines", Confidence: 0.5}},
	}
	tests := []struct {
		name     string
		fs       []findings.Finding
		want     []string
		dontWant []string
	}{
		{"ramp only", []findings.Finding{ramp}, []string{"RAMP (UTC)", "2026-01-05 18:00 … 01-06 18:00", "2.000% → 2.400%", "+20.0%", "+0.4000%", "v2, v3", "#107 Cache ledger lines (50%)"},
			[]string{"CHANGED AT"}},
		{"ramp without releases", []findings.Finding{func() findings.Finding {
			f := ramp
			g := *f.Gradual
			g.Releases, f.Gradual, f.RootCauses = nil, &g, nil
			return f
		}()}, []string{"RAMP (UTC)", "  -  "}, nil},
		{"step and ramp", []findings.Finding{{Kind: findings.KindRegression, Service: "billing", Function: "billing/api.Serve",
			Before: findings.Share{Value: 0.1}, After: findings.Share{Value: 0.11}, RelativeChange: 0.1, ChangeTime: start}, ramp},
			[]string{"CHANGED AT", "billing/api.Serve", "RAMP (UTC)", "billing/ledger.(*Cache).Fill"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := printFindings(&out, &defense.Report{Findings: tt.fs}); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.dontWant {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestShareLabel(t *testing.T) {
	sh := func(v float64) *findings.Share { return &findings.Share{Value: v} }
	tests := []struct {
		name string
		f    findings.Finding
		want string
	}{
		{"inclusive", findings.Finding{Before: *sh(0.1), After: *sh(0.11)}, "10.000% → 11.000%"},
		{"self only", findings.Finding{Before: *sh(0.01), After: *sh(0.02), FiltersPassed: []string{detect.FilterSelfShare}}, "1.000% → 2.000% self"},
		{"self with inclusive", findings.Finding{Before: *sh(0.01), After: *sh(0.02), FiltersPassed: []string{detect.FilterSelfShare},
			InclusiveBefore: sh(0.1), InclusiveAfter: sh(0.11)}, "1.000% → 2.000% self (inclusive 10.000% → 11.000%)"},
	}
	for _, tt := range tests {
		if got := shareLabel(&tt.f); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestVersionsLabel(t *testing.T) {
	for _, tt := range []struct{ before, after, want string }{
		{"v1", "v2", "v1 → v2"},
		{"v4", "v4", "in v4"},
		{"?", "v1", "in v1"},
		{"", "v1", "in v1"},
		{"v3", "", "in v3"},
		{"", "", "-"},
	} {
		if got := versionsLabel(tt.before, tt.after); got != tt.want {
			t.Errorf("versionsLabel(%q, %q) = %q, want %q", tt.before, tt.after, got, tt.want)
		}
	}
}

// youngStore is a fake defense.Store holding a few minutes of samples of one service,
// like `fleetprof up` shortly after it started; Rollup and Profile are computed from
// the samples.
type youngStore struct {
	samples []youngSample
	mu      sync.Mutex
	put     []model.FindingRecord
	// stored gets the kind of every PutFindings call (when set).
	stored chan string
}

type youngSample struct {
	ts     time.Time
	frames []string
	value  int64
}

// newYoungStore has minutes of samples ending at end, 100 per minute: 30% regexp
// compilation under api.Handle, the rest in api.Work.
func newYoungStore(end time.Time, minutes int) *youngStore {
	s := &youngStore{}
	for i := range minutes {
		ts := end.Add(-time.Duration(minutes-i) * time.Minute)
		s.samples = append(s.samples,
			youngSample{ts, []string{"main.main", "example.com/api.Handle", "regexp.MustCompile", "regexp.compile"}, 30},
			youngSample{ts, []string{"main.main", "example.com/api.Work"}, 70})
	}
	return s
}

func (s *youngStore) in(from, to time.Time) []youngSample {
	var out []youngSample
	for _, x := range s.samples {
		if !x.ts.Before(from) && x.ts.Before(to) {
			out = append(out, x)
		}
	}
	return out
}

func (s *youngStore) Services(_ context.Context, from, to time.Time) ([]string, error) {
	if len(s.in(from, to)) == 0 {
		return nil, nil
	}
	return []string{"api"}, nil
}

func (s *youngStore) Rollup(_ context.Context, q model.RollupQuery) ([]model.RollupRow, error) {
	var out []model.RollupRow
	for _, x := range s.in(q.From, q.To) {
		row := func(fn string, self int64) model.RollupRow {
			return model.RollupRow{Service: "api", Version: "v1", Bucket: x.ts, Function: fn, Self: self, Inclusive: x.value}
		}
		out = append(out, row("", 0))
		for i, f := range x.frames {
			self := int64(0)
			if i == len(x.frames)-1 {
				self = x.value
			}
			out = append(out, row(f, self))
		}
	}
	return out, nil
}

func (s *youngStore) Versions(_ context.Context, _ string, from, to time.Time) ([]model.VersionSpan, error) {
	xs := s.in(from, to)
	if len(xs) == 0 {
		return nil, nil
	}
	span := model.VersionSpan{Version: "v1", FirstSeen: xs[0].ts, LastSeen: xs[len(xs)-1].ts}
	for _, x := range xs {
		span.Samples += x.value
	}
	return []model.VersionSpan{span}, nil
}

func (s *youngStore) Profile(_ context.Context, sel model.Selection) (*model.Profile, error) {
	p := &model.Profile{PeriodNS: 10_000_000}
	byStack := map[string]int{}
	for _, x := range s.in(sel.From, sel.To) {
		k := strings.Join(x.frames, ";")
		i, ok := byStack[k]
		if !ok {
			i = len(p.Stacks)
			byStack[k] = i
			p.Stacks = append(p.Stacks, model.StackCount{Frames: x.frames})
		}
		p.Stacks[i].Value += x.value
		p.Total += x.value
	}
	return p, nil
}

func (s *youngStore) PutFindings(_ context.Context, recs []model.FindingRecord) error {
	s.mu.Lock()
	s.put = append(s.put, recs...)
	s.mu.Unlock()
	if s.stored != nil && len(recs) > 0 {
		s.stored <- recs[0].Kind
	}
	return nil
}

// Findings returns the latest put of each id (enough for the analyzer's merge).
func (s *youngStore) Findings(_ context.Context, q model.FindingsQuery) ([]model.FindingRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	latest := map[string]int{}
	var out []model.FindingRecord
	for _, r := range s.put {
		if (q.Service != "" && r.Service != q.Service) || (q.Kind != "" && r.Kind != q.Kind) || r.Created.Before(q.From) {
			continue
		}
		if i, ok := latest[r.ID]; ok {
			out[i] = r
			continue
		}
		latest[r.ID] = len(out)
		out = append(out, r)
	}
	return out, nil
}

func TestAnalyzeOnceKinds(t *testing.T) {
	end := time.Date(2026, 1, 6, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		kind     string
		json     bool
		want     []string
		dontWant []string
	}{
		{"all", false, []string{"no regressions", "example.com/api.Handle", "regexp-compile"}, nil},
		{"regression", false, []string{"no regressions"}, []string{"regexp"}},
		{"opportunity", false, []string{"example.com/api.Handle", "PER YEAR"}, []string{"regressions"}},
		{"all", true, []string{`"kind": "opportunity"`, `"schema": "fleetprof.findings/v1"`}, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s json=%v", tt.kind, tt.json), func(t *testing.T) {
			args := []string{"--kind", tt.kind, "--now", end.Format(time.RFC3339), "--window", "1h", "--history", "2h", "--step", "5m"}
			if tt.json {
				args = append(args, "--json")
			}
			o, err := parseAnalyzeFlags(args)
			if err != nil {
				t.Fatal(err)
			}
			st := newYoungStore(end, 20)
			var out bytes.Buffer
			if err := analyzeOnce(context.Background(), st, o, &out, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.dontWant {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
			if tt.json {
				if _, err := findings.Decode(&out); err != nil {
					t.Errorf("output is not a findings document: %v", err)
				}
			}
			stored := len(st.put) > 0
			if wantStored := tt.kind != "regression"; stored != wantStored {
				t.Errorf("stored %d records, want some: %v", len(st.put), wantStored)
			}
		})
	}
}

func TestPrintOpportunities(t *testing.T) {
	rep := &offense.Report{Findings: []findings.Finding{{
		Kind: findings.KindOpportunity, Service: "api", Function: "example.com/api.Handle",
		Before: findings.Share{Value: 0.3},
		Opportunity: &findings.Opportunity{Pattern: "regexp-compile", EstimatedSavingShare: 0.285,
			EstimatedSavingCores: 0.57, Confidence: 0.9},
	}}}
	var out bytes.Buffer
	if err := printOpportunities(&out, rep, opportunity.Config{CostPerCoreYear: 100}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"example.com/api.Handle", "regexp-compile", "30.000%", "28.500%", "0.5700", "57 USD", "90%"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// logRecords is a slog handler collecting records.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r)
	return nil
}
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecords) WithGroup(string) slog.Handler      { return h }

// TestAnalyzerLoopYoungData runs `fleetprof up`'s analyzer loop over 20 minutes of
// data: both analyses must succeed, and opportunities must be stored.
func TestAnalyzerLoopYoungData(t *testing.T) {
	st := newYoungStore(time.Now().Truncate(time.Minute), 20)
	st.stored = make(chan string, 16)
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	var cfg loop.Config
	bindAnalyzerLoopFlags(fs, &cfg, upAnalyzerDefaults())
	if err := fs.Parse([]string{"--analyze-interval", "1h"}); err != nil {
		t.Fatal(err)
	}
	logs := &logRecords{}
	l, err := loop.New(st, cfg, logAnalyzerRun(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Run(context.Background()) }()
	for kind := range st.stored {
		if kind == "opportunity" {
			break
		}
	}
	l.Interrupt(nil)
	if err := <-done; err != nil {
		t.Fatalf("loop returned %v", err)
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	var msgs []string
	for _, r := range logs.recs {
		msgs = append(msgs, r.Message)
		if r.Level >= slog.LevelWarn {
			t.Errorf("logged %s: %s", r.Level, r.Message)
		}
	}
	if !slices.Contains(msgs, "regression analysis") {
		t.Errorf("no regression analysis logged: %q", msgs)
	}
}

func TestAnalyzerLoopConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"defaults", nil, true},
		{"disabled", []string{"--analyze-interval", "0"}, true},
		{"negative", []string{"--analyze-interval", "-1m"}, false},
		{"bad window", []string{"--analyze-window", "1s"}, false},
		{"bad opportunity window", []string{"--opportunity-window", "0s"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("up", flag.ContinueOnError)
			var cfg loop.Config
			bindAnalyzerLoopFlags(fs, &cfg, upAnalyzerDefaults())
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			l, err := loop.New(emptyStore{}, cfg, nil)
			if (err == nil) != tt.ok {
				t.Fatalf("error %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				return
			}
			l.Interrupt(nil)
			if err := l.Run(context.Background()); err != nil {
				t.Errorf("run after interrupt: %v", err)
			}
		})
	}
}

// The up loop reads the two daily periods of history the seasonality stage needs.
func TestUpAnalyzerDefaultsHistory(t *testing.T) {
	for name, d := range map[string]defense.Config{"up": upAnalyzerDefaults().Defense, "analyze": defense.DefaultConfig()} {
		if need := 2 * d.Detect.SeasonPeriod; d.History < need {
			t.Errorf("%s: history %v, the seasonality stage needs %v", name, d.History, need)
		}
	}
}
