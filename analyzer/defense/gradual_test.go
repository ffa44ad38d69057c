package defense

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/simulate"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
)

// gradualFleet is one service on 12 hosts for three days: a quiet half day, then one
// release whose regression (self cost +40% of a busy function) ramps in over a day.
func gradualFleet(t testing.TB) *simulate.Fleet {
	c := simulate.DefaultConfig()
	c.Services, c.Hosts, c.Functions = 1, 12, 20
	c.Duration, c.History = 72*time.Hour, 12*time.Hour
	c.Releases, c.RandomRegressions = 1, 0
	c.Seed = 5
	c.CostShifts, c.Refactors, c.Spikes, c.HostFailures, c.SeasonalMix = 0, 0, 0, 0, 0
	probe, err := simulate.New(c)
	if err != nil {
		t.Fatal(err)
	}
	// A function with a share the ramp moves well above the sampling noise.
	fn := probe.Functions(probe.Services()[0])[3]
	c.Regressions = []simulate.RegressionSpec{{Function: fn, Size: 0.4, Release: 1, Ramp: 24 * time.Hour}}
	f, err := simulate.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func gradualConfig(f *simulate.Fleet) Config {
	sc := f.Config()
	cfg := DefaultConfig()
	end := sc.Start.Add(sc.Duration)
	cfg.Now = func() time.Time { return end }
	cfg.Window, cfg.History = 24*time.Hour, 46*time.Hour
	return cfg
}

// checkGradual finds the ramp of the injected function among fs: one gradual finding
// dated near the release, listing it, with its root cause when repo is set, and no
// step findings of the function.
func checkGradual(t *testing.T, fs []findings.Finding, in simulate.Injection, repo bool) *findings.Finding {
	t.Helper()
	var hit *findings.Finding
	for i := range fs {
		fd := &fs[i]
		if err := fd.Validate(); err != nil {
			t.Errorf("invalid finding %s: %v", fd.Function, err)
		}
		if fd.Kind != findings.KindGradual {
			if fd.Function == in.Function {
				// The ramp's staircase belongs to the ramp's finding.
				t.Errorf("step finding %s %+.1f%% at %s within the ramp", fd.Function, 100*fd.RelativeChange, fd.ChangeTime)
			}
			continue
		}
		t.Logf("gradual %s %+.1f%% %s … %s, %.3g/h, releases %v, causes %d", fd.Function, 100*fd.RelativeChange,
			fd.Gradual.Start, fd.Gradual.End, fd.Gradual.SlopePerHour, fd.Gradual.Releases, len(fd.RootCauses))
		if fd.Function != in.Function {
			t.Errorf("gradual finding on %s, injected on %s", fd.Function, in.Function)
			continue
		}
		if hit != nil {
			t.Errorf("two gradual findings of %s", in.Function)
		}
		hit = fd
	}
	if hit == nil {
		t.Fatalf("ramp of %s (%s … %s) not found", in.Function, in.Start, in.End)
	}
	if d := hit.Gradual.Start.Sub(in.Start); d < -6*time.Hour || d > 6*time.Hour {
		t.Errorf("ramp dated %s, injected %s", hit.Gradual.Start, in.Start)
	}
	if !slices.Contains(hit.Gradual.Releases, in.Version) {
		t.Errorf("releases %v lack %s", hit.Gradual.Releases, in.Version)
	}
	if repo {
		var prs []int
		for _, rc := range hit.RootCauses {
			prs = append(prs, rc.PR)
		}
		if len(prs) == 0 || prs[0] != in.Change.PR {
			t.Errorf("root causes %v, want PR #%d first", prs, in.Change.PR)
		}
	}
	return hit
}

// TestAnalyzeGradual: a ramp over a day becomes one stored gradual finding with its
// release and the release's regressing PR ranked first; a later run keeps its id.
func TestAnalyzeGradual(t *testing.T) {
	testenv.LookPath(t, "git", "git")
	f := gradualFleet(t)
	dir := t.TempDir()
	if err := f.WriteRepos(dir); err != nil {
		t.Fatal(err)
	}
	tr := f.Truth()
	in := tr.Regressions[0]
	st := newFleetStore(t, f)
	cfg := gradualConfig(f)
	cfg.Repos = map[string]string{tr.Services[0].Name: filepath.Join(dir, tr.Services[0].Repo)}
	end := cfg.Now()
	var first *findings.Finding
	for _, now := range []time.Time{end.Add(-time.Hour), end} {
		c := cfg
		c.Now = func() time.Time { return now }
		rep, err := Analyze(context.Background(), st, c)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Errors) > 0 {
			t.Errorf("root cause errors: %v", rep.Errors)
		}
		hit := checkGradual(t, rep.Findings, in, true)
		if first == nil {
			first = hit
			continue
		}
		if hit.ID != first.ID || !hit.FirstSeen.Equal(first.FirstSeen) || !hit.LastSeen.After(first.LastSeen) {
			t.Errorf("second run: %s seen %s..%s, first run %s seen %s..%s", hit.ID, hit.FirstSeen, hit.LastSeen, first.ID, first.FirstSeen, first.LastSeen)
		}
	}
	recs := latestFindings(st.put, model.FindingsQuery{Kind: string(findings.KindGradual)})
	if len(recs) != 1 || recs[0].ID != first.ID {
		t.Fatalf("stored gradual records %+v, want one with id %s", recs, first.ID)
	}
}

// TestAnalyzeGradualRealStore: the same through embedded ClickHouse, read back by kind.
func TestAnalyzeGradualRealStore(t *testing.T) {
	realStore := shared.Require(t)
	ctx := context.Background()
	f := gradualFleet(t)
	const svc = "gradual-check"
	b := fleetBatch(f)
	for i := range b.Rows {
		b.Rows[i].Labels.Service = svc
	}
	if _, err := realStore.IngestBulk(ctx, b); err != nil {
		t.Fatal(err)
	}
	in := f.Truth().Regressions[0]
	cfg := gradualConfig(f)
	cfg.Services = []string{svc}
	rep, err := Analyze(ctx, realStore, cfg)
	if err != nil {
		t.Fatal(err)
	}
	hit := checkGradual(t, rep.Findings, in, false)
	recs, err := realStore.Findings(ctx, model.FindingsQuery{Service: svc, Kind: string(findings.KindGradual)})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != hit.ID {
		t.Fatalf("stored gradual records %+v, want %s", recs, hit.ID)
	}
	var back findings.Finding
	if err := json.Unmarshal(recs[0].Body, &back); err != nil || back.Gradual == nil || back.Gradual.SlopePerHour != hit.Gradual.SlopePerHour {
		t.Fatalf("stored body %s: %v", recs[0].Body, err)
	}
}
