package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/rootcause"
	"github.com/fleetprof/fleetprof/analyzer/tools"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// regressionRepo is a service repository with three pull requests; #11 (Bob) makes
// parse slower, #12 (Carol) only touches docs.
func regressionRepo(t *testing.T, t0 time.Time) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "svc")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(repo, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	commit := func(author, msg string, at time.Time) {
		env := gitEnv(author, at)
		run(t, repo, env, "git", "add", ".")
		run(t, repo, env, "git", "commit", "--quiet", "-m", msg)
	}
	write("go.mod", "module example.com/svc\n\ngo 1.26.0\n")
	write("svc.go", `package svc

import "strings"

// Handle serves one request.
func Handle(req string) string { return encode(parse(req)) }

func parse(req string) []string { return strings.Fields(req) }

func encode(fs []string) string { return strings.Join(fs, ",") }
`)
	run(t, repo, nil, "git", "init", "--quiet", "-b", "main")
	commit("Alice Author <alice@example.com>", "svc: request handling (#10)", t0)
	write("svc.go", `package svc

import (
	"regexp"
	"strings"
)

// Handle serves one request.
func Handle(req string) string { return encode(parse(req)) }

func parse(req string) []string {
	var out []string
	for _, f := range strings.Fields(req) {
		if regexp.MustCompile("^[a-z]+$").MatchString(f) {
			out = append(out, f)
		}
	}
	return out
}

func encode(fs []string) string { return strings.Join(fs, ",") }
`)
	commit("Bob Builder <bob@example.com>", "parse: accept only lowercase words (#11)", t0.Add(time.Hour))
	write("README.md", "# svc\n")
	commit("Carol Writer <carol@example.com>", "docs: add a readme (#12)", t0.Add(2*time.Hour))
	return repo
}

func TestDefense(t *testing.T) {
	url := needStore(t)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	repo := regressionRepo(t, t0)
	changeAt := t0.Add(3 * time.Hour)

	// Fleet samples: parse's share triples after v2 rolls out.
	var samples []samplebatch.Sample
	parse := []string{"main.main", "example.com/svc.Handle", "example.com/svc.parse"}
	encode := []string{"main.main", "example.com/svc.Handle", "example.com/svc.encode"}
	for _, s := range []struct {
		at            time.Time
		version       string
		parse, encode int64
	}{{changeAt.Add(-time.Hour), "v1", 100, 900}, {changeAt.Add(time.Hour), "v2", 300, 650}} {
		l := samplebatch.Labels{Service: "svc", Version: s.version, Host: "h1"}
		samples = append(samples,
			samplebatch.Sample{TS: s.at.Unix(), Labels: l, Frames: parse, Value: s.parse, PeriodNS: 10_000_000},
			samplebatch.Sample{TS: s.at.Unix(), Labels: l, Frames: encode, Value: s.encode, PeriodNS: 10_000_000})
		if s.version == "v2" {
			// Handle's own work, so the movers' changes differ in size.
			samples = append(samples, samplebatch.Sample{TS: s.at.Unix(), Labels: l, Frames: parse[:2], Value: 50, PeriodNS: 10_000_000})
		}
	}
	ingest(t, "svc-defense", samples)

	// Root cause through analyzer/rootcause's git layer and ranking.
	r := rootcause.Repo{Dir: repo}
	first, err := r.Resolve(ctx, "HEAD~2")
	if err != nil {
		t.Fatal(err)
	}
	changes, err := r.Changes(ctx, first, "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	var cands []rootcause.Candidate
	for _, c := range changes {
		cands = append(cands, rootcause.Candidate{Change: c, DeployedAt: changeAt.Add(-10 * time.Minute)})
	}
	ranked, err := rootcause.Rank(rootcause.Regression{Function: "example.com/svc.parse", ChangeTime: changeAt,
		Stacks: []rootcause.StackDelta{{Frames: parse, Before: 100, After: 300}, {Frames: encode, Before: 900, After: 700}}},
		cands, rootcause.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	f := findings.Finding{
		Kind: findings.KindRegression, Service: "svc", Function: "example.com/svc.parse", Domain: "example.com/svc",
		Before:         findings.Share{Value: 0.1, Lo: 0.082, Hi: 0.118, Samples: 1000},
		After:          findings.Share{Value: 0.3, Lo: 0.272, Hi: 0.328, Samples: 1000},
		AbsoluteChange: 0.2, RelativeChange: 2, PValue: 1e-12, ServiceCores: 10, EstimatedCores: 2,
		ChangeTime: changeAt, WindowStart: changeAt.Add(-2 * time.Hour), WindowEnd: changeAt.Add(2 * time.Hour),
		VersionBefore: "v1", VersionAfter: "v2",
		RootCauses:           ranked.RootCauses(),
		RepresentativeStacks: []findings.Stack{{Frames: parse, Share: 0.3}},
	}
	f.ID = findings.ComputeID(&f)
	if len(f.RootCauses) == 0 {
		t.Fatalf("rootcause named no change: %+v", ranked)
	}
	ff := filepath.Join(t.TempDir(), "findings.json")
	fh, err := os.Create(ff)
	if err != nil {
		t.Fatal(err)
	}
	if err := findings.Encode(fh, t0, []findings.Finding{f}); err != nil {
		t.Fatal(err)
	}
	fh.Close()

	tb, err := tools.New(tools.Config{Aggregator: url, Repo: repo, FindingsFile: ff})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	res, err := Run(ctx, Config{Tools: tb, Out: out}, Request{Kind: findings.KindRegression})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Resolution == nil {
		t.Fatalf("results %+v", res)
	}
	if len(res[0].Warnings) > 0 {
		t.Errorf("warnings: %v", res[0].Warnings)
	}
	body, err := os.ReadFile(filepath.Join(res[0].Dir, "body.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Bob Builder — fleetprof", "#11", "git revert " + changes[0].Commit, "`example.com/svc.parse` ← on the regressed stacks", "## Flame diff"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %q", want)
		}
	}
	if strings.Contains(string(body), "@Bob") {
		t.Error("body mentions @Bob Builder: a display name is not a login")
	}
	if got := res[0].Resolution.Addressee; got != "Bob Builder <bob@example.com>" {
		t.Errorf("addressee %q, want Bob", got)
	}
	golden(t, "defense.md", string(body))

	// The attached revert applies with git am and restores the old parse.
	if res[0].Patch == "" {
		t.Fatal("no revert patch")
	}
	clone := filepath.Join(t.TempDir(), "clone")
	env := gitEnv("Reviewer <rev@example.com>", t0)
	run(t, "", env, "git", "clone", "--quiet", repo, clone)
	run(t, clone, env, "git", "am", "--quiet", filepath.Join(res[0].Dir, res[0].Patch))
	if src, _ := os.ReadFile(filepath.Join(clone, "svc.go")); strings.Contains(string(src), "regexp") {
		t.Errorf("revert left the regexp:\n%s", src)
	}
	run(t, clone, goEnv, "go", "build", "./...")
}
