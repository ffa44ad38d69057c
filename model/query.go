package model

import (
	"encoding/json"
	"time"
)

// Filter restricts a selection to rows whose label Key equals Value. Key is a built-in
// label (service, version, host, namespace, pod, container, comm, pid) or the name of an
// extra label. Filters are values passed to the store, never SQL text.
type Filter struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Selection is a set of samples of one profile type: one service (empty = all), a
// half-open time range [From, To) and label filters (ANDed; several filters on one key
// are ORed).
type Selection struct {
	Service string    `json:"service,omitempty"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Filters []Filter  `json:"filters,omitempty"`
	// ProfileType is what the selected values count: "cpu" (also when empty) or an
	// imported profile's TYPE/UNIT, e.g. "alloc_space/bytes" (proto/samplebatch).
	ProfileType string `json:"profile_type,omitempty"`
}

// FunctionStat is one row of the top table.
type FunctionStat struct {
	Function     string  `json:"function"`
	Self         int64   `json:"self"`          // samples where it is the leaf
	Inclusive    int64   `json:"inclusive"`     // samples whose stack contains it (once per stack, even if recursive)
	SelfPct      float64 `json:"self_pct"`      // Self / Total × 100
	InclusivePct float64 `json:"inclusive_pct"` // Inclusive / Total × 100
	// File and Line are where the function is defined (its first line), when a
	// stack carried its location (Python frames); empty and 0 otherwise.
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
}

// Top is the top-functions result for a selection, sorted by Self descending.
type Top struct {
	Total     int64          `json:"total"`     // samples in the selection
	Count     int            `json:"count"`     // distinct functions in the selection (Functions may be fewer: the limit)
	PeriodNS  int64          `json:"period_ns"` // most common sampling period, to turn samples into cores
	Functions []FunctionStat `json:"functions"`
}

// FlameNode is a node of a flame graph: one function reached by one call path.
// The root node is named "root" and holds the selection's total.
type FlameNode struct {
	Name  string `json:"name"`
	Total int64  `json:"total"` // samples in this subtree (inclusive)
	Self  int64  `json:"self"`  // samples ending here
	// File and Line are where the function is defined, when known (as
	// FunctionStat's).
	File     string       `json:"file,omitempty"`
	Line     int          `json:"line,omitempty"`
	Children []*FlameNode `json:"children,omitempty"`
}

// StackCount is one distinct stack with its samples (pprof and folded export).
type StackCount struct {
	Frames []string `json:"frames"` // root first
	// Locations, when not nil, is parallel to Frames: each frame's
	// "FILE:LINE" (proto/samplebatch.Location), "" where unknown.
	Locations []string `json:"locations,omitempty"`
	Value     int64    `json:"value"`
}

// Profile is the stacks of a selection with the sampling period, enough to write pprof.
type Profile struct {
	Stacks   []StackCount `json:"stacks"`
	Total    int64        `json:"total"`
	PeriodNS int64        `json:"period_ns"` // most common sampling period in the selection
	// ProfileType is the selection's profile type; empty for CPU, else values are in
	// its unit (Selection.ProfileType).
	ProfileType string `json:"profile_type,omitempty"`
}

// DiffNode is a node of a flame diff: the same call path in the baseline and the
// comparison, with samples and each side's share of its own total.
type DiffNode struct {
	Name     string      `json:"name"`
	Base     int64       `json:"base"`      // baseline samples (inclusive)
	Cmp      int64       `json:"cmp"`       // comparison samples (inclusive)
	BaseSelf int64       `json:"base_self"` // baseline samples ending here
	CmpSelf  int64       `json:"cmp_self"`  // comparison samples ending here
	BasePct  float64     `json:"base_pct"`  // Base / baseline total × 100
	CmpPct   float64     `json:"cmp_pct"`   // Cmp / comparison total × 100
	DeltaPct float64     `json:"delta_pct"` // CmpPct − BasePct (normalized change)
	Children []*DiffNode `json:"children,omitempty"`
}

// Diff compares two selections, normalized to each side's total.
type Diff struct {
	BaseTotal int64     `json:"base_total"`
	CmpTotal  int64     `json:"cmp_total"`
	Root      *DiffNode `json:"root"`
	// Movers are functions ordered by |change of inclusive share|, largest first.
	Movers []Mover `json:"movers"`
}

// Mover is one function's change between the two sides of a diff.
type Mover struct {
	Function          string  `json:"function"`
	BaseSelfPct       float64 `json:"base_self_pct"`
	CmpSelfPct        float64 `json:"cmp_self_pct"`
	BaseInclusivePct  float64 `json:"base_inclusive_pct"`
	CmpInclusivePct   float64 `json:"cmp_inclusive_pct"`
	DeltaInclusivePct float64 `json:"delta_inclusive_pct"`
}

// RollupRow is one row of the per-(service, version, host group, bucket, function)
// rollup the analyzer reads. Function "" is the row with the service's total samples.
type RollupRow struct {
	Service   string    `json:"service"`
	Version   string    `json:"version"`
	HostGroup uint8     `json:"host_group"` // hash(host) mod HostGroups: variance between groups without a row per host
	Bucket    time.Time `json:"bucket"`
	Function  string    `json:"function"`
	Self      int64     `json:"self"`
	Inclusive int64     `json:"inclusive"`
}

// RollupQuery selects rollup rows: one service, a time range, functions whose inclusive
// share over the range is at least MinShare (0..1). The totals rows (Function "") are
// always included.
type RollupQuery struct {
	Service  string
	From, To time.Time
	MinShare float64
	// Step sums the rollup's buckets into steps of this length (aligned to the Unix
	// epoch) in the database, so a long range returns fewer rows; 0 keeps the
	// store's rollup bucket.
	Step time.Duration
}

// VersionSpan is when a service version was seen: deploy events for the analyzer.
type VersionSpan struct {
	Version   string    `json:"version"`
	FirstSeen time.Time `json:"first_seen"` // earliest sample bucket
	LastSeen  time.Time `json:"last_seen"`  // latest sample bucket
	Samples   int64     `json:"samples"`
}

// SeriesPoint is one step of a function's inclusive share over time.
type SeriesPoint struct {
	Time      time.Time `json:"time"`      // step start
	Total     int64     `json:"total"`     // samples in the step
	Inclusive int64     `json:"inclusive"` // samples whose stack contains the function
	Share     float64   `json:"share"`     // Inclusive / Total (0..1)
}

// FindingRecord is one stored analyzer finding; Body is the analyzer's JSON.
// Storing a record with an existing ID replaces it.
type FindingRecord struct {
	ID      string          `json:"id"`
	Kind    string          `json:"kind"`
	Service string          `json:"service"`
	Created time.Time       `json:"created"`
	Body    json.RawMessage `json:"body"`
}

// FindingsQuery selects findings; empty fields do not filter. Newest first.
type FindingsQuery struct {
	Service  string
	Kind     string
	From, To time.Time // on Created
	Limit    int       // default 100
}
