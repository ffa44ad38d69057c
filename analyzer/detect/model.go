package detect

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"
)

// Service is the detector's input for one service: per-bucket sample counts of the
// service and, per function, of the samples whose stack contains the function
// (inclusive, counted once per stack even when the function recurses) and of those
// where it is the leaf (self). All slices indexed by bucket have Buckets() entries;
// bucket i covers [Start+i·Step, Start+(i+1)·Step).
type Service struct {
	Name string
	// Cores is the service's average CPU use in cores (turns shares into cores).
	Cores float64
	Start time.Time
	Step  time.Duration
	// Total is the number of samples of the service per bucket.
	Total []float64
	// GroupTotal optionally breaks Total down per host group (e.g. node pool, zone,
	// or a hash of the host name); the spread between groups measures over-dispersion.
	GroupTotal map[string][]float64
	// VersionTotal optionally breaks Total down per service version.
	VersionTotal map[string][]float64
	// CellTotal optionally breaks Total down per (version, host group): the
	// version-paired test compares host groups running each version, so host effects
	// count as noise instead of as a version difference.
	CellTotal map[Cell][]float64
	Series    []Series
	// Edges are caller→callee sample counts from stacks (self-recursion excluded);
	// dedup uses them to know which functions are callers of which.
	Edges []Edge
	// Stacks optionally holds per-bucket counts of full stacks, for representative
	// stacks in findings.
	Stacks []Stack
}

// Series is one function's counts. Group, version and cell maps, when set, have the
// same keys as the service's GroupTotal/VersionTotal/CellTotal.
type Series struct {
	Function         string
	Inclusive        []float64
	Self             []float64
	GroupInclusive   map[string][]float64
	VersionInclusive map[string][]float64
	CellInclusive    map[Cell][]float64
	// CellSelf is Self per (version, host group): the cost-shift check of a
	// version-paired rise compares the self shares of its possible sources between
	// the same host groups and versions, since a moved cost shows in full only
	// there (a 10% stage shows a tenth of it in fleet-wide shares).
	CellSelf map[Cell][]float64
}

// Cell is one (version, host group) pair.
type Cell struct{ Version, Group string }

// Edge is a caller→callee relation with the number of samples it appeared in.
type Edge struct {
	Caller, Callee string
	Count          float64
}

// Stack is a full call stack (root first) with its sample count per bucket.
type Stack struct {
	Frames []string
	Count  []float64
}

// Buckets returns the number of time buckets.
func (s *Service) Buckets() int { return len(s.Total) }

// Validate checks that every per-bucket slice has the right length and that counts
// are finite and non-negative, naming the first offender.
func (s *Service) Validate() error {
	n := len(s.Total)
	if s.Name == "" {
		return errors.New("service without name")
	}
	if s.Step <= 0 {
		return fmt.Errorf("service %s: step %v: want > 0", s.Name, s.Step)
	}
	check := func(what string, xs []float64) error {
		if len(xs) != n {
			return fmt.Errorf("service %s: %s has %d buckets, want %d", s.Name, what, len(xs), n)
		}
		for i, x := range xs {
			if x < 0 || math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("service %s: %s bucket %d: bad count %v", s.Name, what, i, x)
			}
		}
		return nil
	}
	if err := check("total", s.Total); err != nil {
		return err
	}
	for _, k := range sortedKeys(s.GroupTotal) {
		if err := check("group "+k+" total", s.GroupTotal[k]); err != nil {
			return err
		}
	}
	for _, k := range sortedKeys(s.VersionTotal) {
		if err := check("version "+k+" total", s.VersionTotal[k]); err != nil {
			return err
		}
	}
	for _, k := range sortedCells(s.CellTotal) {
		if err := check("cell "+k.Version+"/"+k.Group+" total", s.CellTotal[k]); err != nil {
			return err
		}
	}
	for i := range s.Series {
		sr := &s.Series[i]
		if sr.Function == "" {
			return fmt.Errorf("service %s: series %d has no function name", s.Name, i)
		}
		if err := check(sr.Function+" inclusive", sr.Inclusive); err != nil {
			return err
		}
		for t, x := range sr.Inclusive {
			if x > s.Total[t]*(1+1e-9) {
				return fmt.Errorf("service %s: %s bucket %d: inclusive %v exceeds total %v", s.Name, sr.Function, t, x, s.Total[t])
			}
		}
		if sr.Self != nil {
			if err := check(sr.Function+" self", sr.Self); err != nil {
				return err
			}
		}
		for k, xs := range sr.GroupInclusive {
			if _, ok := s.GroupTotal[k]; !ok {
				return fmt.Errorf("service %s: %s: group %q has no group total", s.Name, sr.Function, k)
			}
			if err := check(sr.Function+" group "+k, xs); err != nil {
				return err
			}
		}
		for k, xs := range sr.VersionInclusive {
			if _, ok := s.VersionTotal[k]; !ok {
				return fmt.Errorf("service %s: %s: version %q has no version total", s.Name, sr.Function, k)
			}
			if err := check(sr.Function+" version "+k, xs); err != nil {
				return err
			}
		}
		for _, m := range []struct {
			what string
			xs   map[Cell][]float64
		}{{"cell", sr.CellInclusive}, {"self cell", sr.CellSelf}} {
			for _, k := range sortedCells(m.xs) {
				if _, ok := s.CellTotal[k]; !ok {
					return fmt.Errorf("service %s: %s: %s %s/%s has no cell total", s.Name, sr.Function, m.what, k.Version, k.Group)
				}
				if err := check(sr.Function+" "+m.what+" "+k.Version+"/"+k.Group, m.xs[k]); err != nil {
					return err
				}
			}
		}
	}
	for i, st := range s.Stacks {
		if err := check(fmt.Sprintf("stack %d", i), st.Count); err != nil {
			return err
		}
	}
	return nil
}

// Builder accumulates stack samples into a Service, computing inclusive counts once
// per stack (so recursion does not count a function twice), self counts from the leaf
// frame, and caller→callee edges.
type Builder struct {
	svc    *Service
	series map[string]*Series
	edges  map[[2]string]float64
	stacks map[string]*Stack
	seen   map[string]bool
}

// NewBuilder starts a Service with n buckets of width step from start.
func NewBuilder(name string, cores float64, start time.Time, step time.Duration, n int) *Builder {
	return &Builder{
		svc: &Service{
			Name: name, Cores: cores, Start: start, Step: step,
			Total: make([]float64, n),
		},
		series: map[string]*Series{},
		edges:  map[[2]string]float64{},
		stacks: map[string]*Stack{},
		seen:   map[string]bool{},
	}
}

// Add records count samples of a stack (frames root first) in a bucket. version and
// group may be empty when unknown.
func (b *Builder) Add(bucket int, version, group string, frames []string, count float64) error {
	n := len(b.svc.Total)
	if bucket < 0 || bucket >= n {
		return fmt.Errorf("bucket %d out of range [0,%d)", bucket, n)
	}
	if count < 0 || math.IsNaN(count) || math.IsInf(count, 0) {
		return fmt.Errorf("bad sample count %v", count)
	}
	if len(frames) == 0 || count == 0 {
		return nil
	}
	s := b.svc
	s.Total[bucket] += count
	if group != "" {
		addAt(mapSlice(&s.GroupTotal, group, n), bucket, count)
	}
	if version != "" {
		addAt(mapSlice(&s.VersionTotal, version, n), bucket, count)
	}
	cell := Cell{version, group}
	if version != "" && group != "" {
		addAt(mapSlice(&s.CellTotal, cell, n), bucket, count)
	}
	clear(b.seen)
	prev := ""
	for i, fn := range frames {
		if i > 0 && prev != fn {
			b.edges[[2]string{prev, fn}] += count
		}
		prev = fn
		if b.seen[fn] {
			continue // inclusive counts a stack once per function
		}
		b.seen[fn] = true
		sr := b.series[fn]
		if sr == nil {
			sr = &Series{Function: fn, Inclusive: make([]float64, n), Self: make([]float64, n)}
			b.series[fn] = sr
		}
		sr.Inclusive[bucket] += count
		if group != "" {
			addAt(mapSlice(&sr.GroupInclusive, group, n), bucket, count)
		}
		if version != "" {
			addAt(mapSlice(&sr.VersionInclusive, version, n), bucket, count)
		}
		if version != "" && group != "" {
			addAt(mapSlice(&sr.CellInclusive, cell, n), bucket, count)
		}
	}
	leaf := b.series[frames[len(frames)-1]]
	leaf.Self[bucket] += count
	if version != "" && group != "" {
		addAt(mapSlice(&leaf.CellSelf, cell, n), bucket, count)
	}
	key := fmt.Sprintf("%q", frames)
	st := b.stacks[key]
	if st == nil {
		st = &Stack{Frames: slices.Clone(frames), Count: make([]float64, n)}
		b.stacks[key] = st
	}
	st.Count[bucket] += count
	return nil
}

// Service returns the accumulated Service with series, edges and stacks sorted by name
// so the result is deterministic.
func (b *Builder) Service() *Service {
	s := b.svc
	s.Series = s.Series[:0]
	for _, k := range sortedKeys(b.series) {
		sr := *b.series[k]
		// Series need entries for every group/version so that zero counts are counted.
		for g := range s.GroupTotal {
			mapSlice(&sr.GroupInclusive, g, len(s.Total))
		}
		for v := range s.VersionTotal {
			mapSlice(&sr.VersionInclusive, v, len(s.Total))
		}
		for c := range s.CellTotal {
			mapSlice(&sr.CellInclusive, c, len(s.Total))
			mapSlice(&sr.CellSelf, c, len(s.Total))
		}
		s.Series = append(s.Series, sr)
	}
	s.Edges = s.Edges[:0]
	for k, c := range b.edges {
		s.Edges = append(s.Edges, Edge{Caller: k[0], Callee: k[1], Count: c})
	}
	sort.Slice(s.Edges, func(i, j int) bool {
		if s.Edges[i].Caller != s.Edges[j].Caller {
			return s.Edges[i].Caller < s.Edges[j].Caller
		}
		return s.Edges[i].Callee < s.Edges[j].Callee
	})
	s.Stacks = s.Stacks[:0]
	for _, k := range sortedKeys(b.stacks) {
		s.Stacks = append(s.Stacks, *b.stacks[k])
	}
	return s
}

func mapSlice[K comparable](m *map[K][]float64, key K, n int) []float64 {
	if *m == nil {
		*m = map[K][]float64{}
	}
	xs, ok := (*m)[key]
	if !ok {
		xs = make([]float64, n)
		(*m)[key] = xs
	}
	return xs
}

func addAt(xs []float64, i int, v float64) { xs[i] += v }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedCells[V any](m map[Cell]V) []Cell {
	keys := make([]Cell, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Version != keys[j].Version {
			return keys[i].Version < keys[j].Version
		}
		return keys[i].Group < keys[j].Group
	})
	return keys
}
