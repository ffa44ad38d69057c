package evaluate

import (
	"context"
	"os/exec"
	"testing"
)

func TestEvaluateSanity(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git command not installed (Debian package git)")
	}
	cfg := DefaultConfig()
	cfg.RepoDir = t.TempDir()
	rows, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", Table(rows))
	for _, r := range rows {
		t.Logf("size %v cases %+v", r.Size, r.Cases)
	}
	// Loose bounds: the detector is evolving; these catch a broken harness, not a
	// weak detector (the benchmark reports the numbers).
	if len(rows) != len(cfg.Sizes) {
		t.Fatalf("%d rows for %d sizes", len(rows), len(cfg.Sizes))
	}
	detected, rc := 0, 0
	for i, r := range rows {
		if r.Regressions != cfg.PerService*cfg.Sim.Services || len(r.Cases) != r.Regressions {
			t.Errorf("size %v: %d regressions, %d cases", r.Size, r.Regressions, len(r.Cases))
		}
		for _, v := range []float64{r.Recall, r.RootCauseAccuracy, r.FPPerSeries} {
			if v < 0 || v > 1 {
				t.Errorf("size %v: ratio %v out of [0,1]", r.Size, v)
			}
		}
		if i > 0 && r.MeanXFloor <= rows[i-1].MeanXFloor {
			t.Errorf("×floor %v at size %v not above %v at %v", r.MeanXFloor, r.Size, rows[i-1].MeanXFloor, rows[i-1].Size)
		}
		if r.FPPerSeries > 0.3 {
			t.Errorf("size %v: %v false positives per series", r.Size, r.FPPerSeries)
		}
		detected += r.Detected
		rc += r.RootCauseTop3
	}
	if detected == 0 {
		t.Error("no injected regression detected at any size")
	}
	if detected > 0 && float64(rc)/float64(detected) < 0.5 {
		t.Errorf("root cause in top-3 for %d of %d detected regressions", rc, detected)
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Sizes = nil
	if err := c.Validate(); err == nil {
		t.Error("no sizes: no error")
	}
}

func BenchmarkEvaluate(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Latency = false
	cfg.RepoDir = ""
	if _, err := exec.LookPath("git"); err == nil {
		cfg.RepoDir = b.TempDir()
	}
	var rows []Row
	for i := 0; b.Loop(); i++ {
		if cfg.RepoDir != "" {
			cfg.RepoDir = b.TempDir()
		}
		var err error
		if rows, err = Run(context.Background(), cfg); err != nil {
			b.Fatal(err)
		}
	}
	for _, r := range rows {
		p := func(name string) string { return name + "@" + formatSize(r.Size) }
		b.ReportMetric(r.Recall, p("recall"))
		b.ReportMetric(r.FPPerSeries, p("fp/series"))
		b.ReportMetric(r.MeanXFloor, p("xfloor"))
		b.ReportMetric(r.RootCauseAccuracy, p("rc-top3"))
	}
}

func formatSize(s float64) string {
	return string(rune('0'+int(s*100)/100)) + "." + pad2(int(s*100)%100)
}

func pad2(n int) string {
	return string(rune('0'+n/10)) + string(rune('0'+n%10))
}
