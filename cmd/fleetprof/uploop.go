package main

import (
	"flag"
	"log/slog"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/storage"
)

// analyzerLoopConfig configures the periodic analysis `fleetprof up` runs.
type analyzerLoopConfig struct {
	Interval time.Duration
}

func bindAnalyzerLoopFlags(fs *flag.FlagSet, c *analyzerLoopConfig) {
	fs.DurationVar(&c.Interval, "analyze-interval", 5*time.Minute, "how often the analyzer looks for regressions and opportunities (0 = never)")
}

// newAnalyzerLoop returns the analyzer as an actor. TODO(coordinator): wire analyzer/defense.
func newAnalyzerLoop(cfg analyzerLoopConfig, store *storage.Store, log *slog.Logger) (func() error, func(error), error) {
	stop := make(chan struct{})
	return func() error { <-stop; return nil }, func(error) { close(stop) }, nil
}
