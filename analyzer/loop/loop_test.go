package loop

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/model"
)

// emptyStore has no samples; failErr makes every read fail.
type emptyStore struct{ failErr error }

func (s emptyStore) Services(context.Context, time.Time, time.Time) ([]string, error) {
	return nil, s.failErr
}
func (s emptyStore) Rollup(context.Context, model.RollupQuery) ([]model.RollupRow, error) {
	return nil, s.failErr
}
func (s emptyStore) Versions(context.Context, string, time.Time, time.Time) ([]model.VersionSpan, error) {
	return nil, s.failErr
}
func (s emptyStore) Profile(context.Context, model.Selection) (*model.Profile, error) {
	return nil, s.failErr
}
func (s emptyStore) PutFindings(context.Context, []model.FindingRecord) error { return s.failErr }
func (s emptyStore) Findings(context.Context, model.FindingsQuery) ([]model.FindingRecord, error) {
	return nil, s.failErr
}

func TestApply(t *testing.T) {
	at := time.Date(2026, 1, 6, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		req   model.AnalyzeRequest
		ok    bool
		check func(Config) bool
	}{
		{"empty", model.AnalyzeRequest{}, true, func(c Config) bool { return c.Regressions && c.Opportunities && c.Defense.Store }},
		{"regression dry run", model.AnalyzeRequest{Kind: "regression", DryRun: true, Services: []string{"a"}}, true,
			func(c Config) bool {
				return c.Regressions && !c.Opportunities && !c.Defense.Store && !c.Offense.Store && c.Defense.Services[0] == "a"
			}},
		{"windows and clock", model.AnalyzeRequest{Window: "2h", History: "0s", OpportunityWindow: "30m", Now: at}, true,
			func(c Config) bool {
				return c.Defense.Window == 2*time.Hour && c.Defense.History == 0 && c.Offense.Window == 30*time.Minute &&
					c.Defense.Now().Equal(at) && c.Offense.Now().Equal(at)
			}},
		{"bad kind", model.AnalyzeRequest{Kind: "both"}, false, nil},
		{"bad window", model.AnalyzeRequest{Window: "soon"}, false, nil},
		{"window below step", model.AnalyzeRequest{Window: "1m"}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := DefaultConfig().Apply(tt.req)
			if (err == nil) != tt.ok {
				t.Fatalf("Apply: %v, want ok=%v", err, tt.ok)
			}
			if err == nil && !tt.check(c) {
				t.Errorf("config %+v", c)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for name, edit := range map[string]func(*Config){
		"negative interval": func(c *Config) { c.Interval = -time.Second },
		"nothing to run":    func(c *Config) { c.Regressions, c.Opportunities = false, false },
		"bad defense":       func(c *Config) { c.Defense.Window = 0 },
		"bad offense":       func(c *Config) { c.Offense.Window = 0 },
	} {
		c := DefaultConfig()
		edit(&c)
		if c.Validate() == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
	c := DefaultConfig()
	c.Opportunities, c.Defense.Window = false, 0 // an analysis not run is not checked
	c.Regressions = true
	if c.Validate() == nil {
		t.Error("regression window 0 accepted")
	}
}

func TestLoopRunsAndStops(t *testing.T) {
	runs := make(chan error, 4)
	cfg := DefaultConfig()
	cfg.Interval = time.Hour
	l, err := New(emptyStore{}, cfg, func(_ *Run, err error) { runs <- err })
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- l.Run(context.Background()) }()
	if err := <-runs; err != nil {
		t.Errorf("first run: %v", err)
	}
	l.Interrupt(nil)
	if err := <-done; err != nil {
		t.Fatalf("Run after Interrupt: %v", err)
	}
	// Interrupt before Run: Run returns at once.
	l2, _ := New(emptyStore{}, cfg, nil)
	l2.Interrupt(nil)
	if err := l2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A failing store fails both analyses; the Run says which, and Now reports it.
func TestNowFailure(t *testing.T) {
	boom := errors.New("boom")
	l, err := New(emptyStore{failErr: boom}, DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	run, err := l.Now(context.Background(), model.AnalyzeRequest{})
	if !errors.Is(err, boom) || run == nil || run.Regressions != nil || run.Opportunities != nil {
		t.Fatalf("Now = %+v, %v; want both analyses failed with boom", run, err)
	}
	if _, err := l.Now(context.Background(), model.AnalyzeRequest{Kind: "x"}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("bad kind: %v, want ErrBadRequest", err)
	}
}
