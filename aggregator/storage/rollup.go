package storage

import (
	"cmp"
	"hash/fnv"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// HostGroup is the rollup's host group of a host: FNV-1a 32 of the name
// modulo groups. Stable across processes and versions (SCHEMA.md).
func HostGroup(host string, groups int) uint8 {
	h := fnv.New32a()
	h.Write([]byte(host))
	return uint8(h.Sum32() % uint32(groups))
}

// isCPU reports whether a row's profile type is CPU ("" means CPU).
func isCPU(profileType string) bool {
	return profileType == "" || profileType == samplebatch.ProfileCPU
}

// ComputeRollup aggregates a batch's CPU rows into rollup rows: per (service, version,
// host group, bucket, function) the samples where the function is the leaf
// (Self) and the samples whose stack contains it, counted once per stack
// (Inclusive). Function "" carries the total samples in both Self and
// Inclusive. Rows are sorted by service, version, host group, bucket, function.
func ComputeRollup(b *samplebatch.Batch, hostGroups int, bucket time.Duration) []model.RollupRow {
	a := aggregateRollup(b, hostGroups, bucket)
	out := make([]model.RollupRow, 0, a.rows)
	a.each(func(g rollupGroup, bucket int64, fn string, self, incl int64) {
		out = append(out, model.RollupRow{Service: g.service, Version: g.version, HostGroup: g.hg,
			Bucket: time.Unix(bucket, 0).UTC(), Function: fn, Self: self, Inclusive: incl})
	})
	sortRollup(out)
	return out
}

type rollupGroup struct {
	service, version string
	hg               uint8
}

// cellKey is one (group, bucket) of the rollup; a cell holds a row per function.
type cellKey struct {
	group  int32
	bucket int64
}

// rollupEntry is one output row of a cell: fn 0 is the totals row "".
type rollupEntry struct {
	fn         int32
	self, incl int64
}

type rollupCell struct {
	key     cellKey
	entries []rollupEntry
}

// rollupAgg aggregates with interned ids and, per cell, a dense
// function-indexed scratch array: the hot loop is array indexing, not hashing
// (a map keyed by (group, bucket, function) with ~500k keys per fleet batch
// spent most of the ingest CPU in cache misses).
type rollupAgg struct {
	hostGroups int
	step       int64 // bucket seconds
	groups     []rollupGroup
	funcs      []string
	groupIDs   map[rollupGroup]int32
	funcIDs    map[string]int32
	cellIDs    map[cellKey]int32
	cells      []rollupCell
	rows       int     // entries over all cells
	pos        []int32 // scratch: function id -> entry index + 1 in the current cell
}

func newRollupAgg(hostGroups int, bucket time.Duration) *rollupAgg {
	return &rollupAgg{
		hostGroups: hostGroups, step: max(int64(bucket/time.Second), 1),
		funcs: []string{""}, groupIDs: map[rollupGroup]int32{}, funcIDs: map[string]int32{},
		cellIDs: map[cellKey]int32{},
	}
}

func aggregateRollup(b *samplebatch.Batch, hostGroups int, bucket time.Duration) *rollupAgg {
	a := newRollupAgg(hostGroups, bucket)
	a.addBatch(b)
	return a
}

// len is the number of rollup rows.
func (a *rollupAgg) len() int { return a.rows }

// addBatch adds a batch's samples; an aggregate may span many batches.
func (a *rollupAgg) addBatch(b *samplebatch.Batch) {
	step := a.step
	type labelKey struct{ service, version, host string }
	// Rows of one agent repeat the same labels: cache the group per label triple.
	groupOf := map[labelKey]int32{}
	type stackKey struct {
		cell  int32
		stack uint64
	}
	// Rows differing only by host within a group, pod or pid collapse here,
	// so the per-frame work runs once per distinct stack and cell, not per row.
	perStack := map[stackKey]int64{}
	var last labelKey
	lastGID := int32(-1)
	for i := range b.Rows {
		r := &b.Rows[i]
		// The rollup is what the analyzer reads: CPU samples only.
		if r.Value == 0 || !isCPU(r.ProfileType) {
			continue
		}
		lk := labelKey{r.Labels.Service, r.Labels.Version, r.Labels.Host}
		gid := lastGID
		if gid < 0 || lk != last {
			var ok bool
			gid, ok = groupOf[lk]
			if !ok {
				g := rollupGroup{lk.service, lk.version, HostGroup(lk.host, a.hostGroups)}
				gid, ok = a.groupIDs[g]
				if !ok {
					gid = int32(len(a.groups))
					a.groups = append(a.groups, g)
					a.groupIDs[g] = gid
				}
				groupOf[lk] = gid
			}
			last, lastGID = lk, gid
		}
		ts := r.TS - ((r.TS%step)+step)%step
		ck := cellKey{gid, ts}
		cid, ok := a.cellIDs[ck]
		if !ok {
			cid = int32(len(a.cells))
			a.cells = append(a.cells, rollupCell{key: ck})
			a.cellIDs[ck] = cid
		}
		perStack[stackKey{cid, r.StackID}] += r.Value
	}
	// Distinct functions of each stack, leaf last; each once even when recursive.
	stackFuncs := map[uint64][]int32{}
	type sv struct {
		funcs []int32
		v     int64
	}
	byCell := map[int32][]sv{}
	for k, v := range perStack {
		fs, ok := stackFuncs[k.stack]
		if !ok {
			fs = a.stackFuncs(b.Stacks[k.stack])
			stackFuncs[k.stack] = fs
		}
		byCell[k.cell] = append(byCell[k.cell], sv{fs, v})
	}
	if n := len(a.funcs); len(a.pos) < n {
		a.pos = append(a.pos, make([]int32, n-len(a.pos))...)
	}
	pos := a.pos
	for cid, list := range byCell {
		c := &a.cells[cid]
		before := len(c.entries)
		for i, e := range c.entries {
			pos[e.fn] = int32(i) + 1
		}
		add := func(fn int32, self, incl int64) {
			p := pos[fn]
			if p == 0 {
				c.entries = append(c.entries, rollupEntry{fn: fn})
				p = int32(len(c.entries))
				pos[fn] = p
			}
			e := &c.entries[p-1]
			e.self += self
			e.incl += incl
		}
		for _, s := range list {
			add(0, s.v, s.v)
			if len(s.funcs) == 0 {
				continue
			}
			// The leaf gets self; stackFuncs put it last.
			n := len(s.funcs) - 1
			for _, f := range s.funcs[:n] {
				add(f, 0, s.v)
			}
			add(s.funcs[n], s.v, s.v)
		}
		for _, e := range c.entries {
			pos[e.fn] = 0
		}
		a.rows += len(c.entries) - before
	}
}

// stackFuncs interns a stack's functions and lists each once, the leaf last.
func (a *rollupAgg) stackFuncs(frames []string) []int32 {
	out := make([]int32, 0, len(frames))
	leaf := int32(-1)
	for i, f := range frames {
		id, ok := a.funcIDs[f]
		if !ok {
			id = int32(len(a.funcs))
			a.funcs = append(a.funcs, f)
			a.funcIDs[f] = id
		}
		if i == len(frames)-1 {
			leaf = id
			continue
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	if leaf >= 0 {
		// Recursion: the leaf may also appear higher up; list it once, last.
		if i := slices.Index(out, leaf); i >= 0 {
			out = slices.Delete(out, i, i+1)
		}
		out = append(out, leaf)
	}
	return out
}

func (a *rollupAgg) each(f func(g rollupGroup, bucket int64, fn string, self, incl int64)) {
	for _, c := range a.cells {
		g := a.groups[c.key.group]
		for _, e := range c.entries {
			f(g, c.key.bucket, a.funcs[e.fn], e.self, e.incl)
		}
	}
}

// commitMarkers is a record of one commit marker (commitMarkerPrefix) per
// bucket of the rollup, so every partition it covers holds one.
func (a *rollupAgg) commitMarkers(seq uint64) arrow.RecordBatch {
	rb := array.NewRecordBuilder(memory.DefaultAllocator, rollupSchema)
	defer rb.Release()
	name := commitMarkerPrefix + strconv.FormatUint(seq, 10)
	seen := map[int64]bool{}
	for _, c := range a.cells {
		if seen[c.key.bucket] {
			continue
		}
		seen[c.key.bucket] = true
		rb.Field(0).(*array.StringBuilder).Append("")
		rb.Field(1).(*array.StringBuilder).Append("")
		rb.Field(2).(*array.Uint8Builder).Append(0)
		rb.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(c.key.bucket))
		rb.Field(4).(*array.StringBuilder).Append(name)
		rb.Field(5).(*array.Uint64Builder).Append(commitMarkerCount)
		rb.Field(6).(*array.Uint64Builder).Append(commitMarkerCount)
	}
	return rb.NewRecordBatch()
}

// record is the rollup as an Arrow record for function_rollup.
func (a *rollupAgg) record() arrow.RecordBatch {
	rb := array.NewRecordBuilder(memory.DefaultAllocator, rollupSchema)
	defer rb.Release()
	rb.Reserve(a.rows)
	svc := rb.Field(0).(*array.StringBuilder)
	ver := rb.Field(1).(*array.StringBuilder)
	hg := rb.Field(2).(*array.Uint8Builder)
	bk := rb.Field(3).(*array.TimestampBuilder)
	fn := rb.Field(4).(*array.StringBuilder)
	self := rb.Field(5).(*array.Uint64Builder)
	incl := rb.Field(6).(*array.Uint64Builder)
	// Sized up front: growing the value buffers by doubling cost more than the appends.
	var svcBytes, verBytes, fnBytes int
	for _, c := range a.cells {
		g := &a.groups[c.key.group]
		svcBytes += len(g.service) * len(c.entries)
		verBytes += len(g.version) * len(c.entries)
		for _, e := range c.entries {
			fnBytes += len(a.funcs[e.fn])
		}
	}
	svc.ReserveData(svcBytes)
	ver.ReserveData(verBytes)
	fn.ReserveData(fnBytes)
	for _, r := range a.ordered() {
		c := &a.cells[r.cell]
		g := &a.groups[c.key.group]
		e := &c.entries[r.item]
		svc.Append(g.service)
		ver.Append(g.version)
		hg.UnsafeAppend(g.hg)
		bk.UnsafeAppend(arrow.Timestamp(c.key.bucket))
		fn.Append(a.funcs[e.fn])
		self.UnsafeAppend(uint64(e.self))
		incl.UnsafeAppend(uint64(e.incl))
	}
	return rb.NewRecordBatch()
}

func sortRollup(rows []model.RollupRow) {
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		if a.HostGroup != b.HostGroup {
			return a.HostGroup < b.HostGroup
		}
		if !a.Bucket.Equal(b.Bucket) {
			return a.Bucket.Before(b.Bucket)
		}
		return a.Function < b.Function
	})
}

// rollupRef points at one entry of one cell.
type rollupRef struct {
	key        uint64 // function rank, version rank, host group
	cell, item int32
}

// ordered lists the entries in function_rollup's sorting key order
// (service, bucket, function, version, host_group). The engine checks
// whether an inserted block is already sorted and then skips its sort, which
// on strings costs more than this integer sort in Go.
func (a *rollupAgg) ordered() []rollupRef {
	rank := func(n int, name func(int) string) []uint32 {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(x, y int) int { return strings.Compare(name(x), name(y)) })
		// Equal names share a rank (groups repeat services and versions).
		r := make([]uint32, n)
		for pos, i := range idx {
			if pos > 0 && name(i) == name(idx[pos-1]) {
				r[i] = r[idx[pos-1]]
			} else {
				r[i] = uint32(pos)
			}
		}
		return r
	}
	fnRank := rank(len(a.funcs), func(i int) string { return a.funcs[i] })
	svcRank := rank(len(a.groups), func(i int) string { return a.groups[i].service })
	verRank := rank(len(a.groups), func(i int) string { return a.groups[i].version })
	cells := make([]int32, len(a.cells))
	for i := range cells {
		cells[i] = int32(i)
	}
	slices.SortFunc(cells, func(x, y int32) int {
		cx, cy := a.cells[x].key, a.cells[y].key
		if c := cmp.Compare(svcRank[cx.group], svcRank[cy.group]); c != 0 {
			return c
		}
		return cmp.Compare(cx.bucket, cy.bucket)
	})
	out := make([]rollupRef, 0, a.rows)
	for lo := 0; lo < len(cells); {
		k := a.cells[cells[lo]].key
		hi := lo + 1
		for hi < len(cells) {
			k2 := a.cells[cells[hi]].key
			if k2.bucket != k.bucket || svcRank[k2.group] != svcRank[k.group] {
				break
			}
			hi++
		}
		start := len(out)
		for _, ci := range cells[lo:hi] {
			c := &a.cells[ci]
			g := c.key.group
			low := uint64(verRank[g])<<8 | uint64(a.groups[g].hg)
			for j, e := range c.entries {
				out = append(out, rollupRef{key: uint64(fnRank[e.fn])<<32 | low, cell: ci, item: int32(j)})
			}
		}
		run := out[start:]
		slices.SortFunc(run, func(x, y rollupRef) int { return cmp.Compare(x.key, y.key) })
		lo = hi
	}
	return out
}
