package evaluate

import (
	"context"
	"testing"
	"time"
)

// TestEvaluateGradualSanity: day-long ramps of +50% are reported as gradual findings,
// not as staircases, and the trend control is not; the full sweep is
// BenchmarkEvaluateGradual.
func TestEvaluateGradualSanity(t *testing.T) {
	cfg := DefaultGradualConfig()
	cfg.Sizes, cfg.Ramps = []float64{0.5}, []time.Duration{24 * time.Hour}
	cfg.Latency = false
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
		if r.TrendsReported > 0 || r.FalsePositives > 2 {
			t.Errorf("trend control reported %d times, %d false positives in %d series", r.TrendsReported, r.FalsePositives, r.Series)
		}
	}
}
