package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/skills"
)

// noFindingsAggregator answers every API call with 404, like an aggregator without a
// findings endpoint; the pipeline then works from the findings file alone.
func noFindingsAggregator(t *testing.T) string {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]string{"error": "no route " + r.URL.Path})
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

func gitCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Alice", "GIT_AUTHOR_EMAIL=alice@example.com",
		"GIT_COMMITTER_NAME=Alice", "GIT_COMMITTER_EMAIL=alice@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeFindings(t *testing.T, fs ...findings.Finding) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "findings.json")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := findings.Encode(f, time.Time{}, fs); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPipelineRunCLI(t *testing.T) {
	agg := noFindingsAggregator(t)
	repo := filepath.Join(t.TempDir(), "hotmod")
	if err := skills.CopyTree("../../analyzer/testdata/hotmod", repo); err != nil {
		t.Fatal(err)
	}
	gitCmd(t, repo, "init", "--quiet", "-b", "main")
	gitCmd(t, repo, "add", ".")
	gitCmd(t, repo, "commit", "--quiet", "-m", "hotmod: hot helpers (#7)")
	head := gitCmd(t, repo, "rev-parse", "HEAD")

	opp := findings.Finding{Kind: findings.KindOpportunity, Service: "hotmod", Function: "example.com/hotmod.Keys",
		Before:      findings.Share{Value: 0.2},
		Opportunity: &findings.Opportunity{Pattern: "go-fmt-sprintf-hot", EstimatedSavingShare: 0.1, Confidence: 0.7}}
	opp.ID = findings.ComputeID(&opp)
	reg := findings.Finding{Kind: findings.KindRegression, Service: "hotmod", Function: "example.com/hotmod.Join",
		Before: findings.Share{Value: 0.1}, After: findings.Share{Value: 0.2}, AbsoluteChange: 0.1,
		RootCauses: []findings.RootCause{{Commit: head, PR: 7, Author: "Alice <alice@example.com>", Title: "hot helpers", Confidence: 0.9}}}
	reg.ID = findings.ComputeID(&reg)
	ff := writeFindings(t, opp, reg)

	out := t.TempDir()
	stdout, err := cli(t, runPipeline, "run", "--finding", opp.ID, "--aggregator", agg, "--repo", repo,
		"--findings", ff, "--out", out, "--branch", "fleetprof/keys")
	if err != nil {
		t.Fatalf("pipeline run: %v\n%s", err, stdout)
	}
	var sum pipelineSummary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("summary %q: %v", stdout, err)
	}
	if sum.Skill != "go-source-fix" || sum.Patch == "" || sum.Branch != "fleetprof/keys" {
		t.Fatalf("summary %+v", sum)
	}
	for _, f := range []string{"title.txt", "body.md", "resolution.json", sum.Patch} {
		if _, err := os.Stat(filepath.Join(sum.Dir, f)); err != nil {
			t.Error(err)
		}
	}
	if got := gitCmd(t, repo, "show", "fleetprof/keys:hot.go"); !strings.Contains(got, "strconv.Itoa(id)") {
		t.Errorf("branch fleetprof/keys lacks the rewrite:\n%s", got)
	}

	logins := filepath.Join(t.TempDir(), "logins")
	if err := os.WriteFile(logins, []byte("Alice@example.com alice-gh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, err = cli(t, runPipeline, "run", "--kind", "regression", "--aggregator", agg, "--repo", repo, "--findings", ff, "--out", out, "--logins", logins)
	if err != nil {
		t.Fatalf("pipeline run regression: %v\n%s", err, stdout)
	}
	sum = pipelineSummary{}
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil || sum.Skill != "regression-mitigation" {
		t.Fatalf("summary %q: %v", stdout, err)
	}
	body, err := os.ReadFile(filepath.Join(sum.Dir, "body.md"))
	if err != nil || !strings.HasPrefix(string(body), "@alice-gh — ") || !strings.Contains(string(body), "git revert "+head) {
		t.Errorf("defense body (%v):\n%s", err, body)
	}
}

func TestPipelineUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"walk"},
		{"run", "--out", "x"},
		{"run", "--finding", "a", "--kind", "opportunity", "--out", "x"},
		{"run", "--kind", "bogus", "--out", "x"},
		{"run", "--kind", "opportunity"},
		{"run", "--kind", "opportunity", "--out", "x", "--repo", "/nonexistent"},
		{"run", "--kind", "opportunity", "--out", "x", "extra"},
	} {
		_, err := cli(t, runPipeline, args...)
		var u usageError
		if !asUsage(err, &u) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

func asUsage(err error, u *usageError) bool { return errors.As(err, u) }
