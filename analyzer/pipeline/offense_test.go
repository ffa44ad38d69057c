package pipeline

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/opportunity"
	"github.com/fleetprof/fleetprof/analyzer/skills"
	"github.com/fleetprof/fleetprof/analyzer/tools"
)

const fixture = "../testdata/hotmod"

var goEnv = []string{"GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=off"}

// fixtureRepo copies the fixture module into a new git repository.
func fixtureRepo(t *testing.T) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "hotmod")
	if err := skills.CopyTree(fixture, repo); err != nil {
		t.Fatal(err)
	}
	env := gitEnv("Alice Author <alice@example.com>", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	run(t, repo, env, "git", "init", "--quiet", "-b", "main")
	run(t, repo, env, "git", "add", ".")
	run(t, repo, env, "git", "commit", "--quiet", "-m", "hotmod: hot helpers (#7)")
	return repo
}

// site is an injected anti-pattern: the function and the pattern the profile must show.
type site struct {
	function, pattern, transform string
	// gone is source the function must no longer contain after the patch.
	gone string
}

var sites = []site{
	{"example.com/hotmod.CountEmails", opportunity.PatternRegexpCompile, "hoist-regexp", "regexp.MustCompile"},
	{"example.com/hotmod.Keys", opportunity.PatternSprintf, "sprintf-itoa", "fmt.Sprintf"},
	{"example.com/hotmod.Squares", opportunity.PatternSliceGrowth, "prealloc-slice", "var sq []int"},
	{"example.com/hotmod.Join", opportunity.PatternStringConcat, "string-builder", "s +="},
}

func TestOffenseEndToEnd(t *testing.T) {
	url := needStore(t)
	ctx := context.Background()
	repo := fixtureRepo(t)

	// Profile the fixture's hot code for real.
	prof := filepath.Join(t.TempDir(), "cpu.pprof")
	run(t, repo, goEnv, "go", "test", "-run", "^$", "-bench", "BenchmarkHot", "-benchtime", "2s",
		"-cpuprofile", prof, "-o", filepath.Join(t.TempDir(), "hotmod.test"))
	ingestPprof(t, prof, "hotmod")

	reg := skills.Default()
	tb, err := tools.New(tools.Config{Aggregator: url, Repo: repo, Docs: reg.Docs()})
	if err != nil {
		t.Fatal(err)
	}
	ops, err := tb.Opportunities(ctx, tools.OpportunitiesInput{Selection: tools.SelectionInput{Service: "hotmod"}, Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	rank := map[[2]string]int{}
	for i, o := range ops.Opportunities {
		t.Logf("#%d %-24s %-40s share %.2f%% saving %.2f%%", i+1, o.Pattern, o.Function, o.Share*100, o.SavingShare*100)
		rank[[2]string{o.Pattern, o.Function}] = i + 1
	}
	if len(ops.Opportunities) == 0 {
		t.Fatal("no opportunities ranked")
	}
	if top := ops.Opportunities[0]; !strings.HasPrefix(top.Function, "example.com/hotmod.") {
		t.Errorf("top opportunity %s in %s is not an injected pattern", top.Pattern, top.Function)
	}
	for _, s := range sites {
		r := rank[[2]string{s.pattern, s.function}]
		if r == 0 {
			t.Errorf("opportunity %s in %s not ranked", s.pattern, s.function)
		} else if r > 10 {
			t.Errorf("opportunity %s in %s ranked #%d, want top 10", s.pattern, s.function, r)
		}
	}

	out := t.TempDir()
	res, err := Run(ctx, Config{Tools: tb, Skills: reg, Out: out, Branch: "fleetprof/perf",
		Selection: tools.SelectionInput{Service: "hotmod"}}, Request{Kind: findings.KindOpportunity, Limit: 12})
	if err != nil {
		t.Fatal(err)
	}
	patched := map[string]Result{}
	for _, r := range res {
		if r.Patch == "" {
			t.Logf("no patch for %s %s: %s", r.Finding.Opportunity.Pattern, r.Finding.Function, r.Skipped)
			continue
		}
		patched[r.Finding.Opportunity.Pattern+" "+r.Finding.Function] = r
	}
	for _, s := range sites {
		r, ok := patched[s.pattern+" "+s.function]
		if !ok {
			t.Errorf("no patch for %s in %s", s.pattern, s.function)
			continue
		}
		t.Run(s.transform, func(t *testing.T) {
			checkPatch(t, repo, r, s)
		})
	}
}

// checkPatch applies the patch with git am to a fresh clone, builds and tests it, and
// checks the anti-pattern is gone.
func checkPatch(t *testing.T, repo string, r Result, s site) {
	for _, f := range []string{"title.txt", "body.md", "resolution.json", r.Patch} {
		if _, err := os.Stat(filepath.Join(r.Dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	body, _ := os.ReadFile(filepath.Join(r.Dir, "body.md"))
	for _, want := range []string{"## Summary", "## Evidence", "## Changes", "## Verification", "go build ./...", "Suggested reviewers: Alice Author <alice@example.com>", s.transform} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	clone := filepath.Join(t.TempDir(), "clone")
	env := gitEnv("Reviewer <rev@example.com>", time.Now())
	run(t, "", env, "git", "clone", "--quiet", repo, clone)
	run(t, clone, env, "git", "am", "--quiet", filepath.Join(r.Dir, r.Patch))
	run(t, clone, goEnv, "go", "build", "./...")
	run(t, clone, goEnv, "go", "vet", "./...")
	run(t, clone, goEnv, "go", "test", "-count=1", "./...")
	src := funcSource(t, filepath.Join(clone, "hot.go"), s.function[strings.LastIndexByte(s.function, '.')+1:])
	if strings.Contains(src, s.gone) {
		t.Errorf("%s still contains %q after the patch:\n%s", s.function, s.gone, src)
	}
	if r.Branch == "" {
		t.Error("no branch created")
	} else {
		run(t, repo, nil, "git", "rev-parse", "--verify", "refs/heads/"+r.Branch)
	}
}

func funcSource(t *testing.T, path, name string) string {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == name {
			return string(src[fset.Position(fd.Pos()).Offset:fset.Position(fd.End()).Offset])
		}
	}
	t.Fatalf("no function %s in %s", name, path)
	return ""
}

// TestOffenseGolden resolves fixed opportunities on the fixture (no profiling) and
// compares the PR bodies and patches with golden files.
func TestOffenseGolden(t *testing.T) {
	ctx := context.Background()
	repo := fixtureRepo(t)
	tb, err := tools.New(tools.Config{Aggregator: "http://127.0.0.1:1", Repo: repo})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	for i, s := range sites {
		f := findings.Finding{
			Kind: findings.KindOpportunity, Service: "hotmod", Function: s.function,
			Before:       findings.Share{Value: 0.2 + 0.01*float64(i), Samples: 10000},
			ServiceCores: 40, WindowStart: now.Add(-time.Hour), WindowEnd: now,
			RepresentativeStacks: []findings.Stack{{Frames: []string{"main.main", s.function, "runtime.mallocgc"}, Share: 0.1}},
			Opportunity:          &findings.Opportunity{Pattern: s.pattern, EstimatedSavingShare: 0.1, EstimatedSavingCores: 4, Confidence: 0.8},
		}
		f.ID = findings.ComputeID(&f)
		c, warns := Gather(ctx, tb, f)
		if len(warns) > 0 {
			t.Fatalf("warnings: %v", warns)
		}
		res, skipped := Resolve(ctx, skills.Default(), c)
		if res == nil {
			t.Fatalf("%s: no resolution: %s", s.function, skipped)
		}
		r := Result{Finding: f, Resolution: res}
		cfg := Config{Tools: tb, Out: t.TempDir(), Now: func() time.Time { return now }}
		if err := Write(ctx, cfg, &r, ""); err != nil {
			t.Fatal(err)
		}
		body, _ := os.ReadFile(filepath.Join(r.Dir, "body.md"))
		golden(t, "offense-"+s.transform+".md", string(body))
		patch, _ := os.ReadFile(filepath.Join(r.Dir, r.Patch))
		golden(t, "offense-"+s.transform+".patch", string(patch))
	}
}
