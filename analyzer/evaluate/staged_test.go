package evaluate

import (
	"context"
	"flag"
	"strconv"
	"testing"
	"time"
)

var (
	stagedSeeds    = flag.String("staged-seeds", "0,1000", "comma-separated seed offsets pooled by BenchmarkEvaluateStaged")
	stageDurations = flag.String("stage-durations", "", "comma-separated stage durations BenchmarkEvaluateStaged sweeps (default 2h,4h)")
)

// BenchmarkEvaluateStaged is the staged-rollout sweep: releases rolled out 10% → 50%
// → 100% with stages of 2 and 4 hours (-stage-durations), one regression of +5…+50%
// (-sizes) per release and a cost shift beside the first one, analysed every 10
// minutes with the findings stored as the analyzer loop stores them, pooled over
// -staged-seeds. Run with -benchtime 1x; -v prints the table.
func BenchmarkEvaluateStaged(b *testing.B) {
	cfg := DefaultStagedConfig()
	var err error
	if cfg.Seeds, err = parseSeeds(*stagedSeeds); err != nil {
		b.Fatalf("-staged-seeds %q: %v", *stagedSeeds, err)
	}
	if *sizes != "" {
		if cfg.Sizes, err = parseList(*sizes, func(f string) (float64, error) { return strconv.ParseFloat(f, 64) }); err != nil {
			b.Fatalf("-sizes %q: %v", *sizes, err)
		}
	}
	if *stageDurations != "" {
		if cfg.StageDurations, err = parseList(*stageDurations, time.ParseDuration); err != nil {
			b.Fatalf("-stage-durations %q: %v", *stageDurations, err)
		}
	}
	var rows []StagedRow
	for b.Loop() {
		if rows, err = RunStaged(context.Background(), cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("\n%s", StagedTable(rows))
	var regs, hit, single, shift, shiftRuns, falses int
	for _, r := range rows {
		for _, f := range r.FalseFindings {
			b.Logf("stages %v size %v false: %s", r.StageDuration, r.Size, f)
		}
		for _, s := range r.Split {
			b.Logf("stages %v size %v split: %s", r.StageDuration, r.Size, s)
		}
		regs += r.Regressions
		hit += r.Detected
		single += r.Single
		shift += r.ShiftReported
		shiftRuns += r.ShiftRuns
		falses += r.FalseStored
	}
	b.ReportMetric(ratio(hit, regs), "recall")
	b.ReportMetric(ratio(single, hit), "single-stored")
	b.ReportMetric(float64(shift), "shift-runs-reported")
	b.ReportMetric(float64(shiftRuns), "shift-runs")
	b.ReportMetric(float64(falses), "false-stored")
}

func TestStagedConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*StagedConfig)
		ok     bool
	}{
		{"default", func(*StagedConfig) {}, true},
		{"no sizes", func(c *StagedConfig) { c.Sizes = nil }, false},
		{"every off the bucket", func(c *StagedConfig) { c.Every = 15 * time.Minute }, false},
		{"stages not ending at 1", func(c *StagedConfig) { c.Stages = []float64{0.1, 0.5} }, false},
	}
	for _, tt := range tests {
		c := DefaultStagedConfig()
		tt.mutate(&c)
		if err := c.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v", tt.name, err)
		}
	}
}
