package findings

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Schema is the value of File.Schema for this version of the format.
const Schema = "fleetprof.findings/v1"

// Kind says which half of performance work a finding belongs to.
type Kind string

const (
	// KindRegression is a detected CPU regression (defense).
	KindRegression Kind = "regression"
	// KindOpportunity is a ranked optimization opportunity (offense).
	KindOpportunity Kind = "opportunity"
	// KindGradual is a regression that ramped in over hours to days (the analyzer's
	// long-term stage); its Gradual part describes the ramp.
	KindGradual Kind = "gradual"
)

// Filter names recorded in Finding.FiltersPassed, in pipeline order.
const (
	FilterSignificance = "significance"
	FilterWentAway     = "went_away"
	FilterSeasonality  = "seasonality"
	FilterThreshold    = "threshold"
	FilterMerge        = "merge"
	FilterDedup        = "dedup"
	FilterCostShift    = "cost_shift"
	FilterVersionPair  = "version_paired"
)

// File is one findings document.
type File struct {
	Schema      string    `json:"schema"`
	GeneratedAt time.Time `json:"generated_at,omitzero"`
	Findings    []Finding `json:"findings"`
}

// Share is a CPU share (fraction of the service's samples, 0..1) with its 95% confidence
// interval.
type Share struct {
	Value float64 `json:"value"`
	Lo    float64 `json:"lo"`
	Hi    float64 `json:"hi"`
	// Samples is the number of service samples the estimate is based on.
	Samples float64 `json:"samples,omitempty"`
}

// Finding is one regression or opportunity. See SCHEMA.md for every field.
type Finding struct {
	Kind     Kind   `json:"kind"`
	ID       string `json:"id"`
	Service  string `json:"service"`
	Function string `json:"function"`
	// Domain is the package/type prefix of Function used by the cost-shift filter.
	Domain string `json:"domain,omitempty"`

	Before Share `json:"before"`
	After  Share `json:"after"`
	// AbsoluteChange is After.Value − Before.Value (share units, 0.0001 = 0.01% of the service).
	AbsoluteChange float64 `json:"absolute_change"`
	// RelativeChange is AbsoluteChange / Before.Value (0.05 = +5%); 0 when Before is 0.
	RelativeChange float64 `json:"relative_change"`
	// ServiceCores is the service's average CPU use in cores, an input.
	ServiceCores float64 `json:"service_cores,omitempty"`
	// EstimatedCores is AbsoluteChange × ServiceCores.
	EstimatedCores float64 `json:"estimated_cores,omitempty"`
	// PValue is the significance of the change under the detector's test.
	PValue float64 `json:"p_value"`

	ChangeTime time.Time `json:"change_time,omitzero"`
	// WindowStart/WindowEnd bound the data the finding was computed from.
	WindowStart   time.Time `json:"window_start,omitzero"`
	WindowEnd     time.Time `json:"window_end,omitzero"`
	VersionBefore string    `json:"version_before,omitempty"`
	VersionAfter  string    `json:"version_after,omitempty"`
	// FirstSeen/LastSeen are when analyzer runs first and last reported the finding:
	// a run that finds a stored regression again keeps its ID and FirstSeen and
	// advances LastSeen (analyzer/defense), so overlapping runs give one finding.
	FirstSeen time.Time `json:"first_seen,omitzero"`
	LastSeen  time.Time `json:"last_seen,omitzero"`

	RootCauses           []RootCause `json:"root_causes,omitempty"`
	RepresentativeStacks []Stack     `json:"representative_stacks,omitempty"`
	FiltersPassed        []string    `json:"filters_passed,omitempty"`
	// DedupGroup lists the other functions whose change this finding explains (usually
	// its callers, whose inclusive share rose by the same samples).
	DedupGroup []string `json:"dedup_group,omitempty"`
	// InclusiveBefore/InclusiveAfter are the function's inclusive shares over the
	// same change on a self-share finding whose inclusive share rose with it (its own
	// code regressed; Before/After are the self shares).
	InclusiveBefore *Share `json:"inclusive_before,omitempty"`
	InclusiveAfter  *Share `json:"inclusive_after,omitempty"`

	Opportunity *Opportunity `json:"opportunity,omitempty"`
	// Gradual is present iff Kind is KindGradual.
	Gradual *Gradual `json:"gradual,omitempty"`
}

// Gradual is the ramp of a gradual finding: the function's inclusive share rose along
// a line from Start to End. The finding's Before/After are the fitted shares at the
// ramp's ends and its ChangeTime is Start.
type Gradual struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// SlopePerHour is the rise of the inclusive share per hour (share units).
	SlopePerHour float64 `json:"slope_per_hour"`
	// CumulativeChange is the rise over the whole ramp relative to the share at its
	// start (0.05 = +5%).
	CumulativeChange float64 `json:"cumulative_change"`
	// Releases are the service versions first deployed during the ramp, oldest first:
	// the candidates root cause ranks.
	Releases []string `json:"releases,omitempty"`
}

// Regression is a Finding of kind "regression" (the detector's output); regressions
// and opportunities share one record so storage and UI handle one type.
type Regression = Finding

// RootCause is one candidate change that may have caused a regression.
type RootCause struct {
	Commit    string   `json:"commit"`
	PR        int      `json:"pr,omitempty"`
	Author    string   `json:"author,omitempty"`
	Title     string   `json:"title,omitempty"`
	Files     []string `json:"files,omitempty"`
	Functions []string `json:"functions,omitempty"`
	// Score ranks candidates (higher is more likely); Confidence is 0..1.
	Score      float64 `json:"score"`
	Confidence float64 `json:"confidence"`
}

// Stack is a representative call stack, root first, with its share of the service.
type Stack struct {
	Frames []string `json:"frames"`
	Share  float64  `json:"share"`
}

// Opportunity is the offense part of a finding.
type Opportunity struct {
	Pattern string `json:"pattern"`
	// EstimatedSavingShare is the share of the service the fix would save;
	// EstimatedSavingCores the same in cores.
	EstimatedSavingShare float64 `json:"estimated_saving_share"`
	EstimatedSavingCores float64 `json:"estimated_saving_cores,omitempty"`
	Confidence           float64 `json:"confidence"`
	Description          string  `json:"description,omitempty"`
}

// ComputeID returns the stable id of f: a hash of what identifies the event (kind,
// service, function, version after, change time in UTC seconds), not of measured values,
// so re-running detection over the same data gives the same id.
func ComputeID(f *Finding) string {
	h := sha256.New()
	ct := ""
	if !f.ChangeTime.IsZero() {
		ct = fmt.Sprint(f.ChangeTime.UTC().Unix())
	}
	pattern := ""
	if f.Opportunity != nil {
		pattern = f.Opportunity.Pattern
	}
	for _, s := range []string{string(f.Kind), f.Service, f.Function, f.VersionAfter, ct, pattern} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Validate checks the fields every consumer relies on.
func (f *Finding) Validate() error {
	switch f.Kind {
	case KindRegression, KindOpportunity, KindGradual:
	default:
		return fmt.Errorf("kind %q: want %q, %q or %q", f.Kind, KindRegression, KindOpportunity, KindGradual)
	}
	if f.ID == "" {
		return errors.New("empty id")
	}
	if f.Service == "" {
		return errors.New("empty service")
	}
	if f.Function == "" {
		return errors.New("empty function")
	}
	nums := []float64{f.Before.Value, f.After.Value, f.AbsoluteChange, f.RelativeChange, f.PValue}
	if f.Gradual != nil {
		nums = append(nums, f.Gradual.SlopePerHour, f.Gradual.CumulativeChange)
	}
	for _, v := range nums {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return errors.New("non-finite number")
		}
	}
	if f.Kind == KindOpportunity && f.Opportunity == nil {
		return errors.New("opportunity finding without opportunity part")
	}
	if (f.Kind == KindGradual) != (f.Gradual != nil) {
		return errors.New("gradual part present iff kind is gradual")
	}
	if g := f.Gradual; g != nil && !g.End.After(g.Start) {
		return fmt.Errorf("gradual ramp %v … %v: want end after start", g.Start, g.End)
	}
	return nil
}

// Encode writes fs as a File document (indented JSON).
func Encode(w io.Writer, generated time.Time, fs []Finding) error {
	if fs == nil {
		fs = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(File{Schema: Schema, GeneratedAt: generated, Findings: fs}); err != nil {
		return fmt.Errorf("encode findings: %w", err)
	}
	return nil
}

// Decode reads a File document and checks its schema version and every finding.
func Decode(r io.Reader) (*File, error) {
	var f File
	if err := json.NewDecoder(r).Decode(&f); err != nil {
		return nil, fmt.Errorf("decode findings: %w", err)
	}
	if !strings.HasPrefix(f.Schema, "fleetprof.findings/") {
		return nil, fmt.Errorf("decode findings: schema %q is not a findings document", f.Schema)
	}
	if f.Schema != Schema {
		return nil, fmt.Errorf("decode findings: schema %q unsupported (want %q)", f.Schema, Schema)
	}
	for i := range f.Findings {
		if err := f.Findings[i].Validate(); err != nil {
			return nil, fmt.Errorf("decode findings: finding %d: %w", i, err)
		}
	}
	return &f, nil
}

// DomainOf returns the package of a Go-style symbol name, the unit the cost-shift filter
// compares within: "net/http.(*conn).serve" → "net/http", "encoding/json.Marshal" →
// "encoding/json", "main.main" → "main". Names without a package (C symbols) are their
// own domain.
func DomainOf(fn string) string {
	// The package ends at the first '.' after the last '/'.
	slash := strings.LastIndexByte(fn, '/')
	dot := strings.IndexByte(fn[slash+1:], '.')
	if dot <= 0 {
		return fn
	}
	return fn[:slash+1+dot]
}
