package simulate

import (
	"cmp"
	"encoding/json"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
)

var update = flag.Bool("update", false, "rewrite golden files")

func smallConfig() Config {
	c := DefaultConfig()
	c.Hosts = 10
	c.Duration = 12 * time.Hour
	c.Bucket = 15 * time.Minute
	c.Functions = 30
	return c
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"default", func(*Config) {}, true},
		{"no services", func(c *Config) { c.Services = 0 }, false},
		{"too many services", func(c *Config) { c.Services = 99 }, false},
		{"no hosts", func(c *Config) { c.Hosts = 0 }, false},
		{"duration below bucket", func(c *Config) { c.Duration = time.Minute }, false},
		{"few functions", func(c *Config) { c.Functions = 3 }, false},
		{"stages not ending at 1", func(c *Config) { c.Stages = []float64{0.1, 0.5} }, false},
		{"stages decreasing", func(c *Config) { c.Stages = []float64{0.5, 0.1, 1} }, false},
		{"zero size", func(c *Config) { c.Regressions = []RegressionSpec{{Function: "x", Size: 0}} }, false},
		{"release out of range", func(c *Config) { c.Regressions = []RegressionSpec{{Size: 0.1, Release: 9}} }, false},
		{"controls without releases", func(c *Config) { c.Releases = 0 }, false},
		{"ramp below a bucket", func(c *Config) { c.Regressions = []RegressionSpec{{Size: 0.1, Ramp: time.Minute}} }, false},
		{"ramp", func(c *Config) { c.Regressions = []RegressionSpec{{Size: 0.1, Ramp: 24 * time.Hour}} }, true},
		{"trend without size", func(c *Config) { c.TrendControls = 1 }, false},
		{"trend", func(c *Config) { c.TrendControls, c.TrendSize = 1, 0.3 }, true},
		{"no releases no injections", func(c *Config) {
			c.Releases, c.RandomRegressions, c.CostShifts, c.Refactors = 0, 0, 0, 0
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestParseRegressions(t *testing.T) {
	tests := []struct {
		in     string
		specs  []RegressionSpec
		random int
		bad    bool
	}{
		{in: ""},
		{in: "random:3", random: 3},
		{in: "billing/pricing.(*Engine).Quote=0.05, random:2",
			specs: []RegressionSpec{{Function: "billing/pricing.(*Engine).Quote", Size: 0.05}}, random: 2},
		{in: "a.F=0.1,b.G=0.2", specs: []RegressionSpec{{Function: "a.F", Size: 0.1}, {Function: "b.G", Size: 0.2}}},
		{in: "a.F=0.2@24h", specs: []RegressionSpec{{Function: "a.F", Size: 0.2, Ramp: 24 * time.Hour}}},
		{in: "a.F=0.2@x", bad: true},
		{in: "a.F=0.2@-1h", bad: true},
		{in: "a.F", bad: true},
		{in: "a.F=x", bad: true},
		{in: "random:-1", bad: true},
	}
	for _, tt := range tests {
		specs, random, err := ParseRegressions(tt.in)
		if (err != nil) != tt.bad {
			t.Errorf("ParseRegressions(%q) error %v, want bad=%v", tt.in, err, tt.bad)
			continue
		}
		if !reflect.DeepEqual(specs, tt.specs) || random != tt.random {
			t.Errorf("ParseRegressions(%q) = %v, %d; want %v, %d", tt.in, specs, random, tt.specs, tt.random)
		}
	}
}

func TestDeterministic(t *testing.T) {
	a, err := New(smallConfig())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New(smallConfig())
	if !reflect.DeepEqual(a.Truth(), b.Truth()) {
		t.Fatal("same config gave different truths")
	}
	for _, i := range []int{0, 17, a.Buckets() - 1} {
		if !reflect.DeepEqual(a.Bucket(i).Rollup(), b.Bucket(i).Rollup()) {
			t.Fatalf("bucket %d differs between runs", i)
		}
	}
	cfg := smallConfig()
	cfg.Seed = 2
	c, _ := New(cfg)
	if reflect.DeepEqual(a.Bucket(3).Rollup(), c.Bucket(3).Rollup()) {
		t.Fatal("different seeds gave the same bucket")
	}
}

// summary is the golden view of a fleet: its plan and a few drawn numbers.
type summary struct {
	Services    []string             `json:"services"`
	Functions   map[string][]string  `json:"functions"`
	Regressions []Injection          `json:"regressions"`
	Controls    []Injection          `json:"controls"`
	Noise       []Change             `json:"noise"`
	Totals      map[string]int64     `json:"bucket_totals"`
	Top         map[string][2]string `json:"top_self_function_bucket_0"`
}

func TestGoldenSummary(t *testing.T) {
	f, err := New(smallConfig())
	if err != nil {
		t.Fatal(err)
	}
	tr := f.Truth()
	s := summary{Services: f.Services(), Functions: map[string][]string{}, Regressions: tr.Regressions,
		Controls: tr.Controls, Noise: tr.Noise, Totals: map[string]int64{}, Top: map[string][2]string{}}
	for _, svc := range s.Services {
		s.Functions[svc] = f.Functions(svc)
	}
	for _, i := range []int{0, 10, 40} {
		s.Totals[f.bucketTime(i).Format(time.RFC3339)] = f.Bucket(i).Total()
	}
	best := map[string]model.RollupRow{}
	for _, r := range f.Bucket(0).Rollup() {
		if r.Function != "" && r.Self > 0 {
			// Sum over versions and groups is not needed for the golden: the
			// largest single row is deterministic too.
			if b, ok := best[r.Service]; !ok || r.Self > b.Self {
				best[r.Service] = r
			}
		}
	}
	for svc, r := range best {
		s.Top[svc] = [2]string{r.Function, r.Version}
	}
	got, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "summary.golden.json")
	if *update {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != string(got)+"\n" {
		t.Errorf("summary differs from %s (run go test -update if intended):\n%s", path, got)
	}
}

func TestRollupConsistentWithSamples(t *testing.T) {
	f, err := New(smallConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 25} {
		b := f.Bucket(i)
		var fromSamples int64
		for _, s := range b.Samples() {
			fromSamples += s.Value
		}
		var totals, goexit, self int64
		for _, r := range b.Rollup() {
			switch r.Function {
			case "":
				totals += r.Self
			case "runtime.goexit":
				goexit += r.Inclusive
			}
			if r.Function != "" {
				self += r.Self
				if r.Inclusive < r.Self {
					t.Fatalf("bucket %d %s: inclusive %d < self %d", i, r.Function, r.Inclusive, r.Self)
				}
			}
		}
		if totals != b.Total() || fromSamples != b.Total() || goexit != b.Total() || self != b.Total() {
			t.Errorf("bucket %d: totals %d, samples %d, root inclusive %d, self sum %d, Total %d",
				i, totals, fromSamples, goexit, self, b.Total())
		}
	}
}

// TestCostShiftZeroNet: cost shifts, refactors and noise PRs leave the service's total
// cost unchanged; only regressions add cost.
func TestCostShiftZeroNet(t *testing.T) {
	cfg := smallConfig()
	cfg.CostShifts, cfg.Refactors = 2, 1
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	shifts := 0
	for _, s := range f.services {
		for k := 1; k < len(s.vers); k++ {
			want := s.vers[k-1].total
			for _, pr := range s.prs[k] {
				if pr.Kind == "regression" {
					for _, n := range s.cat.nodesOf(pr.Edits[0]) {
						want += s.vers[k-1].weight[n] * (pr.Scale[0] - 1)
					}
				}
				if pr.Kind == "cost_shift" {
					shifts++
				}
			}
			if got := s.vers[k].total; math.Abs(got-want) > 1e-12 {
				t.Errorf("%s %s: total weight %v, want %v", s.name, s.vers[k].name, got, want)
			}
		}
	}
	for _, c := range f.Truth().Controls {
		if c.Kind == "cost_shift" && !(c.SelfAfter < c.SelfBefore) {
			t.Errorf("cost shift %s: self %v → %v, want a decrease", c.Function, c.SelfBefore, c.SelfAfter)
		}
	}
	if shifts != 2*cfg.Services {
		t.Fatalf("%d cost shifts, want %d", shifts, 2*cfg.Services)
	}
}

func TestInjectedRegressionVisible(t *testing.T) {
	cfg := smallConfig()
	cfg.Services, cfg.RandomRegressions = 1, 0
	cfg.Spikes, cfg.HostFailures, cfg.SeasonalMix = 0, 0, 0
	fn := ""
	probe, _ := New(cfg)
	// The function with the most self cost, so the test needs few samples.
	for _, name := range probe.Functions("billing") {
		if fn == "" {
			fn = name
		}
		s := probe.services[0]
		a, _ := s.shares(s.vers[0], s.cat.byName[name])
		b, _ := s.shares(s.vers[0], s.cat.byName[fn])
		if a > b {
			fn = name
		}
	}
	cfg.Regressions = []RegressionSpec{{Function: fn, Size: 0.5, Release: 1}}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := f.Truth()
	if len(tr.Regressions) != 1 || tr.Regressions[0].Function != fn {
		t.Fatalf("regressions %+v, want one on %s", tr.Regressions, fn)
	}
	in := tr.Regressions[0]
	if math.Abs(in.SelfAfter/in.SelfBefore*(1-in.SelfBefore)/(1-in.SelfAfter)-1.5) > 1e-9 {
		t.Errorf("self share %v → %v is not a +50%% self cost", in.SelfBefore, in.SelfAfter)
	}
	// Measured self shares per version over the whole run.
	self, total := map[string]float64{}, map[string]float64{}
	for i := range f.Buckets() {
		for _, r := range f.Bucket(i).Rollup() {
			switch r.Function {
			case "":
				total[r.Version] += float64(r.Self)
			case fn:
				self[r.Version] += float64(r.Self)
			}
		}
	}
	before, after := self["v1"]/total["v1"], self["v2"]/total["v2"]
	floor := math.Sqrt(in.SelfBefore * (1 - in.SelfBefore) / total["v2"])
	if math.Abs(before-in.SelfBefore) > 10*floor+0.1*in.SelfBefore || math.Abs(after-in.SelfAfter) > 10*floor+0.1*in.SelfAfter {
		t.Errorf("measured self share %v → %v, expected %v → %v", before, after, in.SelfBefore, in.SelfAfter)
	}
}

func TestBinomialMoments(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		n int64
		p float64
	}{{50, 0.1}, {1000, 0.01}, {100000, 0.3}, {100000, 0.9}} {
		const draws = 4000
		var sum, sq float64
		for range draws {
			x := float64(binomial(rng, tc.n, tc.p))
			sum += x
			sq += x * x
		}
		mean := sum / draws
		v := sq/draws - mean*mean
		wm, wv := float64(tc.n)*tc.p, float64(tc.n)*tc.p*(1-tc.p)
		if math.Abs(mean-wm) > 5*math.Sqrt(wv/draws) || math.Abs(v/wv-1) > 0.15 {
			t.Errorf("binomial(%d, %v): mean %v var %v, want %v %v", tc.n, tc.p, mean, v, wm, wv)
		}
	}
}

func TestWriteRepos(t *testing.T) {
	testenv.LookPath(t, "git", "git")
	f, err := New(smallConfig())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := f.WriteRepos(dir); err != nil {
		t.Fatal(err)
	}
	tr := f.Truth()
	for _, svc := range tr.Services {
		out, err := exec.Command("git", "-C", filepath.Join(dir, svc.Repo), "tag").Output()
		if err != nil {
			t.Fatal(err)
		}
		tags := strings.Fields(string(out))
		for _, r := range svc.Releases {
			if !slices.Contains(tags, r.Tag) || r.Commit == "" {
				t.Errorf("%s: release %s: tag missing or no commit (tags %v)", svc.Name, r.Version, tags)
			}
		}
	}
	for _, in := range append(tr.Regressions, tr.Controls...) {
		if in.Change != nil && len(in.Change.Commit) != 40 {
			t.Errorf("%s %s: commit %q", in.Kind, in.Function, in.Change.Commit)
		}
	}
	if err := f.WriteRepos(dir); err == nil {
		t.Error("WriteRepos into non-empty directories succeeded")
	}
	path := filepath.Join(dir, "truth.json")
	if err := tr.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	back, err := ReadTruth(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Regressions, tr.Regressions) {
		t.Error("truth did not round-trip")
	}
}

func BenchmarkBucketRollup(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Services, cfg.Hosts, cfg.Functions = 1, 100, 200
	f, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var samples int64
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		bk := f.Bucket(i % f.Buckets())
		samples += bk.Total()
		_ = bk.Rollup()
	}
	b.ReportMetric(float64(samples)/b.Elapsed().Seconds(), "samples/s")
}

// A ramped regression grows into its size over Ramp after its release, and a trend
// control falls by TrendSize; the samples before either begins are the same as
// without them.
func TestRampsAndTrends(t *testing.T) {
	cfg := smallConfig()
	cfg.Services, cfg.RandomRegressions, cfg.Releases = 1, 0, 1
	cfg.Spikes, cfg.HostFailures, cfg.SeasonalMix, cfg.CostShifts, cfg.Refactors = 0, 0, 0, 0, 0
	probe, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fns := probe.Functions("billing")
	s := probe.services[0]
	// The two functions with the most self cost, so few samples tell.
	slices.SortFunc(fns, func(a, b string) int {
		x, _ := s.shares(s.vers[0], s.cat.byName[a])
		y, _ := s.shares(s.vers[0], s.cat.byName[b])
		return cmp.Compare(y, x)
	})
	cfg.Regressions = []RegressionSpec{{Function: fns[0], Size: 0.5, Release: 1, Ramp: 4 * time.Hour}}
	cfg.TrendControls, cfg.TrendSize = 1, 0.4
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := f.Truth()
	if len(tr.Regressions) != 1 || tr.Regressions[0].Kind != "gradual" || time.Duration(tr.Regressions[0].Ramp) != 4*time.Hour {
		t.Fatalf("regressions %+v, want one gradual", tr.Regressions)
	}
	in := tr.Regressions[0]
	var trend *Injection
	for i := range tr.Controls {
		if tr.Controls[i].Kind == "trend" {
			trend = &tr.Controls[i]
		}
	}
	if trend == nil || trend.Function == in.Function {
		t.Fatalf("controls %+v, want a trend on another function", tr.Controls)
	}
	// Self cost relative to the untouched rest, in hourly blocks.
	selfCost := func(fn string, from, to time.Time) float64 {
		var x, rest float64
		for i := range f.Buckets() {
			b := f.Bucket(i)
			if b.Start.Before(from) || !b.Start.Before(to) {
				continue
			}
			for _, r := range b.Rollup() {
				switch r.Function {
				case "":
					rest += float64(r.Self)
				case fn, in.Function, trend.Function:
					if r.Function == fn {
						x += float64(r.Self)
					}
					rest -= float64(r.Self)
				}
			}
		}
		return x / rest
	}
	tests := []struct {
		name, fn  string
		from, to  time.Time
		want, tol float64
	}{
		{"ramp half way", in.Function, in.Start.Add(90 * time.Minute), in.Start.Add(150 * time.Minute), 1.25, 0.06},
		{"ramp done", in.Function, in.End, in.End.Add(2 * time.Hour), 1.5, 0.06},
		{"trend at the end", trend.Function, trend.End.Add(-time.Hour), trend.End, 1 - 0.4*(1-0.5/12), 0.06},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := selfCost(tt.fn, cfg.Start, cfg.Start.Add(2*time.Hour))
			if got := selfCost(tt.fn, tt.from, tt.to) / base; math.Abs(got-tt.want) > tt.tol {
				t.Errorf("self cost ×%.3f of the start, want ×%.3f", got, tt.want)
			}
		})
	}
	// Without ramps and trends the samples are the same (same random draws).
	plain := cfg
	plain.Regressions[0].Ramp, plain.TrendControls = 0, 0
	g, _ := New(plain)
	if !reflect.DeepEqual(f.Bucket(0).Rollup(), g.Bucket(0).Rollup()) {
		t.Error("ramps and trends changed the fleet before they began")
	}
}
