package offense

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/storage"
	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/opportunity"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// TestAnalyzeEmbedded runs Analyze against the real embedded store: samples in,
// opportunities stored, a rerun replaces them (same ids).
func TestAnalyzeEmbedded(t *testing.T) {
	ctx := context.Background()
	st, err := storage.Open(ctx, storage.Config{URI: "embedded:" + t.TempDir()})
	if errors.Is(err, storage.ErrEngineNotInstalled) {
		testenv.Skip(t, testenv.MissingTool, "chDB library not installed (run scripts/fetch-chdb.sh): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	end := time.Now().Truncate(time.Minute)
	var samples []samplebatch.Sample
	for i := range 20 {
		ts := end.Add(-time.Duration(20-i) * time.Minute).Unix()
		lab := samplebatch.Labels{Service: "api", Version: "v3", Host: "h1", PID: 7, Comm: "api"}
		samples = append(samples,
			samplebatch.Sample{TS: ts, Labels: lab, Frames: []string{"main.main", "example.com/api.Handle", "regexp.MustCompile", "regexp.compile"}, Value: 30, PeriodNS: 10_000_000},
			samplebatch.Sample{TS: ts, Labels: lab, Frames: []string{"main.main", "example.com/api.Work"}, Value: 70, PeriodNS: 10_000_000})
	}
	data, err := samplebatch.Encode(samples)
	if err != nil {
		t.Fatal(err)
	}
	b, err := samplebatch.Decode(data, samplebatch.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Ingest(ctx, "offense-test-1", b); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Now = func() time.Time { return end }
	var ids []string
	for run := range 2 {
		rep, err := Analyze(ctx, st, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Services != 1 || len(rep.Findings) == 0 {
			t.Fatalf("run %d: %d services, %d findings", run, rep.Services, len(rep.Findings))
		}
		top := rep.Findings[0]
		// 2,000 samples × 10 ms = 20 s of CPU over the 20 minutes the service was seen.
		if top.Opportunity.Pattern != opportunity.PatternRegexpCompile || top.VersionAfter != "v3" ||
			top.ServiceCores < 20.0/1260 || top.ServiceCores > 20.0/1140 {
			t.Errorf("run %d: top %s %s %q %.5f cores", run, top.Function, top.Opportunity.Pattern, top.VersionAfter, top.ServiceCores)
		}
		if run == 0 {
			for _, f := range rep.Findings {
				ids = append(ids, f.ID)
			}
		}
	}
	recs, err := st.Findings(ctx, model.FindingsQuery{Kind: "opportunity"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(ids) {
		t.Fatalf("stored %d opportunities after two runs, want %d (replaced)", len(recs), len(ids))
	}
	for _, r := range recs {
		var f findings.Finding
		if err := json.Unmarshal(r.Body, &f); err != nil || f.ID != r.ID || f.Opportunity == nil {
			t.Errorf("record %s: %v", r.ID, err)
		}
	}
}
