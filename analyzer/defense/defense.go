package defense

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/detect"
	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/rootcause"
	"github.com/fleetprof/fleetprof/model"
)

// Store is what the analyzer needs from the profile store (*storage.Store).
type Store interface {
	Services(ctx context.Context, from, to time.Time) ([]string, error)
	Rollup(ctx context.Context, q model.RollupQuery) ([]model.RollupRow, error)
	Versions(ctx context.Context, service string, from, to time.Time) ([]model.VersionSpan, error)
	Profile(ctx context.Context, sel model.Selection) (*model.Profile, error)
	PutFindings(ctx context.Context, recs []model.FindingRecord) error
	// Findings reads stored findings: a regression found again by a later run keeps
	// its stored id (the runs' windows overlap).
	Findings(ctx context.Context, q model.FindingsQuery) ([]model.FindingRecord, error)
}

// Config configures Analyze. Start from DefaultConfig.
type Config struct {
	// Window is the analysis window: changes starting in it are reported. History is
	// read before it (baseline; two days enable the daily seasonality stage) and the
	// detector's extended window after it, ending at Now rounded down to Step.
	Window  time.Duration
	History time.Duration
	// Step is the detector's time bucket; rollup rows are summed into it.
	Step time.Duration
	// MinShare skips functions whose inclusive share over the data read is below it
	// (applied by the store, so it also bounds the rows read).
	MinShare float64
	// Services to analyze; empty means every service with samples in the window.
	Services []string
	// Repos maps a service to a local git repository for root cause.
	Repos map[string]string
	// RepoDir, when set, holds one git repository per service named as the service
	// (RepoDir/SERVICE), looked up at each analysis for services not in Repos: a
	// checkout added while the analyzer runs is used from its next run on.
	RepoDir string
	// VersionMaps maps a service to its version → git revision map; without one a
	// version string is used as the revision (tags such as v1.2.3, or commit hashes).
	VersionMaps map[string]map[string]string
	// Store findings with PutFindings (Analyze only returns them when false).
	Store bool
	// RampLead is how long before a ramp's fitted start a release still counts as
	// deployed during it (gradual findings' releases and root cause): the first hours
	// of a ramp are within the noise, so the line fit starts it late.
	RampLead time.Duration
	// Detect and RootCause configure the two stages; Detect.AnalysisWindow and
	// Detect.MinShare are set from Window and MinShare.
	Detect    detect.Config
	RootCause rootcause.Config
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// DefaultConfig returns the defaults: a 6h analysis window over two days of history
// (the seasonality stage needs two daily periods before the window) in 10-minute
// steps, functions above 0.01%, storing findings; releases up to 6 hours before a
// ramp's fitted start are among its releases.
func DefaultConfig() Config {
	return Config{
		Window:    6 * time.Hour,
		History:   48 * time.Hour,
		Step:      10 * time.Minute,
		MinShare:  1e-4,
		RampLead:  6 * time.Hour,
		Store:     true,
		Detect:    detect.DefaultConfig(),
		RootCause: rootcause.DefaultConfig(),
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Window <= 0:
		return fmt.Errorf("window %v: want > 0", c.Window)
	case c.History < 0:
		return fmt.Errorf("history %v: want >= 0", c.History)
	case c.Step < time.Second:
		return fmt.Errorf("step %v: want >= 1s", c.Step)
	case c.Window < c.Step:
		return fmt.Errorf("window %v shorter than step %v", c.Window, c.Step)
	case !(c.MinShare >= 0 && c.MinShare <= 1):
		return fmt.Errorf("min share %v: want 0..1", c.MinShare)
	case c.RampLead < 0:
		return fmt.Errorf("ramp lead %v: want >= 0", c.RampLead)
	}
	for svc, dir := range c.Repos {
		if svc == "" || dir == "" {
			return fmt.Errorf("repo %q=%q: want service=path", svc, dir)
		}
	}
	if err := c.detectConfig().Validate(); err != nil {
		return fmt.Errorf("detect: %w", err)
	}
	if err := c.RootCause.Validate(); err != nil {
		return fmt.Errorf("root cause: %w", err)
	}
	return nil
}

func (c Config) detectConfig() detect.Config {
	d := c.Detect
	d.AnalysisWindow = c.Window
	d.MinShare = c.MinShare
	return d
}

// extended is the stretch after the analysis window the detector needs (at least
// one change-point segment).
func (c Config) extended(dc detect.Config) time.Duration {
	return max(dc.ExtendedWindow, time.Duration(dc.ChangePoint.MinSegment)*c.Step)
}

func (c Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Report is the outcome of one Analyze run.
type Report struct {
	From, To time.Time
	// Findings of every service, largest estimated cost first within a service.
	Findings []findings.Finding
	// Series counts the function series examined.
	Series int
	// Errors are root-cause failures; their findings are kept without root causes.
	Errors []error
}

// Analyze runs detection (and root cause where configured) over every service and
// stores the findings when cfg.Store is set.
func Analyze(ctx context.Context, st Store, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("analyze config: %w", err)
	}
	dc := cfg.detectConfig()
	to := cfg.now().UTC().Truncate(cfg.Step)
	from := to.Add(-(cfg.History + cfg.Window + cfg.extended(dc)))
	rep := &Report{From: from, To: to}
	services := cfg.Services
	if len(services) == 0 {
		var err error
		if services, err = st.Services(ctx, from, to); err != nil {
			return nil, fmt.Errorf("analyze: %w", err)
		}
	}
	for _, name := range services {
		fs, series, errs, err := analyzeService(ctx, st, cfg, dc, name, from, to)
		if err != nil {
			return nil, fmt.Errorf("analyze %s: %w", name, err)
		}
		if cfg.Store && len(fs) > 0 {
			if err := mergeService(ctx, st, cfg, dc, name, fs, from, to); err != nil {
				return nil, fmt.Errorf("analyze %s: %w", name, err)
			}
		}
		rep.Findings = append(rep.Findings, fs...)
		rep.Series += series
		rep.Errors = append(rep.Errors, errs...)
	}
	if cfg.Store && len(rep.Findings) > 0 {
		recs := make([]model.FindingRecord, 0, len(rep.Findings))
		created := cfg.now().UTC()
		for i := range rep.Findings {
			f := &rep.Findings[i]
			body, err := json.Marshal(f)
			if err != nil {
				return nil, fmt.Errorf("analyze: encode finding %s: %w", f.ID, err)
			}
			recs = append(recs, model.FindingRecord{ID: f.ID, Kind: string(f.Kind), Service: f.Service, Created: created, Body: body})
		}
		if err := st.PutFindings(ctx, recs); err != nil {
			return nil, fmt.Errorf("analyze: %w", err)
		}
	}
	return rep, nil
}

// mergeService gives fs, the service's new findings, the ids of the stored findings
// they found again (MergeStored). Only step findings stored since the earliest change
// this run can report (minus the tolerance) can match: a record's time is when a run
// last stored it, never before its change. A ramp may begin anywhere in the data.
func mergeService(ctx context.Context, st Store, cfg Config, dc detect.Config, name string, fs []findings.Finding, from, to time.Time) error {
	tol := MergeTolerance(dc)
	var stored []findings.Finding
	for _, q := range []struct {
		kind  findings.Kind
		since time.Time
	}{
		{findings.KindRegression, to.Add(-(cfg.Window + cfg.extended(dc) + tol + cfg.Step))},
		{findings.KindGradual, from},
	} {
		recs, err := st.Findings(ctx, model.FindingsQuery{Service: name, Kind: string(q.kind), From: q.since, Limit: storedLimit})
		if err != nil {
			return fmt.Errorf("read stored findings: %w", err)
		}
		stored = append(stored, decodeStored(recs)...)
	}
	MergeStored(fs, stored, tol, cfg.now().UTC().Truncate(time.Second))
	return nil
}

func analyzeService(ctx context.Context, st Store, cfg Config, dc detect.Config, name string, from, to time.Time) ([]findings.Finding, int, []error, error) {
	rows, err := st.Rollup(ctx, model.RollupQuery{Service: name, From: from, To: to, MinShare: cfg.MinShare, Step: cfg.Step})
	if err != nil {
		return nil, 0, nil, err
	}
	prof, err := st.Profile(ctx, model.Selection{Service: name, From: from, To: to})
	if err != nil {
		return nil, 0, nil, err
	}
	svc := BuildService(name, rows, prof, from, to, cfg.Step)
	if svc.Buckets() == 0 {
		return nil, 0, nil, nil
	}
	res, err := detect.Run(svc, dc)
	if err != nil {
		return nil, 0, nil, err
	}
	fs := res.Findings
	for _, g := range res.Gradual {
		fs = append(fs, g.Finding(svc))
	}
	fs = dropBeforeData(fs, rows)
	var spans []model.VersionSpan
	spansRead := false
	versions := func() ([]model.VersionSpan, error) {
		if !spansRead {
			vs, err := st.Versions(ctx, name, from, to)
			if err != nil {
				return nil, err
			}
			spans = vs
			sort.SliceStable(spans, func(i, j int) bool { return spans[i].FirstSeen.Before(spans[j].FirstSeen) })
			spansRead = true
		}
		return spans, nil
	}
	var errs []error
	for i := range fs {
		f := &fs[i]
		after, before, err := stacksAround(ctx, st, name, f.ChangeTime, from, to, cfg.Window)
		if err != nil {
			return nil, 0, nil, err
		}
		f.RepresentativeStacks = representative(after, f.Function, dc.MaxStacks)
		if f.Gradual != nil {
			vs, err := versions()
			if err != nil {
				return nil, 0, nil, err
			}
			lo, hi := releasesDuring(vs, f.Gradual, cfg.RampLead)
			f.Gradual.Releases = nil
			for _, s := range vs[lo:hi] {
				f.Gradual.Releases = append(f.Gradual.Releases, s.Version)
			}
		}
		dir, ok := cfg.repo(name)
		if !ok {
			continue
		}
		vs, err := versions()
		if err != nil {
			return nil, 0, nil, err
		}
		rcs, err := rootCause(ctx, cfg, name, dir, f, vs, before, after, to)
		if err != nil {
			errs = append(errs, fmt.Errorf("root cause %s %s: %w", name, f.Function, err))
			continue
		}
		f.RootCauses = rcs
	}
	return fs, res.Stats.Series, errs, nil
}

// repo is the git repository of service name: Repos, else RepoDir/name when it is
// a git work tree.
func (c Config) repo(name string) (string, bool) {
	if dir, ok := c.Repos[name]; ok {
		return dir, true
	}
	if c.RepoDir == "" || name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return "", false
	}
	dir := filepath.Join(c.RepoDir, name)
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		return "", false
	}
	return dir, true
}

// dropBeforeData drops findings dated before the service's first rollup bucket: a
// change point there is the data beginning (a store younger than history), not a
// change anyone made.
func dropBeforeData(fs []findings.Finding, rows []model.RollupRow) []findings.Finding {
	var first time.Time
	for _, r := range rows {
		if first.IsZero() || r.Bucket.Before(first) {
			first = r.Bucket
		}
	}
	return slices.DeleteFunc(fs, func(f findings.Finding) bool {
		return !f.ChangeTime.IsZero() && f.ChangeTime.Before(first)
	})
}

// BuildService turns rollup rows (storage.Store.Rollup) into the detector's input,
// summing rows into steps of [from, to); prof (may be nil) gives the caller→callee
// edges dedup needs and the service's cores.
func BuildService(name string, rows []model.RollupRow, prof *model.Profile, from, to time.Time, step time.Duration) *detect.Service {
	n := int(to.Sub(from) / step)
	svc := &detect.Service{Name: name, Start: from, Step: step, Total: make([]float64, n)}
	series := map[string]*detect.Series{}
	groups, versions, cells := map[string]bool{}, map[string]bool{}, map[detect.Cell]bool{}
	add := func(m *map[string][]float64, k string, i int, v float64) {
		if *m == nil {
			*m = map[string][]float64{}
		}
		xs := (*m)[k]
		if xs == nil {
			xs = make([]float64, n)
			(*m)[k] = xs
		}
		xs[i] += v
	}
	addCell := func(m *map[detect.Cell][]float64, k detect.Cell, i int, v float64) {
		if *m == nil {
			*m = map[detect.Cell][]float64{}
		}
		xs := (*m)[k]
		if xs == nil {
			xs = make([]float64, n)
			(*m)[k] = xs
		}
		xs[i] += v
	}
	for _, r := range rows {
		if r.Bucket.Before(from) || !r.Bucket.Before(to) {
			continue
		}
		i := int(r.Bucket.Sub(from) / step)
		g := fmt.Sprint(r.HostGroup)
		cell := detect.Cell{Version: r.Version, Group: g}
		v := float64(r.Inclusive)
		if r.Function == "" {
			svc.Total[i] += v
			add(&svc.GroupTotal, g, i, v)
			groups[g] = true
			if r.Version != "" {
				add(&svc.VersionTotal, r.Version, i, v)
				addCell(&svc.CellTotal, cell, i, v)
				versions[r.Version] = true
				cells[cell] = true
			}
			continue
		}
		sr := series[r.Function]
		if sr == nil {
			sr = &detect.Series{Function: r.Function, Inclusive: make([]float64, n), Self: make([]float64, n)}
			series[r.Function] = sr
		}
		sr.Inclusive[i] += v
		sr.Self[i] += float64(r.Self)
		add(&sr.GroupInclusive, g, i, v)
		if r.Version != "" {
			add(&sr.VersionInclusive, r.Version, i, v)
			addCell(&sr.CellInclusive, cell, i, v)
			addCell(&sr.CellSelf, cell, i, float64(r.Self))
		}
	}
	names := make([]string, 0, len(series))
	for k := range series {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		sr := series[k]
		// Zero counts are data: every series needs every group, version and cell.
		for g := range groups {
			add(&sr.GroupInclusive, g, 0, 0)
		}
		for v := range versions {
			add(&sr.VersionInclusive, v, 0, 0)
		}
		for c := range cells {
			addCell(&sr.CellInclusive, c, 0, 0)
			addCell(&sr.CellSelf, c, 0, 0)
		}
		svc.Series = append(svc.Series, *sr)
	}
	if prof != nil {
		edges := map[[2]string]float64{}
		for _, s := range prof.Stacks {
			for j := 1; j < len(s.Frames); j++ {
				if s.Frames[j-1] != s.Frames[j] {
					edges[[2]string{s.Frames[j-1], s.Frames[j]}] += float64(s.Value)
				}
			}
		}
		for k, c := range edges {
			svc.Edges = append(svc.Edges, detect.Edge{Caller: k[0], Callee: k[1], Count: c})
		}
		sort.Slice(svc.Edges, func(i, j int) bool {
			a, b := svc.Edges[i], svc.Edges[j]
			if a.Caller != b.Caller {
				return a.Caller < b.Caller
			}
			return a.Callee < b.Callee
		})
		if secs := to.Sub(from).Seconds(); secs > 0 && prof.PeriodNS > 0 {
			svc.Cores = float64(prof.Total) * float64(prof.PeriodNS) / 1e9 / secs
		}
	}
	return svc
}

// stacksAround reads the service's stacks after a change (to the end of the data) and
// before it (one analysis window, at most back to from).
func stacksAround(ctx context.Context, st Store, name string, change, from, to time.Time, window time.Duration) (after, before *model.Profile, err error) {
	if change.IsZero() || change.Before(from) || !change.Before(to) {
		change = to.Add(-window)
	}
	after, err = st.Profile(ctx, model.Selection{Service: name, From: change, To: to})
	if err != nil {
		return nil, nil, err
	}
	lo := change.Add(-window)
	if lo.Before(from) {
		lo = from
	}
	before, err = st.Profile(ctx, model.Selection{Service: name, From: lo, To: change})
	if err != nil {
		return nil, nil, err
	}
	return after, before, nil
}

// representative returns the k stacks containing fn with the largest share of p.
func representative(p *model.Profile, fn string, k int) []findings.Stack {
	if p == nil || p.Total == 0 || k == 0 {
		return nil
	}
	var out []findings.Stack
	for _, s := range p.Stacks { // sorted by value, largest first
		if slices.Contains(s.Frames, fn) {
			out = append(out, findings.Stack{Frames: s.Frames, Share: float64(s.Value) / float64(p.Total)})
			if len(out) == k {
				break
			}
		}
	}
	return out
}

// releasesDuring returns the range [lo, hi) of spans (sorted by first seen) first
// deployed during ramp g: from its start (less lead, Config.RampLead) to its end.
func releasesDuring(spans []model.VersionSpan, g *findings.Gradual, lead time.Duration) (lo, hi int) {
	lo = sort.Search(len(spans), func(i int) bool { return !spans[i].FirstSeen.Before(g.Start.Add(-lead)) })
	hi = lo
	for hi < len(spans) && spans[hi].FirstSeen.Before(g.End) {
		hi++
	}
	return lo, hi
}

// deployRange returns the range [lo, hi] of spans whose changes may explain f: for a
// step, the last version before the finding's change up to the version it introduced
// (at most the two releases up to it); for a ramp, the version running before it and
// every release deployed during it (releasesDuring).
func deployRange(spans []model.VersionSpan, f *findings.Finding, to time.Time, tol, lead time.Duration) (lo, hi int, err error) {
	if f.Gradual != nil {
		lo, hi = releasesDuring(spans, f.Gradual, lead)
		if hi == lo {
			return 0, 0, errors.New("no version deployed during the ramp")
		}
		if lo == 0 {
			// The first version seen is in the ramp: the data begin there, no
			// version before it to compare with.
			lo = 1
			if hi <= lo {
				return 0, 0, errors.New("no version deployed before the ramp")
			}
		}
		return lo - 1, hi - 1, nil
	}
	change := f.ChangeTime
	if change.IsZero() {
		change = to
	}
	idx := func(v string) int {
		return slices.IndexFunc(spans, func(s model.VersionSpan) bool { return s.Version == v })
	}
	hi = idx(f.VersionAfter)
	if hi < 0 || f.VersionAfter == f.VersionBefore {
		// The newest version deployed by the change (bucket tolerance).
		hi = -1
		for i, s := range spans {
			if !s.FirstSeen.After(change.Add(tol)) {
				hi = i
			}
		}
	}
	if hi < 1 {
		return 0, 0, errors.New("no version deployed before the change")
	}
	lo = max(0, hi-2)
	if b := idx(f.VersionBefore); b >= 0 && b < hi && b >= hi-2 {
		lo = b
	}
	return lo, hi, nil
}

// rootCause ranks the changes of the versions deployRange picks (spans sorted by
// first seen) by stack attribution between before and after. A ramp gives no change
// time to rank deploys by: every release in it is timed alike.
func rootCause(ctx context.Context, cfg Config, name, dir string, f *findings.Finding, spans []model.VersionSpan, before, after *model.Profile, to time.Time) ([]findings.RootCause, error) {
	lo, hi, err := deployRange(spans, f, to, cfg.RootCause.TimingTolerance, cfg.RampLead)
	if err != nil {
		return nil, err
	}
	refs := cfg.VersionMaps[name]
	var deploys []rootcause.Deploy
	for _, s := range spans[lo : hi+1] {
		deploys = append(deploys, rootcause.Deploy{Version: s.Version, Ref: refs[s.Version], At: s.FirstSeen})
	}
	cands, err := rootcause.Repo{Dir: dir}.Candidates(ctx, deploys)
	if err != nil {
		return nil, err
	}
	reg := rootcause.Regression{Function: f.Function, ChangeTime: f.ChangeTime}
	if f.Gradual != nil {
		reg.ChangeTime = time.Time{}
	}
	type ba struct{ b, a float64 }
	stacks := map[string]*ba{}
	frames := map[string][]string{}
	for _, side := range []struct {
		p     *model.Profile
		after bool
	}{{before, false}, {after, true}} {
		if side.p == nil {
			continue
		}
		for _, s := range side.p.Stacks {
			k := strings.Join(s.Frames, "\x00")
			x := stacks[k]
			if x == nil {
				x = &ba{}
				stacks[k] = x
				frames[k] = s.Frames
			}
			if side.after {
				x.a += float64(s.Value)
			} else {
				x.b += float64(s.Value)
			}
		}
		if side.after {
			reg.AfterTotal = float64(side.p.Total)
		} else {
			reg.BeforeTotal = float64(side.p.Total)
		}
	}
	keys := make([]string, 0, len(stacks))
	for k := range stacks {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		reg.Stacks = append(reg.Stacks, rootcause.StackDelta{Frames: frames[k], Before: stacks[k].b, After: stacks[k].a})
	}
	res, err := rootcause.Rank(reg, cands, cfg.RootCause)
	if err != nil {
		return nil, err
	}
	return res.RootCauses(), nil
}
