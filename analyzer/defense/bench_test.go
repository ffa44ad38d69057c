package defense

import (
	"context"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/simulate"
)

// BenchmarkAnalyzeHistory times one Analyze of `fleetprof up`'s loop (1h window,
// 5-minute steps) over 2 services × 20 hosts × 50h with 3h and with 48h of history
// (the seasonality stage needs 48h). The fake store answers from memory, so this is
// the analyzer's own cost; reading the rows from ClickHouse comes on top.
func BenchmarkAnalyzeHistory(b *testing.B) {
	c := simulate.DefaultConfig()
	c.Services, c.Hosts, c.Duration, c.Bucket = 2, 20, 50*time.Hour, 5*time.Minute
	f, err := simulate.New(c)
	if err != nil {
		b.Fatal(err)
	}
	st := newFleetStore(b, f)
	for _, history := range []time.Duration{3 * time.Hour, 48 * time.Hour} {
		b.Run(history.String(), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Window, cfg.History, cfg.Step = time.Hour, history, 5*time.Minute
			end := c.Start.Add(c.Duration)
			cfg.Now = func() time.Time { return end }
			cfg.Store = false
			for b.Loop() {
				rep, err := Analyze(context.Background(), st, cfg)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(rep.Series), "series")
			}
		})
	}
}
