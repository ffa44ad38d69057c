package rootcause

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/fleetprof/fleetprof/analyzer/findings"
)

// Config weighs the evidence. Start from DefaultConfig.
type Config struct {
	// Weights of stack attribution, directness and text similarity in the score
	// (they need not sum to 1; the best possible score is their sum).
	AttributionWeight, DirectWeight, TextWeight float64
	// TimingScale is how fast a deployment's plausibility decays with its distance
	// before the change point; TimingTolerance how far after the change point a
	// deployment may be (bucket granularity) and still count as before it.
	TimingScale     time.Duration
	TimingTolerance time.Duration
	// MinScore and MinConfidence: below either, the result is None.
	MinScore      float64
	MinConfidence float64
	// Prior is the weight of "none of these changes" in the confidence.
	Prior float64
	// TopK is how many candidates are reported.
	TopK int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		AttributionWeight: 0.55, DirectWeight: 0.25, TextWeight: 0.20,
		TimingScale: 12 * time.Hour, TimingTolerance: 30 * time.Minute,
		MinScore: 0.3, MinConfidence: 0.25, Prior: 0.1, TopK: 3,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	for _, w := range []float64{c.AttributionWeight, c.DirectWeight, c.TextWeight, c.MinScore, c.MinConfidence, c.Prior} {
		if !(w >= 0) || math.IsInf(w, 0) {
			return fmt.Errorf("weights, thresholds and prior must be finite and >= 0, got %v", w)
		}
	}
	if c.AttributionWeight+c.DirectWeight+c.TextWeight == 0 {
		return fmt.Errorf("all weights are 0")
	}
	if c.TimingScale <= 0 || c.TimingTolerance < 0 {
		return fmt.Errorf("timing scale %v, tolerance %v: want > 0 and >= 0", c.TimingScale, c.TimingTolerance)
	}
	if c.TopK < 1 {
		return fmt.Errorf("top k %d: want >= 1", c.TopK)
	}
	return nil
}

// StackDelta is one stack's samples before and after the change point.
type StackDelta struct {
	Frames        []string // root first
	Before, After float64
}

// Regression is what is known about the regression being explained.
type Regression struct {
	Function   string
	ChangeTime time.Time // zero when unknown
	// Stacks with before/after samples; Before/AfterTotal are the service's samples in
	// each period (0: the sum over Stacks).
	Stacks                  []StackDelta
	BeforeTotal, AfterTotal float64
}

// Candidate is a change with the evidence for it.
type Candidate struct {
	Change
	// DeployedAt is when the change reached production (zero: unknown).
	DeployedAt time.Time `json:"deployed_at,omitzero"`
	// Evidence, each 0..1.
	Attribution float64 `json:"attribution"`
	Direct      float64 `json:"direct"`
	Timing      float64 `json:"timing"`
	Text        float64 `json:"text"`
	// Score ranks candidates; Confidence (0..1) is the score's share of all evidence,
	// including "none of these".
	Score      float64 `json:"score"`
	Confidence float64 `json:"confidence"`
}

// Result is the ranking for one regression.
type Result struct {
	// Top holds the best TopK candidates, best first (also when None).
	Top []Candidate `json:"top"`
	// None is set when no candidate is convincing enough to name.
	None bool `json:"none"`
}

// Rank scores the candidate changes for reg and returns the best ones.
func Rank(reg Regression, cands []Candidate, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, fmt.Errorf("rank root causes: %w", err)
	}
	if reg.Function == "" {
		return Result{}, fmt.Errorf("rank root causes: regression without function")
	}
	rises, total := stackRises(reg)
	fnTokens := tokens(reg.Function)
	scored := make([]Candidate, len(cands))
	sum := 0.0
	for i, c := range cands {
		touched := map[string]bool{}
		for _, f := range c.Functions {
			touched[f] = true
		}
		if touched[reg.Function] {
			c.Direct = 1
		}
		switch {
		case total > 0:
			c.Attribution = attribution(reg.Function, rises, total, touched)
		default:
			// Without stacks, only a direct touch attributes the rise.
			c.Attribution = c.Direct
		}
		c.Timing = timing(reg.ChangeTime, c.DeployedAt, cfg)
		c.Text = textSimilarity(fnTokens, c.Change)
		base := cfg.AttributionWeight*c.Attribution + cfg.DirectWeight*c.Direct + cfg.TextWeight*c.Text
		c.Score = base / (cfg.AttributionWeight + cfg.DirectWeight + cfg.TextWeight) * (0.2 + 0.8*c.Timing)
		sum += c.Score
		scored[i] = c
	}
	for i := range scored {
		s := scored[i].Score
		scored[i].Confidence = s * s / (sum + cfg.Prior)
	}
	sort.SliceStable(scored, func(i, j int) bool { return scored[i].Score > scored[j].Score })
	res := Result{Top: scored[:min(cfg.TopK, len(scored))]}
	res.None = len(res.Top) == 0 || res.Top[0].Score < cfg.MinScore || res.Top[0].Confidence < cfg.MinConfidence
	return res, nil
}

// RootCauses converts a result to the findings form: nil when None, else the top
// candidates best first.
func (r Result) RootCauses() []findings.RootCause {
	if r.None {
		return nil
	}
	var out []findings.RootCause
	for _, c := range r.Top {
		out = append(out, findings.RootCause{
			Commit: c.Commit, PR: c.PR, Author: c.Author, Title: c.Title,
			Files: c.Files, Functions: c.Functions, Score: c.Score, Confidence: c.Confidence,
		})
	}
	return out
}

type rise struct {
	frames []string
	fnAt   int // index of the regressed function in frames (first occurrence)
	amount float64
}

// stackRises returns the stacks containing fn whose share rose, and the total rise.
func stackRises(reg Regression) ([]rise, float64) {
	bt, at := reg.BeforeTotal, reg.AfterTotal
	if bt == 0 || at == 0 {
		var b, a float64
		for _, s := range reg.Stacks {
			b += s.Before
			a += s.After
		}
		if bt == 0 {
			bt = b
		}
		if at == 0 {
			at = a
		}
	}
	if bt == 0 || at == 0 {
		return nil, 0
	}
	var out []rise
	total := 0.0
	for _, s := range reg.Stacks {
		idx := -1
		for i, f := range s.Frames {
			if f == reg.Function {
				idx = i
				break
			}
		}
		if idx < 0 {
			continue
		}
		d := s.After/at - s.Before/bt
		if d > 0 {
			out = append(out, rise{frames: s.Frames, fnAt: idx, amount: d})
			total += d
		}
	}
	return out, total
}

// attribution is the share of the rise in stacks the change touched: fully when it
// touched the function or code below it, half when only a caller.
func attribution(fn string, rises []rise, total float64, touched map[string]bool) float64 {
	if len(touched) == 0 {
		return 0
	}
	got := 0.0
	for _, r := range rises {
		w := 0.0
		for i, f := range r.frames {
			if touched[f] {
				if i >= r.fnAt {
					w = 1
					break
				}
				w = 0.5
			}
		}
		got += w * r.amount
	}
	return got / total
}

// timing is 1 for a deployment at the change point, decaying with the time between
// them, and 0 for one after it; 0.5 when either time is unknown.
func timing(change, deployed time.Time, cfg Config) float64 {
	if change.IsZero() || deployed.IsZero() {
		return 0.5
	}
	gap := change.Sub(deployed)
	if gap < -cfg.TimingTolerance {
		return 0
	}
	return math.Exp(-math.Max(0, gap.Hours()) / cfg.TimingScale.Hours())
}

// textSimilarity is the fraction of the function's name words found in the change's
// files, title and touched functions.
func textSimilarity(fnTokens []string, c Change) float64 {
	if len(fnTokens) == 0 {
		return 0
	}
	have := map[string]bool{}
	for _, s := range append(append([]string{c.Title}, c.Files...), c.Functions...) {
		for _, t := range tokens(s) {
			have[t] = true
		}
	}
	n := 0
	for _, t := range fnTokens {
		if have[t] {
			n++
		}
	}
	return float64(n) / float64(len(fnTokens))
}

// tokens splits a name into lower-case words: separators and camelCase boundaries,
// dropping short words and Go file suffixes.
func tokens(s string) []string {
	var out []string
	seen := map[string]bool{}
	var cur []rune
	flush := func() {
		w := strings.ToLower(string(cur))
		cur = cur[:0]
		if len(w) < 3 || w == "go" || seen[w] {
			return
		}
		seen[w] = true
		out = append(out, w)
	}
	rs := []rune(s)
	for i, r := range rs {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if unicode.IsUpper(r) && len(cur) > 0 && (unicode.IsLower(cur[len(cur)-1]) ||
				(i+1 < len(rs) && unicode.IsLower(rs[i+1]))) {
				flush()
			}
			cur = append(cur, r)
		default:
			flush()
		}
	}
	flush()
	return out
}
