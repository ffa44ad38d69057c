package simulate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Fleet is a generated fleet. It is immutable after New except for WriteRepos, which
// records commit hashes in the truth.
type Fleet struct {
	cfg      Config
	nBuckets int
	services []*service
	truth    Truth
}

type service struct {
	name    string
	cat     *catalog
	hosts   []string
	load    []float64   // per-host traffic factor
	effect  [][]float64 // per-host, per-node cost factor
	adopt   [][]int     // per release (1-based, index 0 unused): bucket each host adopts it
	vers    []*version  // vers[0] = v1, vers[k] = after release k
	rel     []Release   // per release k-1
	prs     [][]*pullRequest
	spikes  []event
	outages []event
	// seasonal is the node whose cost swings daily, or -1.
	seasonal int
	// trends are the trend controls' functions (cost falling from History on).
	trends []int
}

// version is the code of one release: function names (after renames) and node weights.
type version struct {
	name   string
	names  []string    // per function
	weight []float64   // per node self weight (not normalized)
	frames [][]string  // per node: names root first
	incl   [][]int     // per node: distinct functions on its path
	prs    []int       // PR numbers in this release
	total  float64     // sum of weight
	_      [0]struct{} // not comparable
}

type event struct {
	node, host  int
	first, last int // buckets, inclusive
}

// pullRequest is one change merged into a service's repository.
type pullRequest struct {
	Number  int
	Title   string
	Author  Author
	Branch  string
	Squash  bool
	Kind    string
	Release int
	Merged  time.Time
	// Edits are the owned functions whose bodies change; Rename renames Edits[0] to it.
	Edits  []int
	Rename string
	// Scale multiplies the self weight of function Edits[i]'s nodes by Scale[i];
	// Shift moves a fraction of Edits[0]'s weight to Edits[1].
	Scale []float64
	Shift float64
	// Ramp > 0: Scale[0] is reached Ramp after the release starts, linearly.
	Ramp time.Duration
	// Commit is filled in by WriteRepos.
	Commit string
}

// New generates a fleet for cfg.
func New(cfg Config) (*Fleet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("simulate config: %w", err)
	}
	f := &Fleet{cfg: cfg, nBuckets: int(cfg.Duration / cfg.Bucket)}
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed))
	prNumber := 100
	for si := range cfg.Services {
		s := &service{name: servicePool[si], seasonal: -1}
		s.cat = buildCatalog(rng, s.name, cfg.Functions, cfg.ZipfS)
		nn := len(s.cat.nodes)
		for h := range cfg.Hosts {
			s.hosts = append(s.hosts, fmt.Sprintf("%s-%03d", s.name, h))
			s.load = append(s.load, logNormal(rng, 2*cfg.HostSigma))
			eff := make([]float64, nn)
			for n := range eff {
				eff[n] = logNormal(rng, cfg.HostSigma)
			}
			s.effect = append(s.effect, eff)
		}
		f.services = append(f.services, s)
	}
	if err := f.plan(rng, &prNumber); err != nil {
		return nil, err
	}
	for _, s := range f.services {
		f.transients(rng, s)
		f.buildVersions(s)
	}
	f.fillTruth()
	return f, nil
}

// logNormal has mean 1 and log-standard deviation sigma.
func logNormal(rng *rand.Rand, sigma float64) float64 {
	return math.Exp(sigma*rng.NormFloat64() - sigma*sigma/2)
}

func (f *Fleet) bucketOf(t time.Time) int { return int(t.Sub(f.cfg.Start) / f.cfg.Bucket) }

func (f *Fleet) bucketTime(b int) time.Time { return f.cfg.Start.Add(time.Duration(b) * f.cfg.Bucket) }

// plan places releases, rollouts, regressions, controls and noise PRs.
func (f *Fleet) plan(rng *rand.Rand, prNumber *int) error {
	cfg := f.cfg
	R := cfg.Releases
	reserved := make([]map[int]bool, len(f.services)) // functions an injection owns
	for i := range reserved {
		reserved[i] = map[int]bool{}
	}
	for _, s := range f.services {
		s.prs = make([][]*pullRequest, R+1)
		s.adopt = make([][]int, R+1)
		for k := 1; k <= R; k++ {
			start := f.bucketOf(cfg.Start.Add(cfg.History + (cfg.Duration-cfg.History)*time.Duration(k)/time.Duration(R+1)))
			perm := rng.Perm(len(s.hosts))
			s.adopt[k] = make([]int, len(s.hosts))
			stageBuckets := int(cfg.StageDuration / cfg.Bucket)
			for pos, h := range perm {
				for j, frac := range cfg.Stages {
					if pos < int(math.Ceil(frac*float64(len(s.hosts)))) {
						s.adopt[k][h] = start + j*stageBuckets
						break
					}
				}
			}
			full := start + (len(cfg.Stages)-1)*stageBuckets
			s.rel = append(s.rel, Release{
				Version: fmt.Sprintf("v%d", k+1), Tag: fmt.Sprintf("v%d", k+1),
				Start: f.bucketTime(start), Full: f.bucketTime(full),
			})
		}
	}
	newPR := func(s *service, k int, kind string) *pullRequest {
		*prNumber += 1 + rng.IntN(7)
		a := authorPool[rng.IntN(len(authorPool))]
		pr := &pullRequest{Number: *prNumber, Author: a, Kind: kind, Release: k, Squash: rng.IntN(2) == 0}
		s.prs[k] = append(s.prs[k], pr)
		return pr
	}
	pickFree := func(si int, ok func(fn int) bool) (int, error) {
		s := f.services[si]
		for _, i := range rng.Perm(len(s.cat.owned)) {
			fn := s.cat.owned[i]
			if !reserved[si][fn] && (ok == nil || ok(fn)) {
				reserved[si][fn] = true
				return fn, nil
			}
		}
		return 0, fmt.Errorf("service %s: not enough functions for the injections: raise Functions", s.name)
	}
	next := 0
	nextRelease := func(want int) int {
		if want > 0 {
			return want
		}
		next++
		return 1 + (next-1)%R
	}
	specs := slices.Clone(cfg.Regressions)
	for range cfg.RandomRegressions {
		lo, hi := math.Log(cfg.RandomMinSize), math.Log(cfg.RandomMaxSize)
		specs = append(specs, RegressionSpec{Size: math.Exp(lo + rng.Float64()*(hi-lo))})
	}
	for i, sp := range specs {
		si, fn := -1, 0
		if sp.Function != "" {
			for j, s := range f.services {
				if x, ok := s.cat.byName[sp.Function]; ok && s.cat.funcs[x].owned {
					si, fn = j, x
				}
			}
			if si < 0 {
				return fmt.Errorf("regression %d: function %q is not an owned function of any simulated service", i, sp.Function)
			}
			if reserved[si][fn] {
				return fmt.Errorf("regression %d: function %q injected twice", i, sp.Function)
			}
			reserved[si][fn] = true
		} else {
			si = i % len(f.services)
			var err error
			if fn, err = pickFree(si, nil); err != nil {
				return err
			}
		}
		s := f.services[si]
		pr := newPR(s, nextRelease(sp.Release), "regression")
		pr.Edits, pr.Scale, pr.Ramp = []int{fn}, []float64{1 + sp.Size}, sp.Ramp
		pr.Title = fmt.Sprintf(regressionTitles[rng.IntN(len(regressionTitles))], s.cat.funcs[fn].name)
	}
	for si, s := range f.services {
		for range cfg.CostShifts {
			a, err := pickFree(si, nil)
			if err != nil {
				return err
			}
			b, err := pickFree(si, func(fn int) bool { return s.cat.funcs[fn].pkg == s.cat.funcs[a].pkg })
			if err != nil {
				return fmt.Errorf("cost shift: %w", err)
			}
			pr := newPR(s, nextRelease(0), "cost_shift")
			pr.Edits, pr.Shift = []int{a, b}, cfg.ShiftFraction
			pr.Title = fmt.Sprintf("Move %s work into %s", s.cat.funcs[a].name, s.cat.funcs[b].name)
		}
		for range cfg.Refactors {
			a, err := pickFree(si, nil)
			if err != nil {
				return err
			}
			pr := newPR(s, nextRelease(0), "refactor")
			pr.Edits, pr.Rename = []int{a}, s.cat.funcs[a].name+"Fast"
			for {
				if _, taken := s.cat.byName[s.cat.funcs[a].goName(pr.Rename)]; !taken {
					break
				}
				pr.Rename += "X"
			}
			pr.Title = fmt.Sprintf("Rename %s to %s", s.cat.funcs[a].name, pr.Rename)
		}
		for k := 1; k <= R; k++ {
			for range cfg.NoisePRs {
				pr := newPR(s, k, "noise")
				for range 1 + rng.IntN(2) {
					for {
						fn := s.cat.owned[rng.IntN(len(s.cat.owned))]
						if !reserved[si][fn] && !slices.Contains(pr.Edits, fn) {
							pr.Edits = append(pr.Edits, fn)
							break
						}
					}
				}
				pr.Title = fmt.Sprintf(noiseTitles[rng.IntN(len(noiseTitles))], s.cat.funcs[pr.Edits[0]].name)
			}
		}
		if cfg.SeasonalMix > 0 {
			fn, err := pickFree(si, nil)
			if err != nil {
				return err
			}
			s.seasonal = s.cat.nodesOf(fn)[0]
		}
		for range cfg.TrendControls {
			fn, err := pickFree(si, nil)
			if err != nil {
				return fmt.Errorf("trend control: %w", err)
			}
			s.trends = append(s.trends, fn)
		}
	}
	// Merge order and times: PRs of release k merge in the 12 hours before it starts.
	for _, s := range f.services {
		for k := 1; k <= R; k++ {
			prs := s.prs[k]
			rng.Shuffle(len(prs), func(i, j int) { prs[i], prs[j] = prs[j], prs[i] })
			rs := s.rel[k-1].Start
			for i, pr := range prs {
				pr.Merged = rs.Add(-12 * time.Hour).Add(time.Duration(i+1) * 11 * time.Hour / time.Duration(len(prs)+1)).Truncate(time.Minute)
				pr.Branch = fmt.Sprintf("%s/pr-%d", pr.Author.login(), pr.Number)
			}
			slices.SortStableFunc(prs, func(a, b *pullRequest) int { return a.Merged.Compare(b.Merged) })
		}
	}
	return nil
}

// transients places spikes and host outages away from the rollouts.
func (f *Fleet) transients(rng *rand.Rand, s *service) {
	n := f.nBuckets
	for range f.cfg.Spikes {
		first := rng.IntN(max(1, n-3))
		node := s.cat.nodesOf(s.cat.owned[rng.IntN(len(s.cat.owned))])[0]
		s.spikes = append(s.spikes, event{node: node, host: -1, first: first, last: min(n-1, first+rng.IntN(3))})
	}
	for range f.cfg.HostFailures {
		first := rng.IntN(max(1, n-6))
		s.outages = append(s.outages, event{host: rng.IntN(len(s.hosts)), node: -1, first: first, last: min(n-1, first+1+rng.IntN(5))})
	}
}

// buildVersions applies each release's PRs to the previous version.
func (f *Fleet) buildVersions(s *service) {
	c := s.cat
	v := &version{name: "v1", names: make([]string, len(c.funcs)), weight: slices.Clone(c.weight)}
	for i, fn := range c.funcs {
		v.names[i] = fn.goName(fn.name)
	}
	finish := func(v *version) {
		v.frames = make([][]string, len(c.nodes))
		v.incl = make([][]int, len(c.nodes))
		v.total = 0
		for n := range c.nodes {
			p := c.path(n)
			fr := make([]string, len(p))
			var inc []int
			for i, pn := range p {
				fi := c.nodes[pn].fn
				fr[i] = v.names[fi]
				if !slices.Contains(inc, fi) {
					inc = append(inc, fi)
				}
			}
			v.frames[n], v.incl[n] = fr, inc
			v.total += v.weight[n]
		}
	}
	finish(v)
	s.vers = []*version{v}
	for k := 1; k < len(s.prs); k++ {
		nv := &version{name: fmt.Sprintf("v%d", k+1), names: slices.Clone(v.names), weight: slices.Clone(v.weight)}
		for _, pr := range s.prs[k] {
			nv.prs = append(nv.prs, pr.Number)
			for i, sc := range pr.Scale {
				for _, n := range c.nodesOf(pr.Edits[i]) {
					nv.weight[n] *= sc
				}
			}
			if pr.Shift > 0 {
				from, to := c.nodesOf(pr.Edits[0])[0], c.nodesOf(pr.Edits[1])[0]
				d := nv.weight[from] * pr.Shift
				nv.weight[from] -= d
				nv.weight[to] += d
			}
			if pr.Rename != "" {
				fn := c.funcs[pr.Edits[0]]
				nv.names[pr.Edits[0]] = fn.goName(pr.Rename)
			}
		}
		finish(nv)
		s.vers = append(s.vers, nv)
		v = nv
	}
}

// rampFactor is what multiplies the self cost of fn's nodes on a host running version
// vi in bucket b beyond the version's weights: ramped regressions are in the weights
// at their full size and grow into it; trend controls fall from History on.
func (f *Fleet) rampFactor(s *service, vi, b int) map[int]float64 {
	var out map[int]float64
	mul := func(fn int, x float64) {
		if out == nil {
			out = map[int]float64{}
		}
		if _, ok := out[fn]; !ok {
			out[fn] = 1
		}
		out[fn] *= x
	}
	t := f.bucketTime(b)
	for k := 1; k <= vi && k < len(s.prs); k++ {
		for _, pr := range s.prs[k] {
			if pr.Ramp <= 0 {
				continue
			}
			frac := math.Min(1, math.Max(0, float64(t.Sub(s.rel[k-1].Start))/float64(pr.Ramp)))
			size := pr.Scale[0] - 1
			mul(pr.Edits[0], (1+size*frac)/(1+size))
		}
	}
	if len(s.trends) > 0 {
		from := f.cfg.Start.Add(f.cfg.History)
		frac := math.Min(1, math.Max(0, float64(t.Sub(from))/float64(f.cfg.Duration-f.cfg.History)))
		for _, fn := range s.trends {
			mul(fn, 1-f.cfg.TrendSize*frac)
		}
	}
	return out
}

// versionAt is the index of the version host h runs in bucket b.
func (s *service) versionAt(h, b int) int {
	v := 0
	for k := 1; k < len(s.adopt); k++ {
		if s.adopt[k][h] <= b {
			v = k
		}
	}
	return v
}

// shares returns the expected self and inclusive share of function fn in version v
// (base weights, before host effects and transients).
func (s *service) shares(v *version, fn int) (self, incl float64) {
	for n := range s.cat.nodes {
		w := v.weight[n] / v.total
		if s.cat.nodes[n].fn == fn {
			self += w
		}
		if slices.Contains(v.incl[n], fn) {
			incl += w
		}
	}
	return self, incl
}

// Buckets is the number of time buckets.
func (f *Fleet) Buckets() int { return f.nBuckets }

// Config returns the fleet's configuration.
func (f *Fleet) Config() Config { return f.cfg }

// Services lists the service names.
func (f *Fleet) Services() []string {
	var names []string
	for _, s := range f.services {
		names = append(names, s.name)
	}
	return names
}

// Functions lists the owned functions of a service (v1 names), sorted; nil for an
// unknown service.
func (f *Fleet) Functions(svc string) []string {
	for _, s := range f.services {
		if s.name == svc {
			return s.cat.ownedFunctionNames()
		}
	}
	return nil
}
