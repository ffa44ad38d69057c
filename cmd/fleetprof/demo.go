package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/simulate"
)

func init() {
	register("demo", "two-minute tour against a running up: a release regresses one function, the finding names its PR, the PR bot writes the fix", runDemo)
}

// The demo fleet: README's first-session fleet (one service, 12 hosts, a day, one
// release v2 that regresses one function), analyzed over the half day the release
// falls in with the half day before it as history, in 10-minute steps. Sending it
// takes about a minute on a loaded 2-core host; the analysis a few seconds.
const (
	demoHosts     = 12
	demoFunctions = 20
	demoSeed      = 3
	demoWindow    = 12 * time.Hour
	demoHistory   = 11 * time.Hour
	demoStep      = 10 * time.Minute
	demoOutDir    = "fleetprof-demo"
)

// demoResult is what a demo run found and wrote.
type demoResult struct {
	Finding  findings.Finding
	Want     simulate.Injection
	UI       string
	Pipeline pipelineSummary
}

func runDemo(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	dataDir := fs.String("data", defaultDataDir, "data directory of the running fleetprof up the demo feeds")
	out := fs.String("out", demoOutDir, "directory for the demo's findings and the PR bot output")
	seed := fs.Int64("seed", demoSeed, "random seed of the simulated fleet (which function regresses)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	_, err := demo(ctx, *dataDir, *out, *seed, stdout)
	return err
}

// demo simulates the fleet into the up running with dataDir, analyzes it through
// that up, and runs the PR pipeline for the injected regression's finding, with the
// simulate, analyze and pipeline run commands' own code.
func demo(ctx context.Context, dataDir, out string, seed int64, w io.Writer) (*demoResult, error) {
	st := runningUp(dataDir)
	if st == nil {
		return nil, fmt.Errorf("no fleetprof up is running with data dir %s (%s; or give --data)", dataDir, connHint)
	}
	if st.RepoDir == "" {
		return nil, fmt.Errorf("the fleetprof up on %s has no repository directory for root cause: restart it with this version of fleetprof", st.HTTP)
	}
	if err := os.MkdirAll(out, 0o750); err != nil {
		return nil, fmt.Errorf("demo output: %w", err)
	}
	base := "http://" + st.HTTP
	started := time.Now()

	fmt.Fprintf(w, "1/3 simulating a day of one service on %d hosts into the fleetprof up on %s; its release v2 regresses one function …\n", demoHosts, base)
	truthPath := filepath.Join(out, "truth.json")
	var simOut bytes.Buffer
	err := runSimulate(ctx, []string{"--data", dataDir, "--grpc", st.GRPC, "--services", "1",
		"--hosts", strconv.Itoa(demoHosts), "--functions", strconv.Itoa(demoFunctions), "--releases", "1",
		"--regressions", "random:1", "--seed", strconv.FormatInt(seed, 10),
		"--repo", st.RepoDir, "--truth", truthPath}, &simOut)
	if err != nil {
		if ents, e := os.ReadDir(st.RepoDir); e == nil && len(ents) > 0 {
			return nil, fmt.Errorf("simulate: %w (a demo already ran against this up: its fleet and repositories are in %s; start a fresh one with fleetprof up --data NEWDIR and run fleetprof demo --data NEWDIR)", err, dataDir)
		}
		return nil, fmt.Errorf("simulate: %w", err)
	}
	var sum simSummary
	if err := json.Unmarshal(simOut.Bytes(), &sum); err != nil {
		return nil, fmt.Errorf("simulate summary: %w", err)
	}
	tr, err := simulate.ReadTruth(truthPath)
	if err != nil {
		return nil, err
	}
	if len(tr.Regressions) != 1 || len(tr.Services) != 1 || tr.Regressions[0].Change == nil {
		return nil, fmt.Errorf("simulated fleet has %d regressions in %d services, want one with its pull request", len(tr.Regressions), len(tr.Services))
	}
	want, svc := tr.Regressions[0], tr.Services[0]
	fmt.Fprintf(w, "    service %s: %d samples in %d batches (%s)\n", svc.Name, sum.Samples, sum.Batches, time.Since(started).Round(time.Second))

	fmt.Fprintf(w, "2/3 analyzing through the up (POST %s/api/v1/analyze: last %s, %s history) …\n", base, shortDuration(demoWindow), shortDuration(demoHistory))
	findingsPath := filepath.Join(out, "findings.json")
	var doc bytes.Buffer
	analyzeArgs := []string{"--window", shortDuration(demoWindow), "--history", shortDuration(demoHistory), "--step", shortDuration(demoStep)}
	if err := runAnalyze(ctx, append([]string{"--aggregator", base, "--data", dataDir, "--kind", kindRegression, "--service", svc.Name, "--json"}, analyzeArgs...), &doc); err != nil {
		return nil, err
	}
	if err := os.WriteFile(findingsPath, doc.Bytes(), 0o600); err != nil {
		return nil, fmt.Errorf("write findings: %w", err)
	}
	fd, err := findings.Decode(bytes.NewReader(doc.Bytes()))
	if err != nil {
		return nil, err
	}
	res := &demoResult{Want: want, UI: fmt.Sprintf("%s/?view=findings&kind=regression&service=%s", base, svc.Name)}
	found := false
	for _, f := range fd.Findings {
		if f.Function == want.Function {
			res.Finding, found = f, true
		}
	}
	if !found {
		return nil, fmt.Errorf("the analysis reported %d regressions but not the injected one in %s (%s)", len(fd.Findings), want.Function, findingsPath)
	}
	f := res.Finding
	if len(f.RootCauses) == 0 {
		return nil, fmt.Errorf("finding %s in %s has no root cause: the up found no repository %s", f.ID, f.Function, filepath.Join(st.RepoDir, svc.Name))
	}
	rc := f.RootCauses[0]
	fmt.Fprintf(w, "    %d regressions; the injected one:\n", len(fd.Findings))
	fmt.Fprintf(w, "    %s: %.3f%% → %.3f%% of %s's CPU (%s, %s)\n", f.Function, 100*f.Before.Value, 100*f.After.Value,
		svc.Name, changeLabel(&f), versionsLabel(f.VersionBefore, f.VersionAfter))
	fmt.Fprintf(w, "    pinned to PR #%d %q by %s (%.0f%% confidence; the simulated culprit is #%d)\n", rc.PR, rc.Title, rc.Author, 100*rc.Confidence, want.Change.PR)
	fmt.Fprintf(w, "    open it in the UI: %s\n", res.UI)

	fmt.Fprintf(w, "3/3 writing the PR for it (fleetprof pipeline run --finding %s) …\n", f.ID)
	var pout bytes.Buffer
	if err := runPipeline(ctx, []string{"run", "--finding", f.ID, "--aggregator", base, "--data", dataDir,
		"--repo", filepath.Join(st.RepoDir, svc.Repo), "--findings", findingsPath, "--out", out}, &pout); err != nil {
		return nil, fmt.Errorf("pipeline run: %w", err)
	}
	if err := json.Unmarshal(pout.Bytes(), &res.Pipeline); err != nil {
		return nil, fmt.Errorf("pipeline summary: %w", err)
	}
	p := res.Pipeline
	if p.Skill == "" || p.Dir == "" {
		return nil, fmt.Errorf("pipeline wrote no PR for finding %s: %s", f.ID, p.Skipped)
	}
	files := []string{"title.txt", "body.md", "resolution.json"}
	if p.Patch != "" {
		files = append(files, p.Patch)
	}
	fmt.Fprintf(w, "    %s: %s\n", p.Skill, p.Title)
	fmt.Fprintf(w, "    PR bot output in %s: %s\n", p.Dir, strings.Join(files, ", "))
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "    warning: %s\n", warn)
	}
	fmt.Fprintf(w, "done in %s. Findings: %s; in the CLI: fleetprof analyze --data %s %s\n",
		time.Since(started).Round(time.Second), findingsPath, dataDir, strings.Join(analyzeArgs, " "))
	return res, nil
}

// shortDuration prints d without zero trailing units ("12h", not "12h0m0s").
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
