package offense

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/opportunity"
	"github.com/fleetprof/fleetprof/model"
)

// Store is what offense needs from the profile store (*storage.Store).
type Store interface {
	Services(ctx context.Context, from, to time.Time) ([]string, error)
	Versions(ctx context.Context, service string, from, to time.Time) ([]model.VersionSpan, error)
	Profile(ctx context.Context, sel model.Selection) (*model.Profile, error)
	PutFindings(ctx context.Context, recs []model.FindingRecord) error
}

// DefaultWindow is the default Config.Window.
const DefaultWindow = time.Hour

// Config configures Analyze. Start from DefaultConfig.
type Config struct {
	// Window is the data ranked: [Now−Window, Now).
	Window time.Duration
	// Services to analyze; empty means every service with samples in the window.
	Services []string
	// Opportunity holds the cost figures and limits (zero fields get its defaults).
	Opportunity opportunity.Config
	// Store findings with PutFindings (Analyze only returns them when false).
	Store bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// DefaultConfig returns the defaults: the last hour, storing findings.
func DefaultConfig() Config {
	return Config{Window: DefaultWindow, Store: true}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.Window < time.Second {
		return fmt.Errorf("window %v: want >= 1s", c.Window)
	}
	for _, s := range c.Services {
		if s == "" {
			return fmt.Errorf("services %q: empty name", c.Services)
		}
	}
	if err := c.Opportunity.Validate(); err != nil {
		return fmt.Errorf("opportunity: %w", err)
	}
	return nil
}

func (c Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Report is the outcome of one Analyze run.
type Report struct {
	From, To time.Time
	// Findings of every service, largest estimated saving (cores) first.
	Findings []findings.Finding
	// Services counts the services with samples that were ranked.
	Services int
}

// Analyze ranks the opportunities of every service over the window and stores them
// when cfg.Store is set.
func Analyze(ctx context.Context, st Store, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("analyze opportunities config: %w", err)
	}
	to := cfg.now().UTC().Truncate(time.Second)
	from := to.Add(-cfg.Window)
	rep := &Report{From: from, To: to}
	services := cfg.Services
	if len(services) == 0 {
		var err error
		if services, err = st.Services(ctx, from, to); err != nil {
			return nil, fmt.Errorf("analyze opportunities: %w", err)
		}
	}
	for _, name := range services {
		fs, ok, err := analyzeService(ctx, st, cfg, name, from, to)
		if err != nil {
			return nil, fmt.Errorf("analyze opportunities %s: %w", name, err)
		}
		if ok {
			rep.Services++
		}
		rep.Findings = append(rep.Findings, fs...)
	}
	sort.SliceStable(rep.Findings, func(i, j int) bool {
		return savingCores(&rep.Findings[i]) > savingCores(&rep.Findings[j])
	})
	if cfg.Store && len(rep.Findings) > 0 {
		recs, err := Records(rep.Findings, cfg.now())
		if err != nil {
			return nil, fmt.Errorf("analyze opportunities: %w", err)
		}
		if err := st.PutFindings(ctx, recs); err != nil {
			return nil, fmt.Errorf("analyze opportunities: %w", err)
		}
	}
	return rep, nil
}

// Records encodes findings as store records created at the given time (one time per
// run, so readers can tell runs apart).
func Records(fs []findings.Finding, created time.Time) ([]model.FindingRecord, error) {
	created = created.UTC().Truncate(time.Second)
	recs := make([]model.FindingRecord, 0, len(fs))
	for i := range fs {
		f := &fs[i]
		body, err := json.Marshal(f)
		if err != nil {
			return nil, fmt.Errorf("encode finding %s: %w", f.ID, err)
		}
		recs = append(recs, model.FindingRecord{ID: f.ID, Kind: string(f.Kind), Service: f.Service, Created: created, Body: body})
	}
	return recs, nil
}

func savingCores(f *findings.Finding) float64 {
	if f.Opportunity == nil {
		return 0
	}
	return f.Opportunity.EstimatedSavingCores
}

// analyzeService ranks one service; ok is false when it had no samples.
func analyzeService(ctx context.Context, st Store, cfg Config, name string, from, to time.Time) (fs []findings.Finding, ok bool, err error) {
	prof, err := st.Profile(ctx, model.Selection{Service: name, From: from, To: to})
	if err != nil {
		return nil, false, err
	}
	if prof == nil || prof.Total <= 0 {
		return nil, false, nil
	}
	spans, err := st.Versions(ctx, name, from, to)
	if err != nil {
		return nil, false, err
	}
	start, version := from, ""
	var first time.Time
	var most int64
	for _, s := range spans {
		if first.IsZero() || s.FirstSeen.Before(first) {
			first = s.FirstSeen
		}
		if s.Samples > most {
			most, version = s.Samples, s.Version
		}
	}
	if first.After(from) && first.Before(to) {
		start = first
	}
	in := opportunity.Input{Service: name, Profile: prof, Wall: to.Sub(start), Version: version,
		WindowStart: start, WindowEnd: to}
	fs, err = opportunity.Findings(in, cfg.Opportunity)
	if err != nil {
		return nil, false, err
	}
	return fs, true, nil
}
