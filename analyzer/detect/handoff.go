package detect

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/findings"
)

func (c *candidate) finding(svc *Service, cfg Config) findings.Finding {
	at := func(i int) time.Time {
		if svc.Start.IsZero() {
			return time.Time{}
		}
		return svc.Start.Add(time.Duration(i) * svc.Step).UTC()
	}
	f := findings.Finding{
		Kind: findings.KindRegression, Service: svc.Name, Function: c.fn, Domain: c.domain,
		Before: c.before.share(), After: c.after.share(),
		AbsoluteChange: c.abs, RelativeChange: c.rel,
		ServiceCores: svc.Cores, EstimatedCores: c.abs * svc.Cores,
		PValue: c.p, ChangeTime: at(c.change), WindowStart: at(c.lo), WindowEnd: at(c.hi),
		VersionBefore: c.vBefore, VersionAfter: c.vAfter,
		RepresentativeStacks: representativeStacks(svc, c.fn, c.change, c.hi, cfg.MaxStacks),
		FiltersPassed:        c.passed(), DedupGroup: c.group,
	}
	if sp := c.selfPart; sp != nil && sp.abs >= cfg.Tuning.SelfRiseFraction*c.abs {
		// The function's own code: its self size, the inclusive one beside it.
		if sp.overlap != nil && c.overlap == nil {
			// The self rise compared the versions: dated at the rollout's first
			// stage, where the inclusive time path saw a later stage.
			f.ChangeTime, f.WindowStart, f.WindowEnd = at(sp.change), at(sp.lo), at(sp.hi)
			f.VersionBefore, f.VersionAfter = sp.vBefore, sp.vAfter
		}
		incBefore, incAfter := f.Before, f.After
		f.InclusiveBefore, f.InclusiveAfter = &incBefore, &incAfter
		f.Before, f.After = sp.before.share(), sp.after.share()
		f.AbsoluteChange, f.RelativeChange, f.PValue = sp.abs, sp.rel, math.Max(c.p, sp.p)
		f.EstimatedCores = sp.abs * svc.Cores
		c.pass(FilterSelfShare)
		f.FiltersPassed = c.passed()
	}
	f.ID = findings.ComputeID(&f)
	return f
}

// representativeStacks returns the stacks containing fn with the largest share of the
// service in [lo, hi).
func representativeStacks(svc *Service, fn string, lo, hi, k int) []findings.Stack {
	if k == 0 || len(svc.Stacks) == 0 {
		return nil
	}
	total := 0.0
	for _, x := range svc.Total[lo:hi] {
		total += x
	}
	if total == 0 {
		return nil
	}
	var out []findings.Stack
	for _, st := range svc.Stacks {
		if !slices.Contains(st.Frames, fn) {
			continue
		}
		n := 0.0
		for _, x := range st.Count[lo:hi] {
			n += x
		}
		if n > 0 {
			out = append(out, findings.Stack{Frames: st.Frames, Share: n / total})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Share > out[j].Share })
	if len(out) > k {
		out = out[:k]
	}
	return out
}
