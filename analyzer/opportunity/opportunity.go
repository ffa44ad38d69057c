package opportunity

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/model"
)

// Defaults for Config.
const (
	// DefaultWattsPerCore is the marginal power of one busy server core (a 2-socket,
	// ~250 W server with 32–64 cores lands at 4–8 W per core).
	DefaultWattsPerCore = 6.0
	// DefaultCostPerCoreYear is what one core costs for a year, all-in (hardware
	// amortization, power, cooling), in Currency.
	DefaultCostPerCoreYear = 250.0
	DefaultCurrency        = "USD"
	DefaultMinShare        = 0.001
	// EvidenceMinSamples is the evidence a reported opportunity needs (the analyzer
	// loop and `fleetprof analyze` set it): with fewer samples its share is noise (a
	// process seen once or twice is "100% regexp").
	EvidenceMinSamples = 20
	// EvidenceMinSavingCores drops opportunities whose estimated saving is under a
	// thousandth of a core: nobody should spend a patch on that.
	EvidenceMinSavingCores = 0.001
	// EvidenceMaxIntervalRatio drops opportunities whose share's 95% interval
	// is wider than the share itself: the share could as well be half or
	// twice what is shown. With many samples of a small share this is what
	// decides; EvidenceMinSamples alone allows a ratio of about 0.9.
	EvidenceMaxIntervalRatio = 1.0
	DefaultMaxResults        = 50
	DefaultMaxStacks         = 3
)

// Config holds the figures turning samples into money.
type Config struct {
	WattsPerCore    float64 // watts per busy core; default DefaultWattsPerCore
	CostPerCoreYear float64 // money per core-year; default DefaultCostPerCoreYear
	Currency        string  // default USD
	// MinShare drops opportunities whose samples are under this share of the service
	// (0..1); default 0.001.
	MinShare float64
	// MinSamples and MinSavingCores are the minimum evidence and value before an
	// opportunity is reported (0: none; reports use EvidenceMinSamples and
	// EvidenceMinSavingCores, tool calls over a short profile none).
	MinSamples     int64
	MinSavingCores float64
	// MaxIntervalRatio, when above 0, drops opportunities whose share's 95%
	// interval width exceeds this multiple of the share (reports use
	// EvidenceMaxIntervalRatio).
	MaxIntervalRatio float64
	MaxResults       int // default 50
	MaxStacks        int // representative stacks kept per opportunity; default 3
}

// WithEvidence returns c with the evidence minimums reported opportunities
// need (EvidenceMinSamples, EvidenceMinSavingCores, EvidenceMaxIntervalRatio).
func (c Config) WithEvidence() Config {
	c.MinSamples, c.MinSavingCores, c.MaxIntervalRatio = EvidenceMinSamples, EvidenceMinSavingCores, EvidenceMaxIntervalRatio
	return c
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.WattsPerCore == 0 {
		c.WattsPerCore = DefaultWattsPerCore
	}
	if c.CostPerCoreYear == 0 {
		c.CostPerCoreYear = DefaultCostPerCoreYear
	}
	if c.Currency == "" {
		c.Currency = DefaultCurrency
	}
	if c.MinShare == 0 {
		c.MinShare = DefaultMinShare
	}
	if c.MaxResults == 0 {
		c.MaxResults = DefaultMaxResults
	}
	if c.MaxStacks == 0 {
		c.MaxStacks = DefaultMaxStacks
	}
	return c
}

// Validate reports the first invalid field (after defaults).
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.WattsPerCore < 0 || math.IsNaN(c.WattsPerCore):
		return fmt.Errorf("watts per core %v: must be positive", c.WattsPerCore)
	case c.CostPerCoreYear < 0 || math.IsNaN(c.CostPerCoreYear):
		return fmt.Errorf("cost per core-year %v: must be positive", c.CostPerCoreYear)
	case c.MinShare < 0 || c.MinShare >= 1:
		return fmt.Errorf("min share %v: want [0, 1)", c.MinShare)
	case c.MinSamples < 0:
		return fmt.Errorf("min samples %d: must not be negative", c.MinSamples)
	case c.MinSavingCores < 0 || math.IsNaN(c.MinSavingCores):
		return fmt.Errorf("min saving cores %v: must not be negative", c.MinSavingCores)
	case c.MaxIntervalRatio < 0 || math.IsNaN(c.MaxIntervalRatio):
		return fmt.Errorf("max interval ratio %v: must not be negative", c.MaxIntervalRatio)
	case c.MaxResults < 0:
		return fmt.Errorf("max results %d: must not be negative", c.MaxResults)
	case c.MaxStacks < 0:
		return fmt.Errorf("max stacks %d: must not be negative", c.MaxStacks)
	}
	return nil
}

// Input is one service's profile over a window.
type Input struct {
	Service string
	Profile *model.Profile
	// Wall is the wall-clock time the profile covers (for cores = samples × period /
	// wall). When Cores is set it is used instead.
	Wall  time.Duration
	Cores float64
	// Version, when known, is recorded as the finding's version.
	Version string
	// WindowStart/WindowEnd bound the data (recorded in findings).
	WindowStart, WindowEnd time.Time
}

// ServiceCores is the average number of cores the profile's samples represent.
func (in Input) ServiceCores() float64 {
	if in.Cores > 0 {
		return in.Cores
	}
	if in.Profile == nil || in.Wall <= 0 {
		return 0
	}
	period := in.Profile.PeriodNS
	if period <= 0 {
		period = int64(time.Second / 100)
	}
	return float64(in.Profile.Total) * float64(period) / float64(in.Wall.Nanoseconds())
}

// Cost is a CPU amount in the three units people budget in.
type Cost struct {
	Cores        float64 `json:"cores"`
	Watts        float64 `json:"watts"`
	MoneyPerYear float64 `json:"money_per_year"`
}

func (c Config) cost(cores float64) Cost {
	return Cost{Cores: cores, Watts: cores * c.WattsPerCore, MoneyPerYear: cores * c.CostPerCoreYear}
}

// FunctionCost is what one function (self) and its subtree (inclusive) cost.
type FunctionCost struct {
	Function       string  `json:"function"`
	SelfShare      float64 `json:"self_share"`
	InclusiveShare float64 `json:"inclusive_share"`
	Self           Cost    `json:"self"`
	Inclusive      Cost    `json:"inclusive"`
}

// FunctionCosts returns every function's cost, by inclusive cost descending. A
// function is counted once per stack for inclusive, even when recursive.
func FunctionCosts(in Input, cfg Config) ([]FunctionCost, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("opportunity config: %w", err)
	}
	cfg = cfg.WithDefaults()
	if in.Profile == nil || in.Profile.Total <= 0 {
		return nil, errors.New("function costs: empty profile")
	}
	cores := in.ServiceCores()
	self := map[string]int64{}
	incl := map[string]int64{}
	for _, s := range in.Profile.Stacks {
		if len(s.Frames) == 0 {
			continue
		}
		self[s.Frames[len(s.Frames)-1]] += s.Value
		seen := make(map[string]bool, len(s.Frames))
		for _, f := range s.Frames {
			if !seen[f] {
				seen[f] = true
				incl[f] += s.Value
			}
		}
	}
	total := float64(in.Profile.Total)
	out := make([]FunctionCost, 0, len(incl))
	for fn, n := range incl {
		ss, is := float64(self[fn])/total, float64(n)/total
		out = append(out, FunctionCost{Function: fn, SelfShare: ss, InclusiveShare: is,
			Self: cfg.cost(ss * cores), Inclusive: cfg.cost(is * cores)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].InclusiveShare != out[j].InclusiveShare {
			return out[i].InclusiveShare > out[j].InclusiveShare
		}
		return out[i].Function < out[j].Function
	})
	return out, nil
}

// Opportunity is one fix pattern at one site with its estimated saving. Rank orders
// by expected saving: SavingShare × Confidence.
type Opportunity struct {
	Service string `json:"service"`
	// Function is the site: the code to change (nearest caller outside the standard
	// library), or the pattern's own frame when there is none.
	Function string `json:"function"`
	Pattern  string `json:"pattern"`
	// Frame is the frame that matched the pattern's signature.
	Frame       string `json:"frame"`
	Description string `json:"description"`
	Fix         string `json:"fix"`
	// Share is the share of the service's samples in stacks matching the pattern at
	// this site; SiteShare is the site's inclusive share.
	Share     float64 `json:"share"`
	SiteShare float64 `json:"site_share"`
	Samples   int64   `json:"samples"`
	// Cost is Share × service CPU; Saving is Cost × the pattern's saving fraction.
	ServiceCores float64          `json:"service_cores"`
	Cost         Cost             `json:"cost"`
	SavingShare  float64          `json:"saving_share"`
	Saving       Cost             `json:"saving"`
	Currency     string           `json:"currency"`
	Confidence   float64          `json:"confidence"`
	Stacks       []findings.Stack `json:"stacks,omitempty"`
}

// Rank classifies in's stacks into fix patterns and returns the opportunities by
// estimated saving, largest first.
func Rank(in Input, cfg Config) ([]Opportunity, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("opportunity config: %w", err)
	}
	cfg = cfg.WithDefaults()
	if in.Profile == nil || in.Profile.Total <= 0 {
		return nil, errors.New("rank opportunities: empty profile")
	}
	total := float64(in.Profile.Total)
	cores := in.ServiceCores()
	type key struct{ pattern, site string }
	type acc struct {
		frame   string
		samples int64
		stacks  []model.StackCount
	}
	groups := map[key]*acc{}
	siteIncl := map[string]int64{}
	for _, s := range in.Profile.Stacks {
		seen := map[string]bool{}
		for _, f := range s.Frames {
			if !seen[f] {
				seen[f] = true
				siteIncl[f] += s.Value
			}
		}
		p, idx := Classify(s.Frames)
		if p == nil {
			continue
		}
		k := key{p.Name, Site(s.Frames, idx)}
		a := groups[k]
		if a == nil {
			a = &acc{frame: s.Frames[idx]}
			groups[k] = a
		}
		a.samples += s.Value
		a.stacks = append(a.stacks, s)
	}
	var out []Opportunity
	for k, a := range groups {
		share := float64(a.samples) / total
		p := patternByName[k.pattern]
		if share < cfg.MinShare || a.samples < cfg.MinSamples || share*p.Saving*cores < cfg.MinSavingCores {
			continue
		}
		if ci := shareCI(a.samples, in.Profile.Total); cfg.MaxIntervalRatio > 0 && ci.Hi-ci.Lo > cfg.MaxIntervalRatio*share {
			continue
		}
		sort.Slice(a.stacks, func(i, j int) bool { return a.stacks[i].Value > a.stacks[j].Value })
		var stacks []findings.Stack
		for i := 0; i < len(a.stacks) && i < cfg.MaxStacks; i++ {
			stacks = append(stacks, findings.Stack{Frames: a.stacks[i].Frames, Share: float64(a.stacks[i].Value) / total})
		}
		out = append(out, Opportunity{
			Service: in.Service, Function: k.site, Pattern: k.pattern, Frame: a.frame,
			Description: p.Description, Fix: p.Fix,
			Share: share, SiteShare: float64(siteIncl[k.site]) / total, Samples: a.samples,
			ServiceCores: cores, Cost: cfg.cost(share * cores),
			SavingShare: share * p.Saving, Saving: cfg.cost(share * p.Saving * cores),
			Currency: cfg.Currency, Confidence: p.Confidence, Stacks: stacks,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.SavingShare*a.Confidence != b.SavingShare*b.Confidence {
			return a.SavingShare*a.Confidence > b.SavingShare*b.Confidence
		}
		if a.Pattern != b.Pattern {
			return a.Pattern < b.Pattern
		}
		return a.Function < b.Function
	})
	if len(out) > cfg.MaxResults {
		out = out[:cfg.MaxResults]
	}
	return out, nil
}

// Finding converts o to a finding of kind opportunity.
func (o Opportunity) Finding(in Input) findings.Finding {
	f := findings.Finding{
		Kind:                 findings.KindOpportunity,
		Service:              o.Service,
		Function:             o.Function,
		Domain:               findings.DomainOf(o.Function),
		Before:               shareCI(o.Samples, in.Profile.Total),
		After:                findings.Share{Value: o.Share - o.SavingShare, Lo: o.Share - o.SavingShare, Hi: o.Share - o.SavingShare},
		AbsoluteChange:       -o.SavingShare,
		ServiceCores:         o.ServiceCores,
		EstimatedCores:       -o.Saving.Cores,
		WindowStart:          in.WindowStart,
		WindowEnd:            in.WindowEnd,
		VersionAfter:         in.Version,
		RepresentativeStacks: o.Stacks,
		Opportunity: &findings.Opportunity{
			Pattern:              o.Pattern,
			EstimatedSavingShare: o.SavingShare,
			EstimatedSavingCores: o.Saving.Cores,
			Confidence:           o.Confidence,
			Description:          fmt.Sprintf("%s in %s (%s). Fix: %s", o.Description, o.Function, o.Frame, o.Fix),
		},
	}
	if o.Share > 0 {
		f.RelativeChange = -o.SavingShare / o.Share
	}
	f.ID = findings.ComputeID(&f)
	return f
}

// shareZ is the normal quantile of shareCI's 95% interval.
const shareZ = 1.96

// shareCI is the share k/n with its 95% Wilson score interval: an honest range
// for few samples (2 of 2 is [34%, 100%], not [100%, 100%]), where the normal
// approximation collapses; what EvidenceMinSamples keeps out is visible in it.
func shareCI(k, n int64) findings.Share {
	if n <= 0 {
		return findings.Share{}
	}
	p, nn := float64(k)/float64(n), float64(n)
	z2 := shareZ * shareZ
	mid := (p + z2/(2*nn)) / (1 + z2/nn)
	half := shareZ / (1 + z2/nn) * math.Sqrt(p*(1-p)/nn+z2/(4*nn*nn))
	return findings.Share{Value: p, Lo: max(0, mid-half), Hi: min(1, mid+half), Samples: nn}
}

// Findings ranks in and converts the opportunities to findings.
func Findings(in Input, cfg Config) ([]findings.Finding, error) {
	ops, err := Rank(in, cfg)
	if err != nil {
		return nil, err
	}
	out := make([]findings.Finding, len(ops))
	for i, o := range ops {
		out[i] = o.Finding(in)
	}
	return out, nil
}

// Site returns the function to change for a pattern matched at frames[idx]: the
// nearest caller (toward the root) outside the standard library and runtime, else
// frames[idx] itself.
func Site(frames []string, idx int) string {
	for i := idx - 1; i >= 0; i-- {
		if !IsStdlib(frames[i]) {
			return frames[i]
		}
	}
	return frames[idx]
}

// IsStdlib reports whether a frame is Go standard library or runtime code (its import
// path's first element has no dot and it is not package main), or a native/kernel
// frame, which a Go developer cannot edit either.
func IsStdlib(frame string) bool {
	if strings.HasSuffix(frame, "_[k]") {
		return true
	}
	pkg := findings.DomainOf(frame)
	if pkg == frame && !strings.Contains(frame, ".") {
		return true // C symbol
	}
	if pkg == "main" {
		return false
	}
	first, _, _ := strings.Cut(pkg, "/")
	return !strings.Contains(first, ".")
}
