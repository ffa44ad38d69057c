package main

import (
	"flag"
	"log/slog"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/defense"
	"github.com/fleetprof/fleetprof/analyzer/loop"
)

// upAnalyzerDefaults: detection over a 1h window in 5-minute steps (data on one
// machine may be minutes old) with 48h of history before it, the two daily periods
// the seasonality stage needs (a young store's empty buckets are fine: the detector
// skips seasonality without enough history; with 3h a daily swing was reported as a
// regression); opportunities over the last hour. Cost, measured on 50h of simulated
// data: 1 host, 2 services 3.5 s a run (3h: 1.7 s); 20 hosts 23 s (3h: 2.9 s), most
// of it reading the per-minute rollup — summed into steps by the database
// (RollupQuery.Step) the 20-host run takes 7.0 s and 0.66 GB instead of 19 s and
// 1.9 GB (`fleetprof analyze --kind regression --dry-run --history 48h --step 5m`).
func upAnalyzerDefaults() loop.Config {
	c := loop.DefaultConfig()
	c.Interval = 5 * time.Minute
	c.Defense.Window, c.Defense.History, c.Defense.Step = time.Hour, 48*time.Hour, 5*time.Minute
	return c
}

// bindAnalyzerLoopFlags binds the analyzer loop's flags (for up and aggregator),
// starting from defaults.
func bindAnalyzerLoopFlags(fs *flag.FlagSet, c *loop.Config, defaults loop.Config) {
	*c = defaults
	fs.DurationVar(&c.Interval, "analyze-interval", c.Interval, "how often the analyzer looks for regressions and opportunities (0 = only on request, POST /api/v1/analyze)")
	fs.DurationVar(&c.Defense.Window, "analyze-window", c.Defense.Window, "regression analysis window (history before it: --analyze-history)")
	fs.DurationVar(&c.Defense.History, "analyze-history", c.Defense.History, "history read before the regression analysis window (48h, two daily periods, enables the seasonality filter)")
	fs.DurationVar(&c.Defense.Step, "analyze-step", c.Defense.Step, "regression detector time bucket")
	fs.DurationVar(&c.Offense.Window, "opportunity-window", c.Offense.Window, "data ranked for opportunities: the last this long")
	if c.Defense.Repos == nil {
		c.Defense.Repos = map[string]string{}
	}
	fs.Var(kvFlag(c.Defense.Repos), "repo", "SERVICE=PATH: git repository for the analyzer's root cause (repeatable)")
}

// logAnalyzerRun logs one periodic analyzer run.
func logAnalyzerRun(log *slog.Logger) func(*loop.Run, error) {
	return func(run *loop.Run, err error) {
		if err != nil {
			log.Error("analyzer run failed", "err", err)
		}
		if run == nil {
			return
		}
		if r := run.Regressions; r != nil {
			log.Info("regression analysis", "regressions", len(r.Findings), "series", r.Series,
				"root_cause_errors", len(r.Errors), "from", r.From, "to", r.To)
			logRootCauseErrors(log, r)
		}
		if o := run.Opportunities; o != nil {
			log.Info("opportunity analysis", "opportunities", len(o.Findings), "services", o.Services, "from", o.From, "to", o.To)
		}
		log.Info("analyzer run", "written", run.Written, "took", run.Took.Round(time.Millisecond))
	}
}

func logRootCauseErrors(log *slog.Logger, r *defense.Report) {
	for _, e := range r.Errors {
		log.Warn("root cause failed", "err", e)
	}
}
