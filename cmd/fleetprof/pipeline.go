package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/queryclient"
	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/pipeline"
	"github.com/fleetprof/fleetprof/analyzer/skills"
	"github.com/fleetprof/fleetprof/analyzer/tools"
)

func init() {
	register("pipeline", "the shared agent pipeline: finding → context → skill → PR bot output (run)", runPipeline)
}

// pipelineSummary is one line of what pipeline run prints (JSON lines).
type pipelineSummary struct {
	Finding  string   `json:"finding"`
	Kind     string   `json:"kind"`
	Function string   `json:"function"`
	Skill    string   `json:"skill,omitempty"`
	Title    string   `json:"title,omitempty"`
	Dir      string   `json:"dir,omitempty"`
	Patch    string   `json:"patch,omitempty"`
	Branch   string   `json:"branch,omitempty"`
	Skipped  string   `json:"skipped,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

func runPipeline(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "run" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return pipelineRun(ctx, []string{"-h"}, stdout)
		}
		return usageError{errors.New("usage: fleetprof pipeline run --finding ID|--kind opportunity|regression --repo DIR --out DIR [flags]")}
	}
	return pipelineRun(ctx, args[1:], stdout)
}

func pipelineRun(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("pipeline run", flag.ContinueOnError)
	id := fs.String("finding", "", "resolve the finding with this id")
	kind := fs.String("kind", "", "resolve the top findings of this kind: opportunity or regression")
	agg := fs.String("aggregator", queryclient.DefaultBaseURL, "aggregator base URL (default: the fleetprof up running with --data, else this)")
	dataDir := fs.String("data", defaultDataDir, "data directory of a local fleetprof up, whose address is the default --aggregator")
	repo := fs.String("repo", "", "source checkout (git work tree) to patch")
	module := fs.String("module", "", "Go module directory inside --repo (default: --repo)")
	out := fs.String("out", "", "output directory for the PR bot output (required)")
	branch := fs.String("branch", "", "also create this local branch in --repo with the patch")
	findingsFile := fs.String("findings", "", "findings document (fleetprof analyze output) to read findings from")
	service := fs.String("service", "", "only this service")
	window := fs.Duration("window", tools.DefaultWindow, "time range opportunities are ranked over (ending now)")
	limit := fs.Int("limit", 5, "with --kind: at most this many findings")
	author := fs.String("author", pipeline.DefaultAuthor, "author of the patch commits")
	loginsFile := fs.String("logins", "", `file mapping commit authors to the logins PR bodies mention: "EMAIL-OR-NAME LOGIN" lines or a JSON object (default: GitHub noreply addresses give the login, else the name without @)`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if (*id == "") == (*kind == "") {
		return usageError{errors.New("give exactly one of --finding or --kind")}
	}
	if *kind != "" && *kind != string(findings.KindOpportunity) && *kind != string(findings.KindRegression) {
		return usageError{fmt.Errorf("--kind %q: want opportunity or regression", *kind)}
	}
	if *out == "" {
		return usageError{errors.New("--out is required")}
	}
	// A regression's mitigation is a revert in the source checkout: check before any work.
	if *kind == string(findings.KindRegression) && *repo == "" {
		return usageError{errors.New("--kind regression needs --repo DIR (the source checkout the revert is made in)")}
	}
	var logins map[string]string
	if *loginsFile != "" {
		var err error
		if logins, err = pipeline.LoadLogins(*loginsFile); err != nil {
			return usageError{err}
		}
	}
	reg := skills.Default()
	tb, err := tools.New(tools.Config{Aggregator: localHTTP(*agg, flagSet(fs, "aggregator"), *dataDir), Repo: *repo, Module: *module, FindingsFile: *findingsFile,
		Window: *window, Docs: reg.Docs()})
	if err != nil {
		return usageError{err}
	}
	cfg := pipeline.Config{Tools: tb, Skills: reg, Out: *out, Branch: *branch, Author: *author, Logins: logins,
		Selection: tools.SelectionInput{Service: *service, From: window.String()}}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	start := time.Now()
	res, err := pipeline.Run(ctx, cfg, pipeline.Request{FindingID: *id, Kind: findings.Kind(*kind), Limit: *limit})
	enc := json.NewEncoder(stdout)
	for _, r := range res {
		s := pipelineSummary{Finding: r.Finding.ID, Kind: string(r.Finding.Kind), Function: r.Finding.Function,
			Dir: r.Dir, Patch: r.Patch, Branch: r.Branch, Skipped: r.Skipped, Warnings: r.Warnings}
		if r.Resolution != nil {
			s.Skill, s.Title = r.Resolution.Skill, r.Resolution.Title
		}
		if e := enc.Encode(s); e != nil {
			return e
		}
	}
	if err != nil {
		return err
	}
	if len(res) == 0 {
		return fmt.Errorf("no findings to resolve (%s)", time.Since(start).Round(time.Millisecond))
	}
	return nil
}
