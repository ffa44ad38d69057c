package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/pipeline"
	"github.com/fleetprof/fleetprof/analyzer/simulate"
	"github.com/fleetprof/fleetprof/internal/testenv"
)

// TestDemo runs `fleetprof demo` against a live `up --no-agent`: the injected
// regression's finding must name the simulated function and its pull request, be
// stored in the up (the UI's findings view reads it there), and the PR bot output
// (title, body, JSON, patch) must be in the directory the demo printed.
func TestDemo(t *testing.T) {
	if !chdbInstalled() {
		testenv.Skip(t, testenv.MissingTool, "chDB library not installed: run scripts/fetch-chdb.sh (or make setup)")
	}
	testenv.LookPath(t, "git", "git")
	bin := buildFleetprof(t)
	dir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	httpAddr, _, _ := startUp(ctx, t, bin, dir, "--analyze-interval", "0")

	out := filepath.Join(t.TempDir(), "demo")
	stdout, stderr, err := runBin(ctx, bin, "demo", "--data", dir, "--out", out)
	if err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	t.Logf("fleetprof demo:\n%s%s", stdout, stderr)

	tr, err := simulate.ReadTruth(filepath.Join(out, "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Regressions) != 1 || tr.Regressions[0].Change == nil {
		t.Fatalf("truth: %d regressions, want 1 with its PR", len(tr.Regressions))
	}
	want := tr.Regressions[0]
	ff, err := os.Open(filepath.Join(out, "findings.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer ff.Close()
	doc, err := findings.Decode(ff)
	if err != nil {
		t.Fatal(err)
	}
	var got *findings.Finding
	for i := range doc.Findings {
		if doc.Findings[i].Function == want.Function {
			got = &doc.Findings[i]
		}
	}
	if got == nil {
		t.Fatalf("no finding for the injected %s in %d findings", want.Function, len(doc.Findings))
	}
	if len(got.RootCauses) == 0 || got.RootCauses[0].PR != want.Change.PR {
		t.Fatalf("finding for %s: root causes %+v, want PR #%d first", want.Function, got.RootCauses, want.Change.PR)
	}
	for _, s := range []string{want.Function, "PR #" + strconv.Itoa(want.Change.PR), "http://" + httpAddr + "/?view=findings", filepath.Join(out, got.ID)} {
		if !strings.Contains(stdout, s) {
			t.Errorf("demo output lacks %q", s)
		}
	}
	// Stored in the up: the UI's findings view and the CLI read it from there.
	if body := get(ctx, "http://"+httpAddr+"/api/v1/findings?kind=regression&service="+want.Service+"&from=now-1h"); !strings.Contains(body, `"id":"`+got.ID+`"`) {
		t.Errorf("finding %s not stored in the up: %s", got.ID, body)
	}
	prDir := filepath.Join(out, got.ID)
	var rec struct {
		Schema     string `json:"schema"`
		Resolution struct {
			Skill        string `json:"skill"`
			RevertCommit string `json:"revert_commit"`
		} `json:"resolution"`
	}
	b, err := os.ReadFile(filepath.Join(prDir, "resolution.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	res := rec.Resolution
	if rec.Schema != pipeline.RecordSchema || res.Skill != "regression-mitigation" || res.RevertCommit != got.RootCauses[0].Commit {
		t.Errorf("resolution.json: skill %q reverting %s, want regression-mitigation reverting %s", res.Skill, res.RevertCommit, got.RootCauses[0].Commit)
	}
	for _, f := range []string{"title.txt", "body.md"} {
		if fi, err := os.Stat(filepath.Join(prDir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("PR file %s: %v", f, err)
		}
	}
	patches, _ := filepath.Glob(filepath.Join(prDir, "*.patch"))
	if len(patches) != 1 {
		t.Errorf("PR dir %s has %d patches, want 1", prDir, len(patches))
	}
	body, _ := os.ReadFile(filepath.Join(prDir, "body.md"))
	if !strings.Contains(string(body), "#"+strconv.Itoa(want.Change.PR)) {
		t.Errorf("PR body does not name #%d:\n%s", want.Change.PR, body)
	}
}

func TestShortDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{12 * time.Hour, "12h"},
		{10 * time.Minute, "10m"},
		{90 * time.Minute, "1h30m"},
		{90 * time.Second, "1m30s"},
		{5 * time.Second, "5s"},
	} {
		if got := shortDuration(tc.d); got != tc.want {
			t.Errorf("shortDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
