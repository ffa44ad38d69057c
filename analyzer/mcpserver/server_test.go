package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/aggregator"
	"github.com/fleetprof/fleetprof/aggregator/storage"
	"github.com/fleetprof/fleetprof/aggregator/storage/storagetest"
	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/skills"
	"github.com/fleetprof/fleetprof/analyzer/tools"
	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// One embedded chDB engine per test process.
var (
	store  *storage.Store
	shared *storagetest.Embedded
	aggURL string
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	e, err := storagetest.OpenEmbedded()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer e.Close()
	shared = e
	if s := e.Store; s != nil {
		store = s
		srv, err := aggregator.New(aggregator.Config{}, s, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		ts := httptest.NewServer(srv.Handler())
		defer ts.Close()
		aggURL = ts.URL
	}
	return m.Run()
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Alice", "GIT_AUTHOR_EMAIL=alice@example.com",
		"GIT_COMMITTER_NAME=Alice", "GIT_COMMITTER_EMAIL=alice@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// setup stores a small fleet profile of the fixture's hot functions (v1, then v2 with
// Join fixed) and returns a toolbox over it and a git copy of the fixture.
func setup(t *testing.T) *tools.Toolbox {
	t.Helper()
	shared.Require(t)
	repo := filepath.Join(t.TempDir(), "hotmod")
	if err := skills.CopyTree("../testdata/hotmod", repo); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "init", "--quiet", "-b", "main")
	git(t, repo, "add", ".")
	git(t, repo, "commit", "--quiet", "-m", "hotmod: hot helpers (#7)")

	now := time.Now()
	stack := func(fs ...string) []string { return append([]string{"main.main"}, fs...) }
	var samples []samplebatch.Sample
	for _, v := range []struct {
		version string
		at      time.Time
		join    int64
	}{{"v1", now.Add(-40 * time.Minute), 300}, {"v2", now.Add(-10 * time.Minute), 30}} {
		l := samplebatch.Labels{Service: "hotmod", Version: v.version, Host: "h1"}
		for _, s := range []struct {
			frames []string
			n      int64
		}{
			{stack("example.com/hotmod.Join", "runtime.concatstrings", "runtime.mallocgc"), v.join},
			{stack("example.com/hotmod.CountEmails", "regexp.MustCompile", "regexp.compile"), 200},
			{stack("example.com/hotmod.Keys", "fmt.Sprintf", "fmt.(*pp).doPrintf"), 100},
			{stack("example.com/hotmod.Squares", "runtime.growslice"), 100},
			{stack("example.com/hotmod.Work"), 300},
		} {
			samples = append(samples, samplebatch.Sample{TS: v.at.Unix(), Labels: l, Frames: s.frames, Value: s.n, PeriodNS: 10_000_000})
		}
	}
	b, err := samplebatch.Encode(samples)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := samplebatch.Decode(b, samplebatch.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Ingest(context.Background(), "mcp-test", batch); err != nil {
		t.Fatal(err)
	}

	// A findings document with one regression.
	f := findings.Finding{Kind: findings.KindRegression, Service: "hotmod", Function: "example.com/hotmod.Join",
		Before: findings.Share{Value: 0.01}, After: findings.Share{Value: 0.3}, AbsoluteChange: 0.29, PValue: 1e-9}
	f.ID = findings.ComputeID(&f)
	// And one stored in the aggregator.
	g := f
	g.Function = "example.com/hotmod.Keys"
	g.ID = findings.ComputeID(&g)
	body, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutFindings(context.Background(), []model.FindingRecord{{ID: g.ID, Kind: string(g.Kind), Service: g.Service, Created: now, Body: body}}); err != nil {
		t.Fatal(err)
	}
	ff := filepath.Join(t.TempDir(), "findings.json")
	fh, err := os.Create(ff)
	if err != nil {
		t.Fatal(err)
	}
	if err := findings.Encode(fh, now, []findings.Finding{f}); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	tb, err := tools.New(tools.Config{Aggregator: aggURL, Repo: repo, FindingsFile: ff, Docs: skills.Default().Docs()})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestClientListsAndCallsEveryTool(t *testing.T) {
	tb := setup(t)
	ctx := context.Background()
	srv := New(tb, Config{})
	ct, st := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := client.Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()

	list, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]*mcp.Tool{}
	for _, tl := range list.Tools {
		listed[tl.Name] = tl
	}
	for _, want := range Tools {
		tl, ok := listed[want.Name]
		switch {
		case !ok:
			t.Errorf("tool %s not listed", want.Name)
		case tl.Description == "" || tl.InputSchema == nil || tl.OutputSchema == nil:
			t.Errorf("tool %s lacks description or schemas", want.Name)
		}
	}
	if len(list.Tools) != len(Tools) {
		t.Errorf("listed %d tools, want %d", len(list.Tools), len(Tools))
	}

	call := func(name string, args any, out any) {
		t.Helper()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.IsError {
			var msg strings.Builder
			for _, c := range res.Content {
				if tc, ok := c.(*mcp.TextContent); ok {
					msg.WriteString(tc.Text)
				}
			}
			t.Fatalf("%s: tool error: %s", name, msg.String())
		}
		raw, err := json.Marshal(res.StructuredContent)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s: decode %s: %v", name, raw, err)
		}
	}
	sel := map[string]any{"service": "hotmod"}
	v1 := map[string]any{"service": "hotmod", "filters": []string{"version=v1"}}
	v2 := map[string]any{"service": "hotmod", "filters": []string{"version=v2"}}

	var top tools.TopOutput
	call("profile_top", map[string]any{"selection": sel, "limit": 3}, &top)
	if top.Total != 1000+730 || len(top.Functions) != 3 {
		t.Errorf("profile_top: total %d, %d functions", top.Total, len(top.Functions))
	}
	var flame tools.FlameOutput
	call("profile_flame", map[string]any{"selection": sel}, &flame)
	if len(flame.Nodes) < 5 || flame.Nodes[0].Name != "root" || flame.Nodes[1].Name != "main.main" {
		t.Errorf("profile_flame: %+v", flame.Nodes)
	}
	var diff tools.DiffOutput
	call("profile_diff", map[string]any{"base": v1, "cmp": v2}, &diff)
	if diff.BaseTotal != 1000 || diff.CmpTotal != 730 || len(diff.Movers) == 0 {
		t.Errorf("profile_diff: %+v", diff)
	}
	var fs tools.FindingsOutput
	call("findings", map[string]any{"kind": "regression"}, &fs)
	if len(fs.Findings) != 2 { // one from the file, one from the aggregator
		t.Errorf("findings: %d, want 2", len(fs.Findings))
	}
	var ops tools.OpportunitiesOutput
	call("opportunities", map[string]any{"selection": v1}, &ops)
	var joinID string
	for _, f := range ops.Findings {
		if f.Function == "example.com/hotmod.Join" && f.Opportunity.Pattern == "go-string-concat-loop" {
			joinID = f.ID
		}
	}
	if len(ops.Opportunities) < 4 || joinID == "" {
		t.Errorf("opportunities: %+v", ops.Opportunities)
	}
	var costs tools.CostsOutput
	call("function_costs", map[string]any{"selection": v1, "cores": 10}, &costs)
	if len(costs.Functions) == 0 || costs.Functions[0].Function != "main.main" || costs.Functions[0].Inclusive.Cores != 10 {
		t.Errorf("function_costs: %+v", costs.Functions)
	}
	var loc tools.CodeOutput
	call("find_function", map[string]any{"function": "example.com/hotmod.Join"}, &loc)
	if len(loc.Locations) != 1 || loc.Locations[0].File != "hot.go" {
		t.Errorf("find_function: %+v", loc)
	}
	var callers tools.CodeOutput
	call("callers", map[string]any{"function": "example.com/hotmod.Join"}, &callers)
	if len(callers.Locations) < 2 { // TestJoin and BenchmarkHot
		t.Errorf("callers: %+v", callers)
	}
	var hist tools.HistoryOutput
	call("change_history", map[string]any{}, &hist)
	if len(hist.Changes) != 1 || hist.Changes[0].PR != 7 {
		t.Errorf("change_history: %+v", hist)
	}
	var show tools.ShowOutput
	call("show_commit", map[string]any{"commit": "HEAD"}, &show)
	if !strings.Contains(show.Patch, "hot helpers") {
		t.Errorf("show_commit: %.200s", show.Patch)
	}
	var docs tools.DocsOutput
	call("skill_docs", map[string]any{}, &docs)
	if len(docs.Skills) < 2 {
		t.Errorf("skill_docs: %+v", docs)
	}
	var exp tools.ExperimentOutput
	call("experiment", map[string]any{"before": v1, "after": v2, "function": "example.com/hotmod.Join"}, &exp)
	if !exp.Significant || exp.Change >= 0 {
		t.Errorf("experiment: %+v", exp)
	}
	var res ResolveOutput
	call("resolve_finding", map[string]any{"id": joinID}, &res)
	if res.Resolution == nil || res.Resolution.Skill != "go-source-fix" || !strings.Contains(res.Resolution.Body, "strings.Builder") {
		t.Errorf("resolve_finding: skipped %q, %+v", res.Skipped, res.Resolution)
	}

	// A bad input is a tool error, not a protocol error.
	bad, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "profile_top", Arguments: map[string]any{"selection": map[string]any{"from": "yesterday"}}})
	if err != nil || !bad.IsError {
		t.Errorf("bad time: err %v, result %+v", err, bad)
	}
}
