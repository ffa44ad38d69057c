package mcpserver

import (
	"context"
	"fmt"
	"net/http"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/pipeline"
	"github.com/fleetprof/fleetprof/analyzer/skills"
	"github.com/fleetprof/fleetprof/analyzer/tools"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Config names the server.
type Config struct {
	Name    string // default "fleetprof"
	Version string // default "dev"
	// Skills resolves findings in the resolve_finding tool; default skills.Default().
	Skills *skills.Registry
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Name == "" {
		c.Name = "fleetprof"
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Skills == nil {
		c.Skills = skills.Default()
	}
	return c
}

// Tool is one exposed tool's name and description (also the documentation).
type Tool struct{ Name, Description string }

// Tools lists the tools New registers, in order.
var Tools = []Tool{
	{"profile_top", "Top functions of a selection of samples by self samples, with self and inclusive shares."},
	{"profile_flame", "Flame graph of a selection, pruned to a depth and a minimum share."},
	{"profile_diff", "Flame-diff summary of two selections (baseline vs comparison): the functions whose inclusive share moved most."},
	{"findings", "Analyzer findings (regressions and opportunities, schema fleetprof.findings/v1), filtered by service, kind or id."},
	{"opportunities", "Optimization opportunities ranked by estimated saving: fix pattern, site function, share, cores, watts and money saved."},
	{"function_costs", "What each function (self) and its subtree (inclusive) cost a service, in cores, watts and money per year."},
	{"find_function", "Where a function (profiler name, e.g. example.com/m/pkg.(*T).M) is declared in the source checkout: file and lines."},
	{"callers", "Call sites of a function's name in the source checkout, with the calling function."},
	{"change_history", "Commits / merged pull requests between two revisions with author, PR number and the functions each touched."},
	{"show_commit", "One commit's message, stat and diff."},
	{"skill_docs", "Documentation of the analyzer's skills (defense and offense)."},
	{"experiment", "Before/after comparison of two selections for one function: shares with 95% intervals, z-score, significance and the largest moves."},
	{"resolve_finding", "Run the pipeline's context phase and skill on a finding and return the resolution (PR title, Markdown body, applied rewrites) without writing anything."},
}

func describe(name string) string {
	for _, t := range Tools {
		if t.Name == name {
			return t.Description
		}
	}
	panic("mcpserver: undocumented tool " + name)
}

// add registers fn as a tool with typed input and output.
func add[In, Out any](s *mcp.Server, name string, fn func(context.Context, In) (*Out, error)) {
	mcp.AddTool(s, &mcp.Tool{Name: name, Description: describe(name)},
		func(ctx context.Context, _ *mcp.CallToolRequest, in In) (*mcp.CallToolResult, Out, error) {
			out, err := fn(ctx, in)
			if err != nil {
				var zero Out
				return nil, zero, err
			}
			return nil, *out, nil
		})
}

// ResolveInput names a finding to resolve.
type ResolveInput struct {
	ID string `json:"id" jsonschema:"finding id (from the findings or opportunities tool)"`
}

// ResolveOutput is a skill's resolution of a finding.
type ResolveOutput struct {
	Finding    findings.Finding   `json:"finding" jsonschema:"the finding"`
	Resolution *skills.Resolution `json:"resolution,omitempty" jsonschema:"the resolution, when a skill produced one"`
	Skipped    string             `json:"skipped,omitempty" jsonschema:"why no skill resolved it"`
	Warnings   []string           `json:"warnings,omitempty" jsonschema:"context tools that failed"`
}

// New returns an MCP server exposing tb's tools.
func New(tb *tools.Toolbox, cfg Config) *mcp.Server {
	cfg = cfg.WithDefaults()
	s := mcp.NewServer(&mcp.Implementation{Name: cfg.Name, Version: cfg.Version}, nil)
	add(s, "profile_top", tb.Top)
	add(s, "profile_flame", tb.Flame)
	add(s, "profile_diff", tb.Diff)
	add(s, "findings", tb.Findings)
	add(s, "opportunities", tb.Opportunities)
	add(s, "function_costs", tb.Costs)
	add(s, "find_function", tb.FindFunction)
	add(s, "callers", tb.Callers)
	add(s, "change_history", tb.History)
	add(s, "show_commit", tb.Show)
	add(s, "skill_docs", tb.Docs)
	add(s, "experiment", tb.Experiment)
	add(s, "resolve_finding", func(ctx context.Context, in ResolveInput) (*ResolveOutput, error) {
		f, err := tb.Finding(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		c, warns := pipeline.Gather(ctx, tb, *f)
		res, skipped := pipeline.Resolve(ctx, cfg.Skills, c)
		return &ResolveOutput{Finding: *f, Resolution: res, Skipped: skipped, Warnings: warns}, nil
	})
	return s
}

// ServeStdio serves s on stdin/stdout until ctx is done or the client disconnects.
func ServeStdio(ctx context.Context, s *mcp.Server) error {
	if err := s.Run(ctx, &mcp.StdioTransport{}); err != nil && ctx.Err() == nil {
		return fmt.Errorf("mcp stdio: %w", err)
	}
	return nil
}

// HTTPHandler serves s over MCP's streamable HTTP transport.
func HTTPHandler(s *mcp.Server) http.Handler {
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
}
