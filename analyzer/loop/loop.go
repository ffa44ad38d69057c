package loop

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetprof/fleetprof/analyzer/defense"
	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/offense"
	"github.com/fleetprof/fleetprof/model"
)

// Store is what both analyses need from the profile store (*storage.Store);
// offense.Store is a subset of it.
type Store = defense.Store

// DefaultInterval is the default Config.Interval.
const DefaultInterval = 10 * time.Minute

// Config configures the loop. Start from DefaultConfig.
type Config struct {
	// Interval between runs, the first at once; 0 turns the periodic runs off (Now
	// still analyzes on request).
	Interval time.Duration
	// Regressions and Opportunities say which analyses a run does.
	Regressions, Opportunities bool
	// Defense and Offense configure the two analyses.
	Defense defense.Config
	Offense offense.Config
}

// DefaultConfig returns both analyses with their defaults, every DefaultInterval;
// reported opportunities need the evidence minimums (opportunity.Config.WithEvidence).
func DefaultConfig() Config {
	c := Config{Interval: DefaultInterval, Regressions: true, Opportunities: true,
		Defense: defense.DefaultConfig(), Offense: offense.DefaultConfig()}
	c.Offense.Opportunity = c.Offense.Opportunity.WithEvidence()
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.Interval < 0 {
		return fmt.Errorf("interval %v: want >= 0 (0 = off)", c.Interval)
	}
	if !c.Regressions && !c.Opportunities {
		return errors.New("neither regressions nor opportunities selected")
	}
	if c.Regressions {
		if err := c.Defense.Validate(); err != nil {
			return fmt.Errorf("regression analysis: %w", err)
		}
	}
	if c.Opportunities {
		if err := c.Offense.Validate(); err != nil {
			return fmt.Errorf("opportunity analysis: %w", err)
		}
	}
	return nil
}

// Apply returns c changed as req asks (kind, services, dry run, windows, clock).
func (c Config) Apply(req model.AnalyzeRequest) (Config, error) {
	switch req.Kind {
	case "", model.AnalyzeAll:
		c.Regressions, c.Opportunities = true, true
	case model.AnalyzeRegression:
		c.Regressions, c.Opportunities = true, false
	case model.AnalyzeOpportunity:
		c.Regressions, c.Opportunities = false, true
	default:
		return c, fmt.Errorf("kind %q: want %s, %s or %s", req.Kind, model.AnalyzeRegression, model.AnalyzeOpportunity, model.AnalyzeAll)
	}
	if len(req.Services) > 0 {
		c.Defense.Services, c.Offense.Services = req.Services, req.Services
	}
	if req.DryRun {
		c.Defense.Store, c.Offense.Store = false, false
	}
	for _, d := range []struct {
		name, value string
		dst         *time.Duration
	}{{"window", req.Window, &c.Defense.Window}, {"history", req.History, &c.Defense.History},
		{"step", req.Step, &c.Defense.Step},
		{"opportunity window", req.OpportunityWindow, &c.Offense.Window}} {
		if d.value == "" {
			continue
		}
		v, err := time.ParseDuration(d.value)
		if err != nil {
			return c, fmt.Errorf("%s: %w", d.name, err)
		}
		*d.dst = v
	}
	if !req.Now.IsZero() {
		now := req.Now
		c.Defense.Now = func() time.Time { return now }
		c.Offense.Now = c.Defense.Now
	}
	return c, c.Validate()
}

// Run is the outcome of one analysis run.
type Run struct {
	Start time.Time
	Took  time.Duration
	// Regressions and Opportunities are the two reports (nil when not run or failed).
	Regressions   *defense.Report
	Opportunities *offense.Report
	// Written counts the findings stored.
	Written int
}

// Findings returns the run's regressions, then its opportunities.
func (r *Run) Findings() []findings.Finding {
	var fs []findings.Finding
	if r.Regressions != nil {
		fs = append(fs, r.Regressions.Findings...)
	}
	if r.Opportunities != nil {
		fs = append(fs, r.Opportunities.Findings...)
	}
	return fs
}

// Series is the number of function series the regression analysis read.
func (r *Run) Series() int {
	if r.Regressions == nil {
		return 0
	}
	return r.Regressions.Series
}

// Span is the time range the run read (the wider of the two analyses').
func (r *Run) Span() (from, to time.Time) {
	for _, s := range [][2]time.Time{r.regressionSpan(), r.opportunitySpan()} {
		if s[0].IsZero() {
			continue
		}
		if from.IsZero() || s[0].Before(from) {
			from = s[0]
		}
		if s[1].After(to) {
			to = s[1]
		}
	}
	return from, to
}

func (r *Run) regressionSpan() [2]time.Time {
	if r.Regressions == nil {
		return [2]time.Time{}
	}
	return [2]time.Time{r.Regressions.From, r.Regressions.To}
}

func (r *Run) opportunitySpan() [2]time.Time {
	if r.Opportunities == nil {
		return [2]time.Time{}
	}
	return [2]time.Time{r.Opportunities.From, r.Opportunities.To}
}

// Analyze runs the configured analyses once. A failed analysis does not stop the
// other: the Run holds what succeeded and the error joins the failures.
func Analyze(ctx context.Context, st Store, cfg Config) (*Run, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("analyzer config: %w", err)
	}
	run := &Run{Start: time.Now()}
	var errs []error
	if cfg.Regressions {
		rep, err := defense.Analyze(ctx, st, cfg.Defense)
		if err != nil {
			errs = append(errs, fmt.Errorf("regression analysis: %w", err))
		} else {
			run.Regressions = rep
			if cfg.Defense.Store {
				run.Written += len(rep.Findings)
			}
		}
	}
	if cfg.Opportunities && ctx.Err() == nil {
		rep, err := offense.Analyze(ctx, st, cfg.Offense)
		if err != nil {
			errs = append(errs, fmt.Errorf("opportunity analysis: %w", err))
		} else {
			run.Opportunities = rep
			if cfg.Offense.Store {
				run.Written += len(rep.Findings)
			}
		}
	}
	run.Took = time.Since(run.Start)
	return run, errors.Join(errs...)
}

// Loop runs Analyze every Config.Interval until interrupted: an actor for
// oklog/run (Run, Interrupt).
type Loop struct {
	store   Store
	cfg     Config
	report  func(*Run, error)
	metrics *metrics

	// running serializes runs: periodic ones and those Now starts.
	running sync.Mutex

	mu     sync.Mutex
	cancel context.CancelFunc
	done   bool
}

// New checks cfg and returns a loop over st. report (may be nil) gets every
// periodic run's outcome; a failed run does not stop the loop.
func New(st Store, cfg Config, report func(*Run, error)) (*Loop, error) {
	if st == nil {
		return nil, errors.New("analyzer loop: nil store")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("analyzer loop: %w", err)
	}
	if report == nil {
		report = func(*Run, error) {}
	}
	return &Loop{store: st, cfg: cfg, report: report, metrics: newMetrics()}, nil
}

// Config is the loop's configuration.
func (l *Loop) Config() Config { return l.cfg }

// Run analyzes until ctx is done or Interrupt is called; it returns nil then.
func (l *Loop) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		return nil
	}
	l.cancel = cancel
	l.mu.Unlock()
	if l.cfg.Interval == 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	for {
		run, err := l.analyze(ctx, l.cfg)
		if ctx.Err() != nil {
			return nil
		}
		l.report(run, err)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Interrupt stops Run (also before it started).
func (l *Loop) Interrupt(error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
	if l.cancel != nil {
		l.cancel()
	}
}

// Now runs the analyses at once with the loop's configuration changed as req asks,
// after any run in progress.
func (l *Loop) Now(ctx context.Context, req model.AnalyzeRequest) (*Run, error) {
	cfg, err := l.cfg.Apply(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return l.analyze(ctx, cfg)
}

// ErrBadRequest marks a Now request that asks for an invalid configuration.
var ErrBadRequest = errors.New("bad analyze request")

func (l *Loop) analyze(ctx context.Context, cfg Config) (*Run, error) {
	l.running.Lock()
	defer l.running.Unlock()
	run, err := Analyze(ctx, l.store, cfg)
	if ctx.Err() == nil {
		l.metrics.observe(run, err)
	}
	return run, err
}

// Collector exports the loop's metrics (register it with the server's registry).
func (l *Loop) Collector() prometheus.Collector { return l.metrics }
