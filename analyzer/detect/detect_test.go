package detect

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBuilderCountsRecursionOnce(t *testing.T) {
	b := NewBuilder("svc", 1, scenarioStart, time.Minute, 2)
	add := func(bucket int, frames []string, n float64) {
		t.Helper()
		if err := b.Add(bucket, "v1", "g0", frames, n); err != nil {
			t.Fatal(err)
		}
	}
	add(0, []string{"main", "walk", "walk", "walk", "visit"}, 10)
	add(0, []string{"main", "walk"}, 5)
	add(1, []string{"gc"}, 7)
	svc := b.Service()
	if err := svc.Validate(); err != nil {
		t.Fatal(err)
	}
	got := map[string]Series{}
	for _, s := range svc.Series {
		got[s.Function] = s
	}
	tests := []struct {
		fn        string
		inc, self []float64
	}{
		{"main", []float64{15, 0}, []float64{0, 0}},
		{"walk", []float64{15, 0}, []float64{5, 0}},
		{"visit", []float64{10, 0}, []float64{10, 0}},
		{"gc", []float64{0, 7}, []float64{0, 7}},
	}
	for _, tt := range tests {
		s := got[tt.fn]
		if !slices.Equal(s.Inclusive, tt.inc) || !slices.Equal(s.Self, tt.self) {
			t.Errorf("%s: inclusive %v self %v, want %v %v", tt.fn, s.Inclusive, s.Self, tt.inc, tt.self)
		}
		if !slices.Equal(s.VersionInclusive["v1"], tt.inc) || !slices.Equal(s.GroupInclusive["g0"], tt.inc) {
			t.Errorf("%s: version/group breakdown %v %v", tt.fn, s.VersionInclusive, s.GroupInclusive)
		}
		if c := (Cell{"v1", "g0"}); !slices.Equal(s.CellInclusive[c], tt.inc) || !slices.Equal(s.CellSelf[c], tt.self) {
			t.Errorf("%s: cell breakdown %v self %v", tt.fn, s.CellInclusive, s.CellSelf)
		}
	}
	if !slices.Equal(svc.Total, []float64{15, 7}) {
		t.Errorf("total %v", svc.Total)
	}
	for _, e := range svc.Edges {
		if e.Caller == e.Callee {
			t.Errorf("self edge %+v", e)
		}
	}
	if len(svc.Edges) != 2 { // main→walk (from both stacks), walk→visit
		t.Errorf("edges %+v", svc.Edges)
	}
	if err := b.Add(5, "", "", []string{"x"}, 1); err == nil {
		t.Error("out-of-range bucket accepted")
	}
}

func TestServiceValidate(t *testing.T) {
	ok := func() *Service {
		return &Service{Name: "s", Step: time.Minute, Total: []float64{1, 2},
			Series: []Series{{Function: "f", Inclusive: []float64{1, 1}}}}
	}
	tests := []struct {
		name   string
		mutate func(*Service)
		want   string
	}{
		{"ok", func(*Service) {}, ""},
		{"no name", func(s *Service) { s.Name = "" }, "without name"},
		{"no step", func(s *Service) { s.Step = 0 }, "step"},
		{"short series", func(s *Service) { s.Series[0].Inclusive = []float64{1} }, "f inclusive has 1 buckets, want 2"},
		{"negative", func(s *Service) { s.Total[1] = -1 }, "total bucket 1: bad count -1"},
		{"NaN", func(s *Service) { s.Series[0].Inclusive[0] = math.NaN() }, "f inclusive bucket 0: bad count NaN"},
		{"inclusive above total", func(s *Service) { s.Series[0].Inclusive[1] = 3 }, "f bucket 1: inclusive 3 exceeds total 2"},
		{"unknown group", func(s *Service) { s.Series[0].GroupInclusive = map[string][]float64{"g": {1, 1}} }, `group "g" has no group total`},
		{"unknown self cell", func(s *Service) { s.Series[0].CellSelf = map[Cell][]float64{{"v", "g"}: {1, 1}} }, "self cell v/g has no cell total"},
		{"negative self cell", func(s *Service) {
			s.CellTotal = map[Cell][]float64{{"v", "g"}: {1, 2}}
			s.Series[0].CellSelf = map[Cell][]float64{{"v", "g"}: {1, -1}}
		}, "f self cell v/g bucket 1: bad count -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok()
			tt.mutate(s)
			err := s.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"default", func(*Config) {}, true},
		{"bad alpha", func(c *Config) { c.ChangePoint.Alpha = 0 }, false},
		{"min share > 1", func(c *Config) { c.MinShare = 2 }, false},
		{"negative window", func(c *Config) { c.AnalysisWindow = -time.Hour }, false},
		{"dedup 0", func(c *Config) { c.DedupCoverage = 0 }, false},
		{"overlap 1", func(c *Config) { c.MinOverlapBuckets = 1 }, false},
		{"family alpha 0", func(c *Config) { c.FamilyAlpha = 0 }, false},
		{"family alpha 1", func(c *Config) { c.FamilyAlpha = 1 }, false},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		tt.mutate(&c)
		if err := c.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v", tt.name, err)
		}
	}
}

func TestQuasiBinomialDispersion(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const cells, n, p = 400, 10000.0, 0.02
	tests := []struct {
		name     string
		extraSD  float64 // relative sd of the true share per cell
		min, max float64 // expected dispersion range
	}{
		{"binomial", 0, 1, 1.3},
		{"over-dispersed", 0.1, 2.5, 4}, // 1 + n·p·0.1²/(1−p) ≈ 3.0
	}
	for _, tt := range tests {
		inc := make([]float64, cells)
		tot := make([]float64, cells)
		for i := range inc {
			pi := p * (1 + tt.extraSD*r.NormFloat64())
			tot[i] = n
			inc[i] = math.Round(n*pi + math.Sqrt(n*pi*(1-pi))*r.NormFloat64())
		}
		e := quasiBinomial(inc, tot)
		if e.Dispersion < tt.min || e.Dispersion > tt.max || math.Abs(e.P-p) > 0.002 {
			t.Errorf("%s: %+v, want dispersion in [%v,%v]", tt.name, e, tt.min, tt.max)
		}
	}
}

func TestPairedDiffCancelsTraffic(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		name   string
		factor float64
		signif bool
	}{
		{"no change", 1, false},
		{"+5%", 1.05, true},
	}
	for _, tt := range tests {
		const T = 6
		io, to, in, tn := make([]float64, T), make([]float64, T), make([]float64, T), make([]float64, T)
		var idx []int
		for i := range T {
			// The share itself swings ±30% between buckets (diurnal); both versions see it.
			p := 0.01 * (1 + 0.3*math.Sin(float64(i)))
			to[i], tn[i] = 500000, 50000*float64(i+1)
			io[i] = math.Round(to[i]*p + math.Sqrt(to[i]*p)*r.NormFloat64())
			in[i] = math.Round(tn[i]*p*tt.factor + math.Sqrt(tn[i]*p)*r.NormFloat64())
			idx = append(idx, i)
		}
		_, _, diff, z := pairedDiff(io, to, in, tn, idx, 1)
		if got := twoSidedP(z) < 0.01; got != tt.signif {
			t.Errorf("%s: diff %.3g z %.2f, significant=%v want %v", tt.name, diff, z, got, tt.signif)
		}
	}
}

func TestDeseasonalize(t *testing.T) {
	const period = 24
	s := make([]float64, 10*period)
	for i := range s {
		s[i] = 0.1 + 0.02*math.Sin(2*math.Pi*float64(i)/period)
	}
	for i := 9 * period; i < len(s); i++ {
		s[i] += 0.01 // a step after the history
	}
	adj, off := deseasonalize(s, period, 8*period, DefaultTuning().SeasonProfileSDs)
	if off == nil {
		t.Fatal("not applied")
	}
	for i := range 8 * period {
		if math.Abs(adj[i]-0.1) > 1e-3 {
			t.Fatalf("bucket %d: %v, want 0.1", i, adj[i])
		}
	}
	if math.Abs(adj[len(s)-1]-0.11) > 1e-3 {
		t.Errorf("step lost: %v", adj[len(s)-1])
	}
	if _, off := deseasonalize(s, period, period, DefaultTuning().SeasonProfileSDs); off != nil {
		t.Error("applied with one period of history")
	}
}

func TestDeseasonalizeNeedsAWave(t *testing.T) {
	const period = 144
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name  string
		amp   float64 // wave amplitude in units of the noise's standard deviation
		apply bool
	}{{"noise only", 0, false}, {"strong wave", 3, true}} {
		s := make([]float64, 3*period)
		for i := range s {
			s[i] = 0.01 + 1e-4*(rng.NormFloat64()+tc.amp*math.Sin(2*math.Pi*float64(i)/period))
		}
		if _, off := deseasonalize(s, period, 2*period, DefaultTuning().SeasonProfileSDs); (off != nil) != tc.apply {
			t.Errorf("%s: applied %v, want %v", tc.name, off != nil, tc.apply)
		}
	}
}

func TestProfileNoise(t *testing.T) {
	for _, tc := range []struct {
		L, period, k int
		want         float64 // SE factor
	}{
		{L: 1, period: 144, k: 2, want: math.Sqrt(1 + (1-1.0/144)/2)},
		{L: 72, period: 144, k: 2, want: math.Sqrt(1.25)},
		{L: 288, period: 144, k: 2, want: 1}, // whole periods: centred offsets cancel
		{L: 18, period: 96, k: 4, want: math.Sqrt(1 + (1-18.0/96)/4)},
		{L: 0, period: 144, k: 2, want: 1},
	} {
		got := profileNoise(estimate{SE: 1}, tc.L, tc.period, tc.k).SE
		if math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("L=%d period=%d k=%d: factor %v, want %v", tc.L, tc.period, tc.k, got, tc.want)
		}
	}
}

func TestDedupAndCostShift(t *testing.T) {
	g := newCallGraph([]Edge{
		{"main", "serve", 1}, {"serve", "handle", 1}, {"handle", "db.Query", 1},
		{"handle", "codec.A", 1}, {"handle", "codec.B", 1}, {"db.Query", "db.Query", 1},
	})
	c := func(fn string, abs float64) *candidate {
		return &candidate{fn: fn, domain: strings.SplitN(fn, ".", 2)[0], change: 100, abs: abs}
	}
	cfg := DefaultConfig()
	tests := []struct {
		name      string
		ups       []*candidate
		downs     []*candidate
		want      []string // reported functions
		wantGroup []string // group of the first reported
	}{
		{"callee explains callers", []*candidate{c("main", 0.010), c("serve", 0.010), c("handle", 0.011), c("db.Query", 0.010)}, nil,
			[]string{"db.Query"}, []string{"handle", "main", "serve"}},
		{"caller with more rise stays", []*candidate{c("handle", 0.05), c("db.Query", 0.01)}, nil,
			[]string{"db.Query", "handle"}, nil},
		{"unrelated both stay", []*candidate{c("codec.A", 0.01), c("db.Query", 0.01)}, nil,
			[]string{"codec.A", "db.Query"}, nil},
		{"cost shift dropped", []*candidate{c("codec.B", 0.01)}, []*candidate{c("codec.A", -0.009)},
			nil, nil},
		{"fall in other domain is no shift", []*candidate{c("codec.B", 0.01)}, []*candidate{c("db.Query", -0.01)},
			[]string{"codec.B"}, nil},
		{"small fall is no shift", []*candidate{c("codec.B", 0.01)}, []*candidate{c("codec.A", -0.002)},
			[]string{"codec.B"}, nil},
		{"falls far larger are another change", []*candidate{c("codec.B", 0.01)}, []*candidate{c("codec.A", -0.03)},
			[]string{"codec.B"}, nil},
		// An unrelated big fall in the same release must not hide the one that
		// balances the rise.
		{"one balancing fall alone is a shift", []*candidate{c("codec.B", 0.01)}, []*candidate{c("codec.A", -0.01), c("codec.D", -0.03)},
			nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := &Result{}
			out := dedup(tt.ups, g, cfg, 2)
			out = costShift(&Service{}, windows{tun: DefaultTuning()}, out, tt.downs, g, cfg, 2, res)
			out = dedup(out, g, cfg, 2)
			var got []string
			for _, o := range out {
				got = append(got, o.fn)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("reported %v, want %v (dropped %+v)", got, tt.want, res.Dropped)
			}
			if tt.wantGroup != nil && !slices.Equal(out[0].group, tt.wantGroup) {
				t.Errorf("group %v, want %v", out[0].group, tt.wantGroup)
			}
		})
	}
}

// TestNegativeControlsNeedTheirStage shows each negative control is removed by the
// stage meant for it: the changed function is dropped by that stage, and where the
// stage can be switched off without another stage catching it, a finding appears.
func TestNegativeControlsNeedTheirStage(t *testing.T) {
	tests := []struct {
		scenario, function, stage string
		disable                   func(*Config)
	}{
		{"spike", "app/db.(*Conn).Query", StageWentAway, nil}, // with went-away off, the persisted-change test drops it too
		{"cost_shift", "app/codec.encodeV2", StageCostShift, func(c *Config) { c.CostShiftFraction = 1 }},
		{"seasonal", "", "", func(c *Config) { c.SeasonPeriod = 0 }}, // deseasonalized, nothing is even a candidate
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			svc := loadScenario(t, filepath.Join("testdata", "scenarios", tt.scenario+".json")).generate(t)
			res, err := Run(svc, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			if tt.function != "" && !slices.Contains(res.Dropped, Dropped{Function: tt.function, Stage: tt.stage, Reason: dropReason(res, tt.function, tt.stage)}) {
				t.Errorf("%s not dropped at %s: %+v", tt.function, tt.stage, res.Dropped)
			}
			if tt.disable == nil {
				return
			}
			cfg := DefaultConfig()
			tt.disable(&cfg)
			fs, err := Detect(svc, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(fs) == 0 {
				t.Errorf("no finding with the stage off: the scenario does not exercise it")
			}
		})
	}
}

func dropReason(res *Result, fn, stage string) string {
	for _, d := range res.Dropped {
		if d.Function == fn && d.Stage == stage {
			return d.Reason
		}
	}
	return ""
}

// TestVersionPairedIsFaster: three buckets into a rollout the version-paired test is
// sure of the regression; the before/after path, which has to wait for the new
// version to dominate the aggregate, has at most weak evidence.
func TestVersionPairedIsFaster(t *testing.T) {
	svc := loadScenario(t, filepath.Join("testdata", "scenarios", "rollout.json")).generate(t)
	fs, err := Detect(svc, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].VersionBefore != "v1" || fs[0].VersionAfter != "v2" {
		t.Fatalf("version-paired findings %+v", fs)
	}
	paired := fs[0].PValue
	svc.VersionTotal = nil
	for i := range svc.Series {
		svc.Series[i].VersionInclusive = nil
	}
	fs, err = Detect(svc, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("paired p=%.2g; before/after: %d findings", paired, len(fs))
	for _, f := range fs {
		t.Logf("before/after %s p=%.2g", f.Function, f.PValue)
		if f.PValue < 100*paired {
			t.Errorf("before/after p=%.2g is not much weaker than paired p=%.2g", f.PValue, paired)
		}
	}
}

// TestNullFleetFalsePositives runs services without any change through the whole
// pipeline and counts findings per series.
func TestNullFleetFalsePositives(t *testing.T) {
	series, found := 0, 0
	for seed := range uint64(4) {
		r := rand.New(rand.NewPCG(seed, 77))
		sc := scenario{
			Service: "null", Seed: seed, Buckets: 480, StepMinutes: 15, SamplesPerBucket: 200000,
			TrafficAmplitude: 0.3, Groups: 4, GroupNoise: 0.03, Cores: 10,
		}
		for i := range 60 {
			pkg := []string{"app/a", "app/b", "lib/c"}[i%3]
			sc.Stacks = append(sc.Stacks, scenarioStack{
				Frames: []string{"main.main", pkg + ".F" + string(rune('A'+i%26)), pkg + ".leaf" + string(rune('a'+i%26)) + string(rune('0'+i/26))},
				Weight: math.Exp(2 * r.NormFloat64()),
			})
		}
		res, err := Run(sc.generate(t), DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		series += res.Stats.Series - res.Stats.BelowMinShare
		found += len(res.Findings)
		for _, f := range res.Findings {
			t.Logf("false positive: %s %+.2f%% p=%.2g", f.Function, 100*f.RelativeChange, f.PValue)
		}
	}
	t.Logf("%d findings on %d unchanged series", found, series)
	if float64(found) > 0.01*float64(series) {
		t.Errorf("%d findings on %d unchanged series: false-positive rate above 1%%", found, series)
	}
}

func TestRunEdgeCases(t *testing.T) {
	tests := []struct {
		name string
		svc  *Service
	}{
		{"no series", &Service{Name: "s", Step: time.Minute, Total: make([]float64, 100)}},
		{"three buckets", &Service{Name: "s", Step: time.Minute, Total: []float64{10, 10, 10},
			Series: []Series{{Function: "f", Inclusive: []float64{1, 5, 9}}}}},
		{"empty buckets", &Service{Name: "s", Step: time.Minute, Total: make([]float64, 200),
			Series: []Series{{Function: "f", Inclusive: make([]float64, 200)}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Run(tt.svc, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Findings) != 0 {
				t.Errorf("findings %+v", res.Findings)
			}
		})
	}
	if _, err := Run(&Service{Name: "s"}, DefaultConfig()); err == nil {
		t.Error("service without step accepted")
	}
	if _, err := Run(&Service{Name: "s", Step: time.Minute}, Config{}); err == nil {
		t.Error("zero Config accepted")
	}
}

func TestSnapToDeploy(t *testing.T) {
	// A small step, +0.003 at bucket 50 in noise of SD 0.004 (seeded), 100 buckets:
	// clear over the series, but its location is uncertain by a few buckets (a
	// strong step is located exactly and keeps its change point).
	rng := rand.New(rand.NewPCG(1, 2))
	s := make([]float64, 100)
	for i := range s {
		s[i] = 0.1 + 0.004*rng.NormFloat64()
		if i >= 50 {
			s[i] += 0.003
		}
	}
	versions := func(starts map[string]int) *Service {
		svc := &Service{VersionTotal: map[string][]float64{"v1": make([]float64, 100)}}
		for v, at := range starts {
			xs := make([]float64, 100)
			for i := at; i < 100; i++ {
				xs[i] = 1
			}
			svc.VersionTotal[v] = xs
		}
		return svc
	}
	for _, tc := range []struct {
		name    string
		starts  map[string]int
		net     float64
		wantAt  int
		wantVer string
		wantOK  bool
	}{
		{"rollout at the step", map[string]int{"v2": 50}, 0.01, 50, "v2", true},
		{"rollout a bucket early", map[string]int{"v2": 49}, 0.01, 49, "v2", true},
		{"the nearer of two rollouts", map[string]int{"v2": 20, "v3": 51}, 0.01, 51, "v3", true},
		{"rollout far from the step", map[string]int{"v2": 20}, 0.01, 0, "", false},
		{"no rollout", nil, 0.01, 0, "", false},
		{"shift the other way", map[string]int{"v2": 50}, -0.01, 0, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at, v, ok := snapToDeploy(versionStarts(versions(tc.starts)), s, 0, 100, tc.net, 0.01)
			if at != tc.wantAt || v != tc.wantVer || ok != tc.wantOK {
				t.Errorf("snapToDeploy = %d, %q, %v; want %d, %q, %v", at, v, ok, tc.wantAt, tc.wantVer, tc.wantOK)
			}
		})
	}
}

func TestTrimmedEstimateIgnoresASpike(t *testing.T) {
	inc := []float64{100, 104, 98, 101, 97, 103, 99, 102}
	tot := []float64{1e4, 1e4, 1e4, 1e4, 1e4, 1e4, 1e4, 1e4}
	want := quasiBinomial(inc, tot).P
	spiked := slices.Clone(inc)
	spiked[3] = 400 // a transient ×4 in one bucket
	if got := trimmedEstimate(spiked, tot, DefaultTuning()).P; math.Abs(got-want) > 5e-4 {
		t.Errorf("share with a spike %v, want about %v", got, want)
	}
	if got := trimmedEstimate(inc, tot, DefaultTuning()).P; got != want {
		t.Errorf("share without a spike %v, want %v (nothing trimmed)", got, want)
	}
}

func TestSeasonalDilution(t *testing.T) {
	// A seasonal leaf of 10% swinging ±30% a day and a steady leaf of 40%: the steady
	// one's share swings ∓3% with it, and dividing by the common factor flattens it.
	const period, n = 24, 3 * 24
	b := NewBuilder("svc", 1, time.Time{}, time.Hour, n)
	for i := range n {
		wave := 1 + 0.3*math.Sin(2*math.Pi*float64(i)/period)
		for _, st := range []struct {
			frames []string
			count  float64
		}{{[]string{"main", "seasonal"}, 1e5 * wave}, {[]string{"main", "steady"}, 4e5}, {[]string{"main", "rest"}, 5e5}} {
			if err := b.Add(i, "", "", st.frames, st.count); err != nil {
				t.Fatal(err)
			}
		}
	}
	svc := b.Service()
	w := windows{n: n, period: period, winLo: 2 * period, tun: DefaultTuning()}
	c, seasonal := seasonalDilution(svc, w)
	if c == nil || !seasonal["seasonal"] || len(seasonal) != 1 {
		t.Fatalf("common factor %v, seasonal %v: want one for the ±30%% wave of \"seasonal\"", c != nil, seasonal)
	}
	steady := seriesOf(svc, "steady")
	var lo, hi float64 = 1, 0
	for i := range n {
		s := steady.Inclusive[i] / svc.Total[i] / c[i]
		lo, hi = math.Min(lo, s), math.Max(hi, s)
	}
	if hi/lo-1 > 0.005 {
		t.Errorf("steady share still swings %.2f%% after the common factor", 100*(hi/lo-1))
	}
	// Without a seasonal function there is nothing to divide out.
	b2 := NewBuilder("svc", 1, time.Time{}, time.Hour, n)
	for i := range n {
		_ = b2.Add(i, "", "", []string{"main", "steady"}, 4e5)
		_ = b2.Add(i, "", "", []string{"main", "rest"}, 6e5)
	}
	if c, _ := seasonalDilution(b2.Service(), w); c != nil {
		t.Error("common factor without a seasonal function")
	}
}
