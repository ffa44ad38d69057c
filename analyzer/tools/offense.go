package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"syscall"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/opportunity"
	"github.com/fleetprof/fleetprof/model"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func isConnRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// OpportunitiesInput asks for ranked optimization opportunities.
type OpportunitiesInput struct {
	Selection SelectionInput `json:"selection" jsonschema:"which samples (empty service: every service)"`
	Limit     int            `json:"limit,omitempty" jsonschema:"at most this many (default 20)"`
	// Cores overrides the service's CPU (otherwise samples × period / window).
	Cores float64 `json:"cores,omitempty" jsonschema:"the service's average CPU in cores, when known (default: from samples × period / window)"`
}

// OpportunitiesOutput is the ranked opportunities, as ranked items and as findings
// (same order).
type OpportunitiesOutput struct {
	Opportunities []opportunity.Opportunity `json:"opportunities" jsonschema:"by estimated saving, largest first"`
	Findings      []findings.Finding        `json:"findings" jsonschema:"the same opportunities as findings of kind opportunity"`
}

// Opportunities ranks the optimization opportunities of the selection's services.
func (t *Toolbox) Opportunities(ctx context.Context, in OpportunitiesInput) (*OpportunitiesOutput, error) {
	sel, err := t.Selection(in.Selection)
	if err != nil {
		return nil, err
	}
	if in.Limit <= 0 {
		in.Limit = 20
	}
	services := []string{sel.Service}
	if sel.Service == "" {
		if services, err = t.qc.Services(ctx, sel.From, sel.To); err != nil {
			return nil, fmt.Errorf("opportunities: %w", err)
		}
	}
	type item struct {
		o opportunity.Opportunity
		f findings.Finding
	}
	var items []item
	for _, svc := range services {
		s := sel
		s.Service = svc
		p, err := t.qc.Profile(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("opportunities: profile %s: %w", svc, err)
		}
		if p.Total == 0 {
			continue
		}
		oin := opportunity.Input{Service: svc, Profile: p, Wall: s.To.Sub(s.From), Cores: in.Cores, WindowStart: s.From, WindowEnd: s.To}
		ops, err := opportunity.Rank(oin, t.cfg.Opportunity)
		if err != nil {
			return nil, fmt.Errorf("opportunities %s: %w", svc, err)
		}
		for _, o := range ops {
			items = append(items, item{o, o.Finding(oin)})
		}
	}
	// Across services, the expected saved cores (saving × confidence) ranks, as within one.
	sort.SliceStable(items, func(i, j int) bool {
		return items[i].o.Saving.Cores*items[i].o.Confidence > items[j].o.Saving.Cores*items[j].o.Confidence
	})
	out := &OpportunitiesOutput{Opportunities: []opportunity.Opportunity{}, Findings: []findings.Finding{}}
	for i := 0; i < len(items) && i < in.Limit; i++ {
		out.Opportunities = append(out.Opportunities, items[i].o)
		out.Findings = append(out.Findings, items[i].f)
	}
	return out, nil
}

// CostsInput asks for the fleet cost of functions.
type CostsInput struct {
	Selection SelectionInput `json:"selection" jsonschema:"which samples (one service)"`
	Limit     int            `json:"limit,omitempty" jsonschema:"at most this many functions (default 20)"`
	Cores     float64        `json:"cores,omitempty" jsonschema:"the service's average CPU in cores, when known"`
}

// CostsOutput is functions by inclusive cost.
type CostsOutput struct {
	ServiceCores float64                    `json:"service_cores" jsonschema:"the service's CPU in cores"`
	Functions    []opportunity.FunctionCost `json:"functions" jsonschema:"functions by inclusive (subtree) cost, largest first"`
}

// Costs returns what each function (self) and its subtree (inclusive) cost.
func (t *Toolbox) Costs(ctx context.Context, in CostsInput) (*CostsOutput, error) {
	sel, err := t.Selection(in.Selection)
	if err != nil {
		return nil, err
	}
	if sel.Service == "" {
		return nil, errors.New("costs: a service is required")
	}
	if in.Limit <= 0 {
		in.Limit = 20
	}
	p, err := t.qc.Profile(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("costs: %w", err)
	}
	oin := opportunity.Input{Service: sel.Service, Profile: p, Wall: sel.To.Sub(sel.From), Cores: in.Cores}
	out := &CostsOutput{ServiceCores: oin.ServiceCores(), Functions: []opportunity.FunctionCost{}}
	if p.Total == 0 {
		return out, nil
	}
	fc, err := opportunity.FunctionCosts(oin, t.cfg.Opportunity)
	if err != nil {
		return nil, fmt.Errorf("costs: %w", err)
	}
	out.Functions = fc[:min(len(fc), in.Limit)]
	return out, nil
}

// ExperimentInput compares a before and an after selection (an A/B experiment, a
// canary, or a deploy) for one function.
type ExperimentInput struct {
	Before   SelectionInput `json:"before" jsonschema:"samples before the change (control)"`
	After    SelectionInput `json:"after" jsonschema:"samples after the change (treatment)"`
	Function string         `json:"function,omitempty" jsonschema:"the function the experiment targets (profiler name)"`
}

// ExperimentOutput is the result of an experiment.
type ExperimentOutput struct {
	BeforeTotal int64 `json:"before_total" jsonschema:"samples before"`
	AfterTotal  int64 `json:"after_total" jsonschema:"samples after"`
	// Function's inclusive share on each side with a 95% interval, and the change.
	Function string         `json:"function,omitempty" jsonschema:"the targeted function"`
	Before   findings.Share `json:"before" jsonschema:"the function's inclusive share before (0..1)"`
	After    findings.Share `json:"after" jsonschema:"the function's inclusive share after (0..1)"`
	Change   float64        `json:"change" jsonschema:"after − before (share units)"`
	// Z is the change over its standard error; |Z| > 1.96 is significant at 5%.
	Z           float64       `json:"z" jsonschema:"change ÷ standard error; |z| > 1.96 is significant at 5%"`
	Significant bool          `json:"significant" jsonschema:"whether the change is significant at 5%"`
	Movers      []model.Mover `json:"movers" jsonschema:"largest changes of inclusive share (percent units)"`
}

// Experiment compares two selections: the diff summary plus the targeted function's
// share on each side with its sampling error.
func (t *Toolbox) Experiment(ctx context.Context, in ExperimentInput) (*ExperimentOutput, error) {
	d, err := t.Diff(ctx, DiffInput{Base: in.Before, Cmp: in.After, Movers: 10})
	if err != nil {
		return nil, fmt.Errorf("experiment: %w", err)
	}
	out := &ExperimentOutput{BeforeTotal: d.BaseTotal, AfterTotal: d.CmpTotal, Function: in.Function, Movers: d.Movers}
	if in.Function == "" {
		return out, nil
	}
	var bi, ai int64
	for _, side := range []struct {
		sel SelectionInput
		n   *int64
	}{{in.Before, &bi}, {in.After, &ai}} {
		top, err := t.Top(ctx, TopInput{Selection: side.sel, Limit: 100_000})
		if err != nil {
			return nil, fmt.Errorf("experiment: %w", err)
		}
		for _, f := range top.Functions {
			if f.Function == in.Function {
				*side.n = f.Inclusive
			}
		}
	}
	out.Before = shareOf(bi, d.BaseTotal)
	out.After = shareOf(ai, d.CmpTotal)
	out.Change = out.After.Value - out.Before.Value
	se := math.Sqrt(variance(out.Before.Value, d.BaseTotal) + variance(out.After.Value, d.CmpTotal))
	if se > 0 {
		out.Z = out.Change / se
		out.Significant = math.Abs(out.Z) > 1.96
	}
	return out, nil
}

func variance(p float64, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return p * (1 - p) / float64(n)
}

func shareOf(k, n int64) findings.Share {
	if n <= 0 {
		return findings.Share{}
	}
	p := float64(k) / float64(n)
	h := 1.96 * math.Sqrt(variance(p, n))
	return findings.Share{Value: p, Lo: max(0, p-h), Hi: min(1, p+h), Samples: float64(n)}
}
