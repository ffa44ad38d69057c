package evaluate

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// TestEvaluateGradualSanity: day-long ramps of +50% are reported as gradual findings,
// not as staircases, and the trend control is not; the full sweep is
// BenchmarkEvaluateGradual.
func TestEvaluateGradualSanity(t *testing.T) {
	cfg := DefaultGradualConfig()
	cfg.Sizes, cfg.Ramps = []float64{0.5}, []time.Duration{24 * time.Hour}
	rows, err := RunGradual(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", GradualTable(rows))
	for _, r := range rows {
		for _, f := range r.FalseFindings {
			t.Logf("false positive: %s", f)
		}
		for _, f := range r.StepFindings {
			t.Logf("step on a ramp: %s", f)
		}
		if r.Regressions != cfg.PerService {
			t.Errorf("%d ramps, want %d", r.Regressions, cfg.PerService)
		}
		if r.GradualRecall() < 2.0/3 {
			t.Errorf("gradual recall %.2f at +50%% over a day", r.GradualRecall())
		}
		if r.Steps > r.Regressions-r.Gradual {
			t.Errorf("%d step findings on %d ramps, %d of them found as ramps", r.Steps, r.Regressions, r.Gradual)
		}
		// A ramp is reported once it spans MinRampBuckets hours and at the latest by
		// the end of the data.
		if minLat := time.Duration(cfg.Detect.Gradual.MinRampBuckets) * cfg.Detect.Gradual.Bucket; r.MeanLatency < minLat || r.MeanLatency > cfg.Tail+24*time.Hour {
			t.Errorf("latency %v, want %v … %v", r.MeanLatency, minLat, cfg.Tail+24*time.Hour)
		}
		if r.TrendsReported > 0 || r.FalsePositives > 2 {
			t.Errorf("trend control reported %d times, %d false positives in %d series", r.TrendsReported, r.FalsePositives, r.Series)
		}
	}
}

// BenchmarkEvaluateGradual is the gradual sweep, ramps of +2…+50% over 6, 24 and 72
// hours (-sizes, -ramps) pooled over -gradual-seeds, once with the step stages alone (the findings a
// user got before the long-term stage reached them) and once with it. Run with
// -benchtime 1x; -v prints both tables.
func BenchmarkEvaluateGradual(b *testing.B) {
	cfg := DefaultGradualConfig()
	var err error
	if cfg.Seeds, err = parseSeeds(*gradualSeeds); err != nil {
		b.Fatalf("-gradual-seeds %q: %v", *gradualSeeds, err)
	}
	if *sizes != "" {
		if cfg.Sizes, err = parseList(*sizes, func(f string) (float64, error) { return strconv.ParseFloat(f, 64) }); err != nil {
			b.Fatalf("-sizes %q: %v", *sizes, err)
		}
	}
	if *ramps != "" {
		if cfg.Ramps, err = parseList(*ramps, time.ParseDuration); err != nil {
			b.Fatalf("-ramps %q: %v", *ramps, err)
		}
	}
	before := cfg
	before.Detect.Gradual.Enabled, before.Latency = false, false
	var rowsBefore, rowsAfter []GradualRow
	for b.Loop() {
		if rowsBefore, err = RunGradual(context.Background(), before); err != nil {
			b.Fatal(err)
		}
		if rowsAfter, err = RunGradual(context.Background(), cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("step stages only:\n%s", GradualTable(rowsBefore))
	b.Logf("with the long-term stage:\n%s", GradualTable(rowsAfter))
	for _, r := range rowsAfter {
		for _, f := range r.FalseFindings {
			b.Logf("ramp %v size %v false positive: %s", r.Ramp, r.Size, f)
		}
		for _, f := range r.StepFindings {
			b.Logf("ramp %v size %v step on a ramp: %s", r.Ramp, r.Size, f)
		}
	}
	for name, rows := range map[string][]GradualRow{"before": rowsBefore, "after": rowsAfter} {
		var fp, series, regs, hit int
		for _, r := range rows {
			fp += r.FalsePositives
			series += r.Series
			regs += r.Regressions
			hit += r.Detected
			b.ReportMetric(r.Recall(), name+"-recall@"+r.Ramp.String()+"/"+strconv.FormatFloat(r.Size, 'f', 2, 64))
		}
		b.ReportMetric(float64(fp)/float64(max(series, 1)), name+"-fp/series")
		b.ReportMetric(float64(hit)/float64(max(regs, 1)), name+"-recall")
	}
}
