package offense

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/storage"
	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/opportunity"
	"github.com/fleetprof/fleetprof/model"
)

// fakeStore is the hand-written fake Store: fixed profiles per service.
type fakeStore struct {
	profiles map[string]*model.Profile
	spans    map[string][]model.VersionSpan
	sels     []model.Selection
	put      []model.FindingRecord
	failPut  error
	failProf error
}

func (s *fakeStore) Services(context.Context, time.Time, time.Time) ([]string, error) {
	var out []string
	for k := range s.profiles {
		out = append(out, k)
	}
	return out, nil
}

func (s *fakeStore) Versions(_ context.Context, svc string, _, _ time.Time) ([]model.VersionSpan, error) {
	return s.spans[svc], nil
}

func (s *fakeStore) Profile(_ context.Context, sel model.Selection) (*model.Profile, error) {
	s.sels = append(s.sels, sel)
	if s.failProf != nil {
		return nil, s.failProf
	}
	if p := s.profiles[sel.Service]; p != nil {
		return p, nil
	}
	return &model.Profile{}, nil
}

func (s *fakeStore) PutFindings(_ context.Context, recs []model.FindingRecord) error {
	if s.failPut != nil {
		return s.failPut
	}
	s.put = append(s.put, recs...)
	return nil
}

var now = time.Date(2026, 1, 6, 12, 0, 0, 0, time.UTC)

// profile: 1000 samples at 100 Hz; 300 in regexp compilation under api.Handle.
func profile(scale int64) *model.Profile {
	st := []model.StackCount{
		{Frames: []string{"main.main", "example.com/api.Handle", "regexp.MustCompile", "regexp.compile"}, Value: 300 * scale},
		{Frames: []string{"main.main", "example.com/api.Handle", "fmt.Sprintf"}, Value: 100 * scale},
		{Frames: []string{"main.main", "example.com/api.Work"}, Value: 600 * scale},
	}
	return &model.Profile{Stacks: st, Total: 1000 * scale, PeriodNS: 10_000_000}
}

func newStore() *fakeStore {
	return &fakeStore{
		profiles: map[string]*model.Profile{"api": profile(1), "big": profile(10), "idle": {}},
		spans: map[string][]model.VersionSpan{
			"api": {{Version: "v1", FirstSeen: now.Add(-2 * time.Hour), Samples: 100}, {Version: "v2", FirstSeen: now.Add(-30 * time.Minute), Samples: 900}},
			// Seen only for the last 10 minutes: its cores are over those 10 minutes.
			"big": {{Version: "v7", FirstSeen: now.Add(-10 * time.Minute), Samples: 10000}},
		},
	}
}

func testConfig() Config {
	c := DefaultConfig()
	c.Now = func() time.Time { return now }
	return c
}

func TestAnalyze(t *testing.T) {
	st := newStore()
	rep, err := Analyze(context.Background(), st, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Services != 2 || !rep.From.Equal(now.Add(-time.Hour)) || !rep.To.Equal(now) {
		t.Errorf("report services=%d %s…%s", rep.Services, rep.From, rep.To)
	}
	// Two patterns in each of two services; big is 10× the samples over 1/6 of the time.
	if len(rep.Findings) != 4 {
		t.Fatalf("%d findings, want 4: %+v", len(rep.Findings), rep.Findings)
	}
	for i, f := range rep.Findings {
		if err := f.Validate(); err != nil {
			t.Errorf("finding %d invalid: %v", i, err)
		}
		if f.Kind != findings.KindOpportunity {
			t.Errorf("finding %d kind %q", i, f.Kind)
		}
		if i > 0 && savingCores(&f) > savingCores(&rep.Findings[i-1]) {
			t.Errorf("finding %d saves more than %d", i, i-1)
		}
	}
	top := rep.Findings[0]
	if top.Service != "big" || top.Opportunity.Pattern != opportunity.PatternRegexpCompile || top.Function != "example.com/api.Handle" {
		t.Errorf("top finding %s %s %s", top.Service, top.Function, top.Opportunity.Pattern)
	}
	// big: 10,000 samples × 10 ms = 100 s of CPU over 600 s.
	if want := 10000 * 0.01 / 600; math.Abs(top.ServiceCores-want) > 1e-9 || top.VersionAfter != "v7" {
		t.Errorf("big: %v cores version %q, want %v v7", top.ServiceCores, top.VersionAfter, want)
	}
	for _, f := range rep.Findings {
		if f.Service == "api" {
			if want := 1000 * 0.01 / 3600; math.Abs(f.ServiceCores-want) > 1e-9 || f.VersionAfter != "v2" || !f.WindowStart.Equal(now.Add(-time.Hour)) {
				t.Errorf("api: %v cores version %q from %s, want %v v2 from the window start", f.ServiceCores, f.VersionAfter, f.WindowStart, want)
			}
		}
	}
	if len(st.put) != 4 {
		t.Fatalf("stored %d records, want 4", len(st.put))
	}
	for i, r := range st.put {
		var back findings.Finding
		if err := json.Unmarshal(r.Body, &back); err != nil || back.ID != r.ID || r.ID != rep.Findings[i].ID ||
			r.Kind != "opportunity" || r.Service != back.Service || !r.Created.Equal(now) {
			t.Errorf("record %d %+v: %v", i, r, err)
		}
	}
	// Same data, same ids: a rerun replaces the stored records.
	rep2, err := Analyze(context.Background(), newStore(), testConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i := range rep2.Findings {
		if rep2.Findings[i].ID != rep.Findings[i].ID {
			t.Errorf("rerun id %d changed", i)
		}
	}
}

func TestAnalyzeOptions(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*Config, *fakeStore)
		stored int
		found  int
		errHas string
	}{
		{"dry run", func(c *Config, _ *fakeStore) { c.Store = false }, 0, 4, ""},
		{"one service", func(c *Config, _ *fakeStore) { c.Services = []string{"api"} }, 2, 2, ""},
		{"idle service", func(c *Config, _ *fakeStore) { c.Services = []string{"idle"} }, 0, 0, ""},
		{"min share", func(c *Config, _ *fakeStore) { c.Opportunity.MinShare = 0.2 }, 2, 2, ""},
		{"put fails", func(_ *Config, s *fakeStore) { s.failPut = errors.New("disk full") }, 0, 0, "disk full"},
		{"profile fails", func(_ *Config, s *fakeStore) { s.failProf = errors.New("timeout") }, 0, 0, "timeout"},
		{"bad config", func(c *Config, _ *fakeStore) { c.Window = 0 }, 0, 0, "window"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, cfg := newStore(), testConfig()
			tt.edit(&cfg, st)
			rep, err := Analyze(context.Background(), st, cfg)
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("error %v, want one with %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Findings) != tt.found || len(st.put) != tt.stored {
				t.Errorf("found %d stored %d, want %d and %d", len(rep.Findings), len(st.put), tt.found, tt.stored)
			}
			for _, sel := range st.sels {
				if !sel.From.Equal(now.Add(-cfg.Window)) || !sel.To.Equal(now) {
					t.Errorf("profile read %s…%s", sel.From, sel.To)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"default", func(*Config) {}, true},
		{"zero value window", func(c *Config) { c.Window = 0 }, false},
		{"empty service", func(c *Config) { c.Services = []string{""} }, false},
		{"bad opportunity", func(c *Config) { c.Opportunity.MinShare = 1 }, false},
		{"costs", func(c *Config) { c.Opportunity.CostPerCoreYear = 400 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// The real store satisfies Store.
var _ Store = (*storage.Store)(nil)
