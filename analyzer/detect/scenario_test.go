package detect

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/findings"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/scenarios")

// scenario is a synthetic service: stacks with relative weights, sampled per bucket
// and host group with Poisson noise and host-group over-dispersion, plus events that
// change the weights. Files: testdata/scenarios/NAME.json, golden NAME.golden.json.
type scenario struct {
	Service          string  `json:"service"`
	Seed             uint64  `json:"seed"`
	Buckets          int     `json:"buckets"`
	StepMinutes      int     `json:"step_minutes"`
	SamplesPerBucket float64 `json:"samples_per_bucket"`
	// TrafficAmplitude varies the number of samples over the day (shares unchanged).
	TrafficAmplitude float64 `json:"traffic_amplitude"`
	Groups           int     `json:"groups"`
	// GroupNoise is the sd of the per (bucket, group, stack) log weight: host-to-host
	// variation beyond sampling noise.
	GroupNoise float64         `json:"group_noise"`
	Cores      float64         `json:"cores"`
	Stacks     []scenarioStack `json:"stacks"`
	Events     []scenarioEvent `json:"events"`
	// Expect lists the functions that must be reported (empty for negative controls).
	Expect []string `json:"expect"`
	// ExpectDropped maps a function to the stage that must drop it (why a negative
	// control is not reported).
	ExpectDropped map[string]string `json:"expect_dropped"`
}

type scenarioStack struct {
	Frames []string `json:"frames"`
	Weight float64  `json:"weight"`
}

// scenarioEvent kinds: step (weight×factor from at), spike (×factor for len buckets),
// seasonal (×(1+amplitude·sin) with a daily period), move (fraction of stack's weight
// moves to stack to, from at), rollout (version "new" takes a share of traffic rising
// linearly from 10% at at to 100% after len buckets — or, with stages, the share
// stages[i] from at+i·stage_len — and in it stack's weight ×factor, or with fraction
// set, that fraction of stack's weight moves to stack to).
type scenarioEvent struct {
	Kind      string    `json:"kind"`
	Stack     int       `json:"stack"`
	At        int       `json:"at"`
	Len       int       `json:"len"`
	Factor    float64   `json:"factor"`
	Amplitude float64   `json:"amplitude"`
	Fraction  float64   `json:"fraction"`
	To        int       `json:"to"`
	Old       string    `json:"old"`
	New       string    `json:"new"`
	Stages    []float64 `json:"stages"`
	StageLen  int       `json:"stage_len"`
}

var scenarioStart = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

// generate samples the scenario deterministically from its seed.
func (sc *scenario) generate(tb testing.TB) *Service {
	step := time.Duration(sc.StepMinutes) * time.Minute
	perDay := float64(24 * time.Hour / step)
	b := NewBuilder(sc.Service, sc.Cores, scenarioStart, step, sc.Buckets)
	r := rand.New(rand.NewPCG(sc.Seed, 0x5eed))
	var rollout *scenarioEvent
	for i := range sc.Events {
		if sc.Events[i].Kind == "rollout" {
			rollout = &sc.Events[i]
		}
	}
	weights := func(t int, newVersion bool) []float64 {
		w := make([]float64, len(sc.Stacks))
		for i, s := range sc.Stacks {
			w[i] = s.Weight
		}
		for _, e := range sc.Events {
			switch e.Kind {
			case "step":
				if t >= e.At {
					w[e.Stack] *= e.Factor
				}
			case "spike":
				if t >= e.At && t < e.At+e.Len {
					w[e.Stack] *= e.Factor
				}
			case "seasonal":
				w[e.Stack] *= 1 + e.Amplitude*math.Sin(2*math.Pi*float64(t)/perDay)
			case "move":
				if t >= e.At {
					moved := e.Fraction * w[e.Stack]
					w[e.Stack] -= moved
					w[e.To] += moved
				}
			case "rollout":
				switch {
				case newVersion && e.Fraction > 0:
					moved := e.Fraction * w[e.Stack]
					w[e.Stack] -= moved
					w[e.To] += moved
				case newVersion:
					w[e.Stack] *= e.Factor
				}
			}
		}
		return w
	}
	for t := range sc.Buckets {
		traffic := 1 + sc.TrafficAmplitude*math.Sin(2*math.Pi*float64(t)/perDay+1)
		type part struct {
			version string
			frac    float64
			isNew   bool
		}
		parts := []part{{"", 1, false}}
		if rollout != nil {
			f := 0.0
			if t >= rollout.At {
				f = math.Min(1, 0.1+0.9*float64(t-rollout.At)/float64(max(rollout.Len, 1)))
				if len(rollout.Stages) > 0 {
					f = rollout.Stages[min((t-rollout.At)/max(rollout.StageLen, 1), len(rollout.Stages)-1)]
				}
			}
			parts = []part{{rollout.Old, 1 - f, false}, {rollout.New, f, true}}
		}
		for g := range sc.Groups {
			group := "g" + string(rune('0'+g))
			for _, p := range parts {
				if p.frac <= 0 {
					continue
				}
				w := weights(t, p.isNew)
				sum := 0.0
				for i := range w {
					w[i] *= math.Exp(sc.GroupNoise * r.NormFloat64())
					sum += w[i]
				}
				n := sc.SamplesPerBucket * traffic * p.frac / float64(sc.Groups)
				for i, s := range sc.Stacks {
					if err := b.Add(t, p.version, group, s.Frames, poisson(r, n*w[i]/sum)); err != nil {
						tb.Fatal(err)
					}
				}
			}
		}
	}
	return b.Service()
}

func poisson(r *rand.Rand, lambda float64) float64 {
	if lambda <= 0 {
		return 0
	}
	if lambda > 30 {
		return math.Max(0, math.Round(lambda+math.Sqrt(lambda)*r.NormFloat64()))
	}
	l, k, p := math.Exp(-lambda), 0.0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func loadScenario(t testing.TB, path string) *scenario {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sc scenario
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &sc
}

// roundSig rounds floats in goldens to 4 significant digits, so platform differences
// in the last bits do not break them.
func roundSig(x float64) float64 {
	if x == 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return x
	}
	e := math.Pow(10, 3-math.Floor(math.Log10(math.Abs(x))))
	return math.Round(x*e) / e
}

func roundFinding(f *findings.Finding) {
	for _, s := range []*findings.Share{&f.Before, &f.After} {
		s.Value, s.Lo, s.Hi, s.Samples = roundSig(s.Value), roundSig(s.Lo), roundSig(s.Hi), roundSig(s.Samples)
	}
	f.AbsoluteChange, f.RelativeChange = roundSig(f.AbsoluteChange), roundSig(f.RelativeChange)
	f.EstimatedCores, f.PValue = roundSig(f.EstimatedCores), roundSig(f.PValue)
	if f.PValue < 1e-12 {
		f.PValue = 0 // the far tail is numerically fragile and means the same
	}
	for i := range f.RepresentativeStacks {
		f.RepresentativeStacks[i].Share = roundSig(f.RepresentativeStacks[i].Share)
	}
}

func TestScenarios(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "scenarios", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var specs []string
	for _, p := range paths {
		if !strings.HasSuffix(p, ".golden.json") {
			specs = append(specs, p)
		}
	}
	if len(specs) < 6 {
		t.Fatalf("found %d scenarios, want at least 6", len(specs))
	}
	for _, path := range specs {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		t.Run(name, func(t *testing.T) {
			sc := loadScenario(t, path)
			svc := sc.generate(t)
			res, err := Run(svc, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			// No scenario has a ramp: the long-term stage must stay quiet on steps,
			// spikes, rollouts, cost shifts and daily waves.
			for _, g := range res.Gradual {
				t.Errorf("gradual finding on a scenario without ramps: %+v", g)
			}
			stages := map[string]string{}
			for _, d := range res.Dropped {
				t.Logf("dropped %s at %s: %s", d.Function, d.Stage, d.Reason)
				stages[d.Function] = d.Stage
			}
			for fn, stage := range sc.ExpectDropped {
				if stages[fn] != stage {
					t.Errorf("%s dropped at %q, want %q", fn, stages[fn], stage)
				}
			}
			var got []string
			for i := range res.Findings {
				f := &res.Findings[i]
				got = append(got, f.Function)
				t.Logf("finding %s: %.4g%% → %.4g%% (%+.2f%%) at %s group %v filters %v", f.Function,
					100*f.Before.Value, 100*f.After.Value, 100*f.RelativeChange, f.ChangeTime.Format(time.RFC3339), f.DedupGroup, f.FiltersPassed)
				if err := f.Validate(); err != nil {
					t.Errorf("finding %s invalid: %v", f.Function, err)
				}
				roundFinding(f)
			}
			slices.Sort(got)
			want := slices.Clone(sc.Expect)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("findings for %v, want %v", got, want)
			}
			var buf bytes.Buffer
			if err := findings.Encode(&buf, time.Time{}, res.Findings); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "scenarios", name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want2, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./analyzer/detect -update)", err)
			}
			if !bytes.Equal(buf.Bytes(), want2) {
				t.Errorf("findings differ from %s (run with -update if intended):\n%s", golden, buf.String())
			}
		})
	}
}

// TestStagedRolloutPeriodic analyses staged rollouts as a loop would, at the end of
// each stage and at the end of the data: every run reports at most one finding for
// the regressed function, and the last one is dated at the first stage and sized to
// the full rollout (self-sized for a rise of a function's own code).
func TestStagedRolloutPeriodic(t *testing.T) {
	tests := []struct {
		file string
		// minRel is the smallest relative change accepted for the last finding;
		// self whether it must report the self shares.
		minRel float64
		self   bool
	}{
		// Marshal's weight ×1.1 with the rest unchanged: +8.5% share at 100%.
		{"staged_rollout.json", 0.07, false},
		// Handle's own code ×1.2 (stages 3 h apart, longer than the merge
		// tolerance): +19% self share, +1.9% inclusive.
		{"staged_self.json", 0.15, true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			sc := loadScenario(t, filepath.Join("testdata", "scenarios", tt.file))
			ev := sc.Events[0]
			full := sc.Buckets
			var last *findings.Finding
			ends := []int{}
			for i := range ev.Stages {
				if end := ev.At + (i+1)*ev.StageLen; end < full {
					ends = append(ends, end)
				}
			}
			for _, end := range append(ends, full) {
				sc.Buckets = end
				res, err := Run(sc.generate(t), DefaultConfig())
				if err != nil {
					t.Fatal(err)
				}
				var hits []findings.Finding
				for _, f := range res.Findings {
					if f.Function == sc.Expect[0] {
						hits = append(hits, f)
					}
				}
				for _, f := range hits {
					t.Logf("run to bucket %d: %s %+.2f%% at %s filters %v", end, f.Function, 100*f.RelativeChange, f.ChangeTime.Format(time.RFC3339), f.FiltersPassed)
				}
				if len(hits) > 1 {
					t.Errorf("run to bucket %d: %d findings for %s, want at most 1", end, len(hits), sc.Expect[0])
				}
				if len(hits) == 1 {
					last = &hits[0]
				}
			}
			if last == nil {
				t.Fatal("no finding after the full rollout")
			}
			wantAt := scenarioStart.Add(time.Duration(ev.At*sc.StepMinutes) * time.Minute)
			if d := last.ChangeTime.Sub(wantAt); d < -30*time.Minute || d > 30*time.Minute {
				t.Errorf("change time %s, want the first stage %s", last.ChangeTime, wantAt)
			}
			if last.RelativeChange < tt.minRel {
				t.Errorf("relative change %.3f, want at least %.3f (the full rollout)", last.RelativeChange, tt.minRel)
			}
			if self := slices.Contains(last.FiltersPassed, FilterSelfShare); self != tt.self {
				t.Errorf("self-sized %v, want %v", self, tt.self)
			}
		})
	}
}

// TestPairedCostShiftPeriodic analyses a cost shift made by a release during its 10%
// stage after every bucket of the stage, as a loop would: no run may report it (the
// version-paired rise must be matched by the version-paired fall of its source, which
// the fleet-wide share shows only a tenth of).
func TestPairedCostShiftPeriodic(t *testing.T) {
	sc := loadScenario(t, filepath.Join("testdata", "scenarios", "paired_cost_shift.json"))
	ev := sc.Events[0]
	full := sc.Buckets
	for end := ev.At + 2; end <= full; end++ {
		sc.Buckets = end
		res, err := Run(sc.generate(t), DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range res.Findings {
			t.Errorf("run to bucket %d: %s %+.2f%% (%s → %s) filters %v", end, f.Function, 100*f.RelativeChange,
				f.VersionBefore, f.VersionAfter, f.FiltersPassed)
		}
	}
}
