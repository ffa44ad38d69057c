package evaluate

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/detect"
	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/rootcause"
	"github.com/fleetprof/fleetprof/analyzer/simulate"
)

// Config is one evaluation sweep. Start from DefaultConfig.
type Config struct {
	// Sizes are the injected relative self-cost increases to sweep.
	Sizes []float64
	// PerService is the number of regressions injected per service per size.
	PerService int
	// Sim is the base fleet; each size gets its own fleet (seed + size index).
	Sim simulate.Config
	// Seeds are offsets added to Sim.Seed: each size runs once per offset and its
	// row pools the runs (counts summed, ratios over the sums). Empty means {0}.
	// One seed can hide a false-positive rate: a second one measured 0.011 FP/series
	// where the first had 0.
	Seeds     []int64
	Detect    detect.Config
	RootCause rootcause.Config
	// RepoDir, when set, enables root cause: repositories are written under it
	// (one subdirectory per size). Needs the git command.
	RepoDir string
	// Latency enables the latency search (detection on growing prefixes, up to
	// MaxLatency after full rollout).
	Latency    bool
	MaxLatency time.Duration
	// ShareBands are the upper edges of the inclusive-share bands results are also
	// reported per (the last band is open-ended).
	ShareBands []float64
}

// DefaultConfig is a small sweep that runs in seconds.
func DefaultConfig() Config {
	sim := simulate.DefaultConfig()
	sim.Services, sim.Hosts, sim.Functions = 1, 20, 40
	// Two quiet days of history, then a day with the releases: seasonality needs two
	// periods before the analysis window.
	sim.Duration, sim.History = 72*time.Hour, 48*time.Hour
	d := detect.DefaultConfig()
	d.AnalysisWindow = 23 * time.Hour // the release day (after one hour of extended window, two full days of history)
	return Config{
		Sizes:      []float64{0.05, 0.2, 0.5},
		PerService: 3,
		Sim:        sim,
		Detect:     d,
		RootCause:  rootcause.DefaultConfig(),
		Latency:    true,
		MaxLatency: 4 * time.Hour,
		ShareBands: []float64{0.005, 0.02, 0.1},
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if len(c.Sizes) == 0 || c.PerService < 1 {
		return fmt.Errorf("sizes %v, per service %d: want at least one of each", c.Sizes, c.PerService)
	}
	if err := c.Sim.Validate(); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if err := c.Detect.Validate(); err != nil {
		return fmt.Errorf("detect: %w", err)
	}
	return c.RootCause.Validate()
}

// Row summarizes one size.
type Row struct {
	Size float64 `json:"size"`
	Tally
	// ControlsReported counts findings on a negative control's function (the target
	// of a cost shift, a refactor's new name, a spiking or seasonal function), except
	// on callers of an injected regression, whose inclusive share rose with it.
	ControlsReported int `json:"controls_reported"`
	// Bands break the row down by the inclusive share of the function (injected
	// regressions by theirs, false positives and series by theirs).
	Bands []Band `json:"bands"`
	Cases []Case `json:"cases"`
	// FalseFindings describes each false positive (function, change, p, filters), so
	// a rate can be traced to the stage that let it through.
	FalseFindings []string `json:"false_findings,omitempty"`
}

// Band is a Row restricted to functions with inclusive share in [Lo, Hi).
type Band struct {
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
	Tally
	// MeanFloor is the mean noise floor sqrt(p(1−p)/N) of the band's regressions.
	MeanFloor float64 `json:"mean_floor"`
}

// Tally is what rows and bands count and the ratios made from the counts.
type Tally struct {
	Regressions int     `json:"regressions"`
	Detected    int     `json:"detected"`
	Recall      float64 `json:"recall"`
	// FalsePositives are findings matching no injected regression (nor a caller of
	// one); Series the function series examined.
	FalsePositives int     `json:"false_positives"`
	Series         int     `json:"series"`
	FPPerSeries    float64 `json:"fp_per_series"`
	// MeanLatency is the mean time from full rollout until the detector, run on the
	// data up to then, first reports the regression.
	MeanLatency time.Duration `json:"mean_latency"`
	// RootCauseTop3 counts detected regressions whose PR was in the top 3.
	RootCauseTop3     int     `json:"root_cause_top3"`
	RootCauseAccuracy float64 `json:"root_cause_accuracy"`
	// MeanXFloor is the mean injected inclusive-share change in units of the sampling
	// noise floor sqrt(p(1−p)/N), N = service samples in one bucket.
	MeanXFloor float64 `json:"mean_x_floor"`
	latN       int
	latSum     time.Duration
}

// add pools o's counts and sums into t (before finish).
func (t *Tally) add(o Tally) {
	t.Regressions += o.Regressions
	t.Detected += o.Detected
	t.FalsePositives += o.FalsePositives
	t.Series += o.Series
	t.RootCauseTop3 += o.RootCauseTop3
	t.MeanXFloor += o.MeanXFloor
	t.latSum += o.latSum
	t.latN += o.latN
}

// finish turns the pooled counts and sums into ratios and means.
func (t *Tally) finish() {
	if t.Regressions > 0 {
		t.Recall = float64(t.Detected) / float64(t.Regressions)
		t.MeanXFloor /= float64(t.Regressions)
	}
	if t.Series > 0 {
		t.FPPerSeries = float64(t.FalsePositives) / float64(t.Series)
	}
	if t.latN > 0 {
		t.MeanLatency = t.latSum / time.Duration(t.latN)
	}
	if t.Detected > 0 {
		t.RootCauseAccuracy = float64(t.RootCauseTop3) / float64(t.Detected)
	}
}

// Case is one injected regression's outcome.
type Case struct {
	Seed     int64   `json:"seed"`
	Function string  `json:"function"`
	Share    float64 `json:"share"` // inclusive share before
	Floor    float64 `json:"floor"` // sqrt(p(1−p)/N), N = service samples per bucket
	XFloor   float64 `json:"x_floor"`
	Detected bool    `json:"detected"`
	// Dropped is the stage and reason that removed a missed regression, if any.
	Dropped   string        `json:"dropped,omitempty"`
	Latency   time.Duration `json:"latency,omitempty"`
	RootCause bool          `json:"root_cause_top3"`
}

// Run runs the sweep.
func Run(ctx context.Context, cfg Config) ([]Row, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("evaluate config: %w", err)
	}
	seeds := cfg.Seeds
	if len(seeds) == 0 {
		seeds = []int64{0}
	}
	var rows []Row
	for si, size := range cfg.Sizes {
		var row Row
		for ki, off := range seeds {
			sc := cfg.Sim
			sc.Seed += off + int64(si)
			sc.Regressions = nil
			sc.RandomRegressions = cfg.PerService * sc.Services
			sc.RandomMinSize, sc.RandomMaxSize = size, size
			r, err := runOne(ctx, cfg, sc, fmt.Sprintf("%d-%d", si, ki))
			if err != nil {
				return nil, fmt.Errorf("size %v seed %d: %w", size, sc.Seed, err)
			}
			if ki == 0 {
				row = r
			} else {
				row.add(r)
			}
		}
		row.finish()
		row.Size = size
		rows = append(rows, row)
	}
	return rows, nil
}

// add pools o's counts and sums into r (before finish).
func (r *Row) add(o Row) {
	r.Tally.add(o.Tally)
	r.ControlsReported += o.ControlsReported
	r.Cases = append(r.Cases, o.Cases...)
	r.FalseFindings = append(r.FalseFindings, o.FalseFindings...)
	for i := range r.Bands {
		r.Bands[i].add(o.Bands[i].Tally)
		r.Bands[i].MeanFloor += o.Bands[i].MeanFloor
	}
}

// finish turns the pooled counts and sums into ratios and means.
func (r *Row) finish() {
	r.Tally.finish()
	for i := range r.Bands {
		b := &r.Bands[i]
		if b.Regressions > 0 {
			b.MeanFloor /= float64(b.Regressions)
		}
		b.finish()
	}
}

// runOne evaluates one fleet; the row holds counts and sums (finish makes ratios).
func runOne(ctx context.Context, cfg Config, sc simulate.Config, idx string) (Row, error) {
	fleet, err := simulate.New(sc)
	if err != nil {
		return Row{}, err
	}
	repoDir := ""
	if cfg.RepoDir != "" {
		repoDir = filepath.Join(cfg.RepoDir, idx)
		if err := fleet.WriteRepos(repoDir); err != nil {
			return Row{}, err
		}
	}
	tr := fleet.Truth()
	svcs := BuildServices(fleet)
	var row Row
	edges := append(append([]float64{0}, cfg.ShareBands...), 1.0000001)
	for i := 1; i < len(edges); i++ {
		row.Bands = append(row.Bands, Band{Lo: edges[i-1], Hi: edges[i]})
	}
	band := func(share float64) *Band {
		for i := range row.Bands {
			if share < row.Bands[i].Hi {
				return &row.Bands[i]
			}
		}
		return &row.Bands[len(row.Bands)-1]
	}
	for _, info := range tr.Services {
		svc := svcs[info.Name]
		res, err := detect.Run(svc, cfg.Detect)
		if err != nil {
			return Row{}, err
		}
		row.Series += res.Stats.Series
		shares := map[string]float64{}
		tot := 0.0
		for _, x := range svc.Total {
			tot += x
		}
		for _, sr := range svc.Series {
			inc := 0.0
			for _, x := range sr.Inclusive {
				inc += x
			}
			shares[sr.Function] = inc / math.Max(tot, 1)
			band(shares[sr.Function]).Series++
		}
		var regs []simulate.Injection
		for _, in := range tr.Regressions {
			if in.Service == info.Name {
				regs = append(regs, in)
			}
		}
		ancestors := callersOf(svc, regs)
		bucketN := mean(svc.Total)
		controls := map[string]bool{}
		why := map[string]string{} // the injections that touched a function, for FalseFindings
		for _, c := range tr.Controls {
			if c.Service == info.Name {
				controls[c.Function], controls[c.To] = true, true
				why[c.Function] += fmt.Sprintf(" %s(from %s)", c.Kind, c.Start.Sub(svc.Start))
				why[c.To] += fmt.Sprintf(" %s(to %s)", c.Kind, c.Start.Sub(svc.Start))
			}
		}
		delete(controls, "")
		for _, in := range regs {
			why[in.Function] += fmt.Sprintf(" regression(%s %s)", in.Version, in.Start.Sub(svc.Start))
		}
		for _, f := range res.Findings {
			// A control that is also a caller of an injected regression rose with it:
			// that finding is redundant (as for false positives), not a control's.
			if matchRegression(f, regs, sc.Bucket) < 0 && controls[f.Function] && !ancestors[f.Function] {
				row.ControlsReported++
			}
			if matchRegression(f, regs, sc.Bucket) < 0 && !ancestors[f.Function] {
				row.FalsePositives++
				band(shares[f.Function]).FalsePositives++
				row.FalseFindings = append(row.FalseFindings, fmt.Sprintf("seed %d %s %s share %.3g%% %+.3g%% at %s p=%.2g %s→%s [%s]",
					sc.Seed, info.Name, f.Function, 100*shares[f.Function], 100*f.RelativeChange,
					f.ChangeTime.Sub(svc.Start), f.PValue, f.VersionBefore, f.VersionAfter, strings.Join(f.FiltersPassed, ","))+why[f.Function])
			}
		}
		for _, in := range regs {
			row.Regressions++
			p := in.InclusiveBefore
			floor := math.Sqrt(p * (1 - p) / bucketN)
			c := Case{Seed: sc.Seed, Function: in.Function, Share: p, Floor: floor, XFloor: (in.InclusiveAfter - p) / floor}
			bd := band(p)
			bd.Regressions++
			bd.MeanFloor += floor
			bd.MeanXFloor += c.XFloor
			var hit *findings.Finding
			for i := range res.Findings {
				if matchRegression(res.Findings[i], []simulate.Injection{in}, sc.Bucket) == 0 {
					hit = &res.Findings[i]
					break
				}
			}
			if hit == nil {
				for _, d := range res.Dropped {
					if d.Function == in.Function {
						c.Dropped = d.Stage + ": " + d.Reason
					}
				}
			}
			if hit != nil {
				c.Detected = true
				row.Detected++
				bd.Detected++
				if cfg.Latency {
					if lat, ok := latency(svc, cfg.Detect, in, sc.Bucket, cfg.MaxLatency); ok {
						c.Latency = lat
						row.latSum += lat
						row.latN++
						bd.latSum += lat
						bd.latN++
					}
				}
				if repoDir != "" {
					ok, err := rootCauseHit(ctx, cfg, filepath.Join(repoDir, info.Repo), info, svc, hit, in)
					if err != nil {
						return Row{}, err
					}
					c.RootCause = ok
					if ok {
						row.RootCauseTop3++
						bd.RootCauseTop3++
					}
				}
			}
			row.MeanXFloor += c.XFloor
			row.Cases = append(row.Cases, c)
		}
	}
	return row, nil
}

// BuildServices turns a simulated fleet into detector input, one Service per
// simulated service, with host-group and version breakdowns and stacks.
func BuildServices(f *simulate.Fleet) map[string]*detect.Service {
	cfg := f.Config()
	bs := map[string]*detect.Builder{}
	for _, name := range f.Services() {
		bs[name] = detect.NewBuilder(name, float64(cfg.Hosts)*cfg.CoresPerHost, cfg.Start, cfg.Bucket, f.Buckets())
	}
	for i := range f.Buckets() {
		f.Bucket(i).Each(func(s simulate.StackSample) {
			// Bucket, count and frames come from the simulator and are always valid.
			_ = bs[s.Service].Add(i, s.Version, fmt.Sprint(s.HostGroup), s.Frames, float64(s.Count))
		})
	}
	out := map[string]*detect.Service{}
	for name, b := range bs {
		out[name] = b.Service()
	}
	return out
}

// matchRegression returns the index of the regression f reports (same function,
// change between rollout start and a few hours after full rollout), or -1.
func matchRegression(f findings.Finding, regs []simulate.Injection, step time.Duration) int {
	for i, in := range regs {
		if f.Function != in.Function && !slices.Contains(f.DedupGroup, in.Function) {
			continue
		}
		if f.ChangeTime.IsZero() || (!f.ChangeTime.Before(in.Start.Add(-2*step)) && f.ChangeTime.Before(in.Full.Add(3*time.Hour))) {
			return i
		}
	}
	return -1
}

// callersOf lists functions above an injected function in some stack: their
// inclusive share rose with it, so reporting them is redundant, not false.
func callersOf(svc *detect.Service, regs []simulate.Injection) map[string]bool {
	out := map[string]bool{}
	for _, st := range svc.Stacks {
		for _, in := range regs {
			if i := slices.Index(st.Frames, in.Function); i > 0 {
				for _, fr := range st.Frames[:i] {
					out[fr] = true
				}
			}
		}
	}
	return out
}

// latency finds the shortest data prefix, ending at or after full rollout, on which
// the regression is detected.
func latency(svc *detect.Service, cfg detect.Config, in simulate.Injection, step, maxLat time.Duration) (time.Duration, bool) {
	full := int(in.Full.Sub(svc.Start) / step)
	last := svc.Buckets()
	if maxLat > 0 {
		last = min(last, full+int(maxLat/step))
	}
	for end := full + 1; end <= last; end++ {
		res, err := detect.Run(truncate(svc, end), cfg)
		if err != nil {
			continue // too short for the configured windows
		}
		for _, f := range res.Findings {
			if matchRegression(f, []simulate.Injection{in}, step) == 0 {
				return time.Duration(end-full) * step, true
			}
		}
	}
	return 0, false
}

// truncate returns svc restricted to its first n buckets (sharing the arrays).
func truncate(svc *detect.Service, n int) *detect.Service {
	c := *svc
	c.Total = svc.Total[:n]
	c.GroupTotal = cutMap(svc.GroupTotal, n)
	c.VersionTotal = cutMap(svc.VersionTotal, n)
	c.CellTotal = cutMap(svc.CellTotal, n)
	c.Series = make([]detect.Series, len(svc.Series))
	for i, s := range svc.Series {
		s.Inclusive = s.Inclusive[:n]
		if s.Self != nil {
			s.Self = s.Self[:n]
		}
		s.GroupInclusive = cutMap(s.GroupInclusive, n)
		s.VersionInclusive = cutMap(s.VersionInclusive, n)
		s.CellInclusive = cutMap(s.CellInclusive, n)
		s.CellSelf = cutMap(s.CellSelf, n)
		c.Series[i] = s
	}
	c.Stacks = make([]detect.Stack, len(svc.Stacks))
	for i, s := range svc.Stacks {
		s.Count = s.Count[:n]
		c.Stacks[i] = s
	}
	return &c
}

func cutMap[K comparable](m map[K][]float64, n int) map[K][]float64 {
	if m == nil {
		return nil
	}
	out := make(map[K][]float64, len(m))
	for k, v := range m {
		out[k] = v[:n]
	}
	return out
}

// rootCauseHit ranks the changes of the releases deployed up to the finding's change
// and reports whether the injected PR is in the top 3.
func rootCauseHit(ctx context.Context, cfg Config, repo string, info simulate.ServiceInfo, svc *detect.Service,
	f *findings.Finding, in simulate.Injection) (bool, error) {
	change := f.ChangeTime
	if change.IsZero() {
		change = in.Full
	}
	deploys := []rootcause.Deploy{{Version: "v1", At: svc.Start.Add(-24 * time.Hour)}}
	for _, r := range info.Releases {
		if r.Start.After(change.Add(cfg.RootCause.TimingTolerance)) {
			break
		}
		deploys = append(deploys, rootcause.Deploy{Version: r.Version, Ref: r.Tag, At: r.Start})
	}
	if len(deploys) > 3 {
		deploys = deploys[len(deploys)-3:] // the last two releases before the change
	}
	if len(deploys) < 2 {
		return false, nil
	}
	cands, err := rootcause.Repo{Dir: repo}.Candidates(ctx, deploys)
	if err != nil {
		return false, err
	}
	cb := int(change.Sub(svc.Start) / svc.Step)
	lo, hi := max(0, cb-18), svc.Buckets()
	reg := rootcause.Regression{Function: f.Function, ChangeTime: change}
	for _, st := range svc.Stacks {
		var b, a float64
		for i := lo; i < hi; i++ {
			if i < cb {
				b += st.Count[i]
			} else {
				a += st.Count[i]
			}
		}
		reg.Stacks = append(reg.Stacks, rootcause.StackDelta{Frames: st.Frames, Before: b, After: a})
	}
	for i := lo; i < hi; i++ {
		if i < cb {
			reg.BeforeTotal += svc.Total[i]
		} else {
			reg.AfterTotal += svc.Total[i]
		}
	}
	res, err := rootcause.Rank(reg, cands, cfg.RootCause)
	if err != nil {
		return false, err
	}
	for _, c := range res.RootCauses() {
		if c.PR == in.Change.PR {
			return true, nil
		}
	}
	return false, nil
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(max(1, len(xs)))
}

// Table formats rows for humans: one line per size, then its share bands.
func Table(rows []Row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-14s %5s %6s %9s %8s %10s %9s %8s %8s\n", "size/share%", "regs", "recall", "floor", "×floor", "fp/series", "latency", "rc-top3", "controls")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-14.3f %5d %6.2f %9s %8.1f %10.4f %9s %8.2f %8d\n", r.Size, r.Regressions, r.Recall, "", r.MeanXFloor, r.FPPerSeries, r.MeanLatency, r.RootCauseAccuracy, r.ControlsReported)
		for _, d := range r.Bands {
			fmt.Fprintf(&b, "  %5.2g–%-6.2g %5d %6.2f %9.2g %8.1f %10.4f %9s %8.2f\n", 100*d.Lo, 100*math.Min(d.Hi, 1), d.Regressions, d.Recall, d.MeanFloor, d.MeanXFloor, d.FPPerSeries, d.MeanLatency, d.RootCauseAccuracy)
		}
	}
	b.WriteString("(share bands in % of the service; floor = sqrt(p(1−p)/N) per bucket; fp/series per analysis window)\n")
	return b.String()
}
