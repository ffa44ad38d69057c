package defense

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/storage/storagetest"
	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/simulate"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// One chDB engine per process: the store is opened once for the test binary.
var shared *storagetest.Embedded

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	e, err := storagetest.OpenEmbedded()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer e.Close()
	shared = e
	return m.Run()
}

// fleetBatch is the fleet's samples as one decoded sample batch.
func fleetBatch(f *simulate.Fleet) *samplebatch.Batch {
	b := &samplebatch.Batch{Stacks: map[uint64][]string{}}
	for i := range f.Buckets() {
		for _, s := range f.Bucket(i).Samples() {
			id := samplebatch.StackID(s.Frames)
			b.Stacks[id] = s.Frames
			b.Rows = append(b.Rows, samplebatch.Row{TS: s.TS, Labels: s.Labels, StackID: id, Value: s.Value, PeriodNS: s.PeriodNS})
		}
	}
	return b
}

// TestAnalyzeRealStore runs the whole path: simulated samples → embedded ClickHouse →
// Analyze (rollup, profiles, versions) → root cause from the generated repository →
// findings stored and read back.
func TestAnalyzeRealStore(t *testing.T) {
	realStore := shared.Require(t)
	testenv.LookPath(t, "git", "git")
	ctx := context.Background()
	f := smallFleet(t)
	if _, err := realStore.IngestBulk(ctx, fleetBatch(f)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := f.WriteRepos(dir); err != nil {
		t.Fatal(err)
	}
	tr := f.Truth()
	cfg := testConfig(f)
	cfg.Repos = map[string]string{tr.Services[0].Name: filepath.Join(dir, tr.Services[0].Repo)}
	rep, err := Analyze(ctx, realStore, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) > 0 {
		t.Errorf("root cause errors: %v", rep.Errors)
	}
	for _, fd := range rep.Findings {
		t.Logf("finding %s %+.2f%% at %s %s→%s", fd.Function, 100*fd.RelativeChange, fd.ChangeTime, fd.VersionBefore, fd.VersionAfter)
	}
	checkRootCause(t, rep.Findings, tr.Regressions[0])
	recs, err := realStore.Findings(ctx, model.FindingsQuery{Service: tr.Services[0].Name, Kind: "regression"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(rep.Findings) {
		t.Fatalf("read back %d findings, stored %d", len(recs), len(rep.Findings))
	}
	got := map[string]bool{}
	for _, r := range recs {
		var fd findings.Finding
		if err := json.Unmarshal(r.Body, &fd); err != nil {
			t.Fatalf("record %s: %v", r.ID, err)
		}
		if fd.ID != r.ID {
			t.Errorf("record %s holds finding %s", r.ID, fd.ID)
		}
		got[fd.Function] = true
	}
	if !got[tr.Regressions[0].Function] && len(rep.Findings) > 0 && !got[rep.Findings[0].Function] {
		t.Errorf("stored findings %v miss the regression", got)
	}
	// A second run replaces the same findings (same ids) instead of adding more.
	if _, err := Analyze(ctx, realStore, cfg); err != nil {
		t.Fatal(err)
	}
	again, err := realStore.Findings(ctx, model.FindingsQuery{Service: tr.Services[0].Name})
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(recs) {
		t.Errorf("after a second run %d findings, want %d", len(again), len(recs))
	}
}

// TestAnalyzeRealStoreMerge: an earlier run stored the regression one bucket off and
// without its version; two runs 10 minutes apart over the same data in embedded
// ClickHouse then keep ONE stored finding (the earlier id and first_seen) whose
// last_seen advances.
func TestAnalyzeRealStoreMerge(t *testing.T) {
	realStore := shared.Require(t)
	ctx := context.Background()
	f := smallFleet(t)
	// Its own service name: the shared store also holds TestAnalyzeRealStore's fleet.
	const svc = "merge-check"
	b := fleetBatch(f)
	for i := range b.Rows {
		b.Rows[i].Labels.Service = svc
	}
	if _, err := realStore.IngestBulk(ctx, b); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(f)
	cfg.Services = []string{svc}
	end := cfg.Now()
	in := f.Truth().Regressions[0]
	isInjected := func(fd *findings.Finding) bool {
		return fd.Function == in.Function || slices.Contains(fd.DedupGroup, in.Function)
	}
	// What an earlier run stored: the change a bucket earlier, no version yet.
	dry := cfg
	dry.Store = false
	rep, err := Analyze(ctx, realStore, dry)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(rep.Findings, func(fd findings.Finding) bool { return isInjected(&fd) })
	if i < 0 {
		t.Fatalf("injected regression of %s not found", in.Function)
	}
	old := rep.Findings[i]
	old.ChangeTime, old.VersionAfter = old.ChangeTime.Add(-cfg.Step), ""
	old.ID = findings.ComputeID(&old)
	old.FirstSeen = end.Add(-40 * time.Minute)
	old.LastSeen = old.FirstSeen
	body, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	if err := realStore.PutFindings(ctx, []model.FindingRecord{{ID: old.ID, Kind: "regression", Service: svc, Created: old.FirstSeen, Body: body}}); err != nil {
		t.Fatal(err)
	}
	last := old.LastSeen
	for _, now := range []time.Time{end.Add(-10 * time.Minute), end} {
		cfg.Now = func() time.Time { return now }
		rep, err := Analyze(ctx, realStore, cfg)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := realStore.Findings(ctx, model.FindingsQuery{Service: svc, Kind: "regression"})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != len(rep.Findings) {
			t.Errorf("run at %s found %d, store holds %d", now, len(rep.Findings), len(recs))
		}
		var got []findings.Finding
		for _, r := range recs {
			var fd findings.Finding
			if err := json.Unmarshal(r.Body, &fd); err != nil {
				t.Fatalf("record %s: %v", r.ID, err)
			}
			if isInjected(&fd) {
				t.Logf("run at %s: stored %s %s at %s (%s), seen %s..%s", now, fd.ID, fd.Function, fd.ChangeTime, fd.VersionAfter, fd.FirstSeen, fd.LastSeen)
				got = append(got, fd)
			}
		}
		if len(got) != 1 {
			t.Fatalf("run at %s: injected regression stored %d times, want once", now, len(got))
		}
		if fd := got[0]; fd.ID != old.ID || !fd.FirstSeen.Equal(old.FirstSeen) || !fd.LastSeen.After(last) {
			t.Errorf("run at %s stored %s seen %s..%s; want id %s, first seen %s, last seen after %s", now, fd.ID, fd.FirstSeen, fd.LastSeen, old.ID, old.FirstSeen, last)
		}
		last = got[0].LastSeen
	}
}
