package tools

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/queryclient"
	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/opportunity"
	"github.com/fleetprof/fleetprof/model"
)

// DefaultWindow is the time range of a selection without one.
const DefaultWindow = time.Hour

// Config configures a Toolbox. Only Aggregator is needed for profile tools; Repo for
// code and history tools.
type Config struct {
	// Aggregator is the aggregator's base URL (default queryclient.DefaultBaseURL).
	Aggregator string
	HTTPClient *http.Client
	// Repo is a source checkout (a git work tree) of the services' code.
	Repo string
	// Module is the Go module directory inside Repo; default Repo.
	Module string
	// FindingsFile is an optional findings document (fleetprof analyze output).
	FindingsFile string
	// Window is the time range of selections that give none; default one hour.
	Window time.Duration
	// Now is the clock for relative times; default time.Now.
	Now         func() time.Time
	Opportunity opportunity.Config
	// Docs are the skill docs served by the docs tool.
	Docs []Doc
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Aggregator == "" {
		c.Aggregator = queryclient.DefaultBaseURL
	}
	if c.Module == "" {
		c.Module = c.Repo
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.Window < 0 {
		return fmt.Errorf("window %v: must be positive", c.Window)
	}
	for _, d := range []struct{ name, dir string }{{"repo", c.Repo}, {"module", c.Module}} {
		if d.dir == "" {
			continue
		}
		if st, err := os.Stat(d.dir); err != nil || !st.IsDir() {
			return fmt.Errorf("%s %q: not a directory", d.name, d.dir)
		}
	}
	if err := c.Opportunity.Validate(); err != nil {
		return fmt.Errorf("opportunity: %w", err)
	}
	return nil
}

// Doc documents one skill.
type Doc struct {
	Name    string `json:"name" jsonschema:"skill name"`
	Kind    string `json:"kind" jsonschema:"offense or defense"`
	Summary string `json:"summary" jsonschema:"one-line summary"`
	Text    string `json:"text" jsonschema:"full documentation (Markdown)"`
}

// Toolbox is the tool layer. It is safe for concurrent use.
type Toolbox struct {
	cfg Config
	qc  *queryclient.Client
}

// New returns a toolbox for cfg.
func New(cfg Config) (*Toolbox, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("tools config: %w", err)
	}
	cfg = cfg.WithDefaults()
	qc, err := queryclient.New(cfg.Aggregator, cfg.HTTPClient)
	if err != nil {
		return nil, fmt.Errorf("tools: %w", err)
	}
	return &Toolbox{cfg: cfg, qc: qc}, nil
}

// Config returns the toolbox's configuration (with defaults).
func (t *Toolbox) Config() Config { return t.cfg }

// SelectionInput selects samples.
type SelectionInput struct {
	Service string   `json:"service,omitempty" jsonschema:"service name; empty means all services"`
	From    string   `json:"from,omitempty" jsonschema:"start: RFC 3339 time or a duration before now such as 2h (default: the window before to)"`
	To      string   `json:"to,omitempty" jsonschema:"end: RFC 3339 time or a duration before now (default: now)"`
	Filters []string `json:"filters,omitempty" jsonschema:"label filters as key=value (e.g. version=v2), ANDed across keys"`
}

// Selection resolves in against the clock and the default window.
func (t *Toolbox) Selection(in SelectionInput) (model.Selection, error) {
	now := t.cfg.Now()
	parse := func(s string, def time.Time) (time.Time, error) {
		if s == "" {
			return def, nil
		}
		if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return ts, nil
		}
		d, err := time.ParseDuration(strings.TrimPrefix(s, "-"))
		if err != nil {
			return time.Time{}, fmt.Errorf("time %q: want RFC 3339 or a duration like 2h", s)
		}
		return now.Add(-d), nil
	}
	to, err := parse(in.To, now)
	if err != nil {
		return model.Selection{}, err
	}
	from, err := parse(in.From, to.Add(-t.cfg.Window))
	if err != nil {
		return model.Selection{}, err
	}
	if !from.Before(to) {
		return model.Selection{}, fmt.Errorf("selection: from %s is not before to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	sel := model.Selection{Service: in.Service, From: from, To: to}
	for _, f := range in.Filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return model.Selection{}, fmt.Errorf("filter %q: want key=value", f)
		}
		sel.Filters = append(sel.Filters, model.Filter{Key: k, Value: v})
	}
	return sel, nil
}

// TopInput asks for the top functions.
type TopInput struct {
	Selection SelectionInput `json:"selection" jsonschema:"which samples"`
	Limit     int            `json:"limit,omitempty" jsonschema:"number of functions (default 20)"`
}

// TopOutput is the top functions by self samples.
type TopOutput struct {
	Total     int64                `json:"total" jsonschema:"samples in the selection"`
	Functions []model.FunctionStat `json:"functions" jsonschema:"functions by self samples, largest first"`
}

// Top returns the functions with the most self samples.
func (t *Toolbox) Top(ctx context.Context, in TopInput) (*TopOutput, error) {
	sel, err := t.Selection(in.Selection)
	if err != nil {
		return nil, err
	}
	if in.Limit <= 0 {
		in.Limit = 20
	}
	top, err := t.qc.Top(ctx, sel, in.Limit)
	if err != nil {
		return nil, fmt.Errorf("top: %w", err)
	}
	fs := top.Functions
	if fs == nil {
		fs = []model.FunctionStat{}
	}
	return &TopOutput{Total: top.Total, Functions: fs}, nil
}

// FlameInput asks for a flame graph, pruned to stay readable.
type FlameInput struct {
	Selection SelectionInput `json:"selection" jsonschema:"which samples"`
	MaxDepth  int            `json:"max_depth,omitempty" jsonschema:"levels below the root to keep (default 12)"`
	MinShare  float64        `json:"min_share,omitempty" jsonschema:"drop subtrees under this share of the total, 0..1 (default 0.01)"`
}

// FlameOutput is a pruned flame graph as rows in depth-first order (a row's parent is
// the nearest earlier row one level up); flat because MCP schemas cannot recurse.
type FlameOutput struct {
	Total int64      `json:"total" jsonschema:"samples in the selection"`
	Nodes []FlameRow `json:"nodes" jsonschema:"nodes in depth-first order, the root (depth 0) first, children largest first"`
}

// FlameRow is one flame graph node: a function reached by one call path.
type FlameRow struct {
	Depth  int     `json:"depth" jsonschema:"0 for the root; a child is one more than its parent"`
	Parent int     `json:"parent" jsonschema:"index of the parent row (-1 for the root)"`
	Name   string  `json:"name" jsonschema:"function"`
	Total  int64   `json:"total" jsonschema:"samples in this subtree"`
	Self   int64   `json:"self" jsonschema:"samples ending here"`
	Share  float64 `json:"share" jsonschema:"total ÷ selection total (0..1)"`
}

// Flame returns the selection's flame graph without subtrees under MinShare.
func (t *Toolbox) Flame(ctx context.Context, in FlameInput) (*FlameOutput, error) {
	sel, err := t.Selection(in.Selection)
	if err != nil {
		return nil, err
	}
	if in.MaxDepth <= 0 {
		in.MaxDepth = 12
	}
	if in.MinShare <= 0 {
		in.MinShare = 0.01
	}
	root, err := t.qc.Flame(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("flame: %w", err)
	}
	out := &FlameOutput{Total: root.Total, Nodes: []FlameRow{}}
	minTotal := int64(math.Ceil(in.MinShare * float64(root.Total)))
	var walk func(n *model.FlameNode, depth, parent int)
	walk = func(n *model.FlameNode, depth, parent int) {
		share := 0.0
		if root.Total > 0 {
			share = float64(n.Total) / float64(root.Total)
		}
		idx := len(out.Nodes)
		out.Nodes = append(out.Nodes, FlameRow{Depth: depth, Parent: parent, Name: n.Name, Total: n.Total, Self: n.Self, Share: share})
		if depth >= in.MaxDepth {
			return
		}
		kids := append([]*model.FlameNode(nil), n.Children...)
		sort.SliceStable(kids, func(i, j int) bool { return kids[i].Total > kids[j].Total })
		for _, c := range kids {
			if c.Total >= minTotal && c.Total > 0 {
				walk(c, depth+1, idx)
			}
		}
	}
	walk(root, 0, -1)
	return out, nil
}

// DiffInput compares two selections.
type DiffInput struct {
	Base   SelectionInput `json:"base" jsonschema:"baseline samples (before)"`
	Cmp    SelectionInput `json:"cmp" jsonschema:"comparison samples (after)"`
	Movers int            `json:"movers,omitempty" jsonschema:"number of functions to list (default 10)"`
}

// DiffOutput summarizes a flame diff: the functions whose inclusive share moved most.
type DiffOutput struct {
	BaseTotal int64         `json:"base_total" jsonschema:"baseline samples"`
	CmpTotal  int64         `json:"cmp_total" jsonschema:"comparison samples"`
	Movers    []model.Mover `json:"movers" jsonschema:"functions by |change of inclusive share|, largest first (percent units)"`
}

// Diff compares two selections, normalized to each side's total.
func (t *Toolbox) Diff(ctx context.Context, in DiffInput) (*DiffOutput, error) {
	base, err := t.Selection(in.Base)
	if err != nil {
		return nil, fmt.Errorf("base: %w", err)
	}
	cmp, err := t.Selection(in.Cmp)
	if err != nil {
		return nil, fmt.Errorf("cmp: %w", err)
	}
	if in.Movers <= 0 {
		in.Movers = 10
	}
	d, err := t.qc.Diff(ctx, base, cmp, in.Movers)
	if err != nil {
		return nil, fmt.Errorf("diff: %w", err)
	}
	ms := d.Movers
	if len(ms) > in.Movers {
		ms = ms[:in.Movers]
	}
	if ms == nil {
		ms = []model.Mover{}
	}
	return &DiffOutput{BaseTotal: d.BaseTotal, CmpTotal: d.CmpTotal, Movers: ms}, nil
}

// FindingsInput selects findings.
type FindingsInput struct {
	Service string `json:"service,omitempty" jsonschema:"only this service"`
	Kind    string `json:"kind,omitempty" jsonschema:"regression or opportunity"`
	ID      string `json:"id,omitempty" jsonschema:"only the finding with this id"`
	Limit   int    `json:"limit,omitempty" jsonschema:"at most this many (default 50)"`
}

// FindingsOutput lists findings.
type FindingsOutput struct {
	Findings []findings.Finding `json:"findings" jsonschema:"findings (schema fleetprof.findings/v1)"`
}

// Findings lists findings from the configured findings document and, when the
// aggregator has a findings endpoint, from the aggregator.
func (t *Toolbox) Findings(ctx context.Context, in FindingsInput) (*FindingsOutput, error) {
	if in.Limit <= 0 {
		in.Limit = 50
	}
	var all []findings.Finding
	if t.cfg.FindingsFile != "" {
		f, err := os.Open(t.cfg.FindingsFile)
		if err != nil {
			return nil, fmt.Errorf("findings: %w", err)
		}
		doc, err := findings.Decode(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("findings %s: %w", t.cfg.FindingsFile, err)
		}
		all = append(all, doc.Findings...)
	}
	var recs []model.FindingRecord
	q := map[string][]string{}
	if in.Service != "" {
		q["service"] = []string{in.Service}
	}
	if in.Kind != "" {
		q["kind"] = []string{in.Kind}
	}
	var wrapped struct {
		Findings []model.FindingRecord `json:"findings"`
	}
	if err := t.qc.Get(ctx, "findings", q, &wrapped); err == nil {
		recs = wrapped.Findings
	} else if !queryclient.IsNotFound(err) && !isConnRefused(err) {
		return nil, fmt.Errorf("findings: %w", err)
	}
	for _, r := range recs {
		var f findings.Finding
		if err := jsonUnmarshal(r.Body, &f); err == nil && f.Validate() == nil {
			all = append(all, f)
		}
	}
	out := []findings.Finding{}
	seen := map[string]bool{}
	for _, f := range all {
		if seen[f.ID] || in.Service != "" && f.Service != in.Service || in.Kind != "" && string(f.Kind) != in.Kind || in.ID != "" && f.ID != in.ID {
			continue
		}
		seen[f.ID] = true
		out = append(out, f)
		if len(out) == in.Limit {
			break
		}
	}
	return &FindingsOutput{Findings: out}, nil
}

// ErrNotFound is returned for a finding id nobody knows.
var ErrNotFound = errors.New("not found")

// Finding returns one finding by id from the findings sources, or from the live
// opportunities of the last window.
func (t *Toolbox) Finding(ctx context.Context, id string) (*findings.Finding, error) {
	fs, err := t.Findings(ctx, FindingsInput{ID: id, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(fs.Findings) == 1 {
		return &fs.Findings[0], nil
	}
	ops, err := t.Opportunities(ctx, OpportunitiesInput{})
	if err != nil {
		return nil, err
	}
	for i := range ops.Findings {
		if ops.Findings[i].ID == id {
			return &ops.Findings[i], nil
		}
	}
	return nil, fmt.Errorf("finding %q: %w", id, ErrNotFound)
}
