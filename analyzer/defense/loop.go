package defense

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Loop runs Analyze every Config.Interval (first at once) until interrupted: an
// actor for oklog/run (Run, Interrupt).
type Loop struct {
	store  Store
	cfg    Config
	report func(*Report, error)

	mu     sync.Mutex
	cancel context.CancelFunc
	done   bool
}

// NewLoop checks cfg and returns a loop over st. report (may be nil) gets every run's
// outcome; a failed run does not stop the loop.
func NewLoop(st Store, cfg Config, report func(*Report, error)) (*Loop, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("analyzer loop: %w", err)
	}
	if report == nil {
		report = func(*Report, error) {}
	}
	return &Loop{store: st, cfg: cfg, report: report}, nil
}

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
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	for {
		rep, err := Analyze(ctx, l.store, l.cfg)
		if ctx.Err() != nil {
			return nil
		}
		l.report(rep, err)
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
