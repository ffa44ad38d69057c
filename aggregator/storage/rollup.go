package storage

import (
	"hash/fnv"
	"sort"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// HostGroup is the rollup's host group of a host: FNV-1a 32 of the name
// modulo groups. Stable across processes and versions (SCHEMA.md).
func HostGroup(host string, groups int) uint8 {
	h := fnv.New32a()
	h.Write([]byte(host))
	return uint8(h.Sum32() % uint32(groups))
}

// ComputeRollup aggregates a batch into rollup rows: per (service, version,
// host group, bucket, function) the samples where the function is the leaf
// (Self) and the samples whose stack contains it, counted once per stack
// (Inclusive). Function "" carries the total samples in both Self and
// Inclusive. Rows are sorted by service, version, host group, bucket, function.
func ComputeRollup(b *samplebatch.Batch, hostGroups int, bucket time.Duration) []RollupRow {
	a := aggregateRollup(b, hostGroups, bucket)
	out := make([]RollupRow, 0, len(a.counts))
	a.each(func(g rollupGroup, bucket int64, fn string, self, incl int64) {
		out = append(out, RollupRow{Service: g.service, Version: g.version, HostGroup: g.hg,
			Bucket: time.Unix(bucket, 0).UTC(), Function: fn, Self: self, Inclusive: incl})
	})
	sortRollup(out)
	return out
}

type rollupGroup struct {
	service, version string
	hg               uint8
}

// rollupKey uses interned ids: the hot loop hashes 16 bytes, not strings.
type rollupKey struct {
	group  int32
	fn     int32 // 0 is the totals row ""
	bucket int64
}

type rollupAgg struct {
	hostGroups int
	step       int64 // bucket seconds
	groups     []rollupGroup
	funcs      []string
	groupIDs   map[rollupGroup]int32
	funcIDs    map[string]int32
	index      map[rollupKey]int32
	keys       []rollupKey
	counts     [][2]int64 // self, inclusive; parallel to keys
}

func newRollupAgg(hostGroups int, bucket time.Duration) *rollupAgg {
	return &rollupAgg{
		hostGroups: hostGroups, step: max(int64(bucket/time.Second), 1),
		funcs: []string{""}, groupIDs: map[rollupGroup]int32{}, funcIDs: map[string]int32{},
		index: map[rollupKey]int32{},
	}
}

func aggregateRollup(b *samplebatch.Batch, hostGroups int, bucket time.Duration) *rollupAgg {
	a := newRollupAgg(hostGroups, bucket)
	a.addBatch(b)
	return a
}

// addBatch adds a batch's samples; an aggregate may span many batches.
func (a *rollupAgg) addBatch(b *samplebatch.Batch) {
	step := a.step
	hostGroup := map[string]uint8{}
	type stackKey struct {
		group  int32
		bucket int64
		stack  uint64
	}
	// Rows differing only by host within a group, pod or pid collapse here,
	// so the per-frame work runs once per distinct stack and key, not per row.
	perStack := map[stackKey]int64{}
	for i := range b.Rows {
		r := &b.Rows[i]
		if r.Value == 0 {
			continue
		}
		hg, ok := hostGroup[r.Labels.Host]
		if !ok {
			hg = HostGroup(r.Labels.Host, a.hostGroups)
			hostGroup[r.Labels.Host] = hg
		}
		g := rollupGroup{r.Labels.Service, r.Labels.Version, hg}
		gid, ok := a.groupIDs[g]
		if !ok {
			gid = int32(len(a.groups))
			a.groups = append(a.groups, g)
			a.groupIDs[g] = gid
		}
		ts := r.TS - ((r.TS%step)+step)%step
		perStack[stackKey{gid, ts, r.StackID}] += r.Value
	}
	type stackFuncs struct {
		leaf   int32
		unique []int32 // each function once, even when recursive
	}
	stacks := map[uint64]stackFuncs{}
	seen := map[int32]struct{}{}
	for k, v := range perStack {
		sf, ok := stacks[k.stack]
		if !ok {
			frames := b.Stacks[k.stack]
			clear(seen)
			for _, f := range frames {
				id, ok := a.funcIDs[f]
				if !ok {
					id = int32(len(a.funcs))
					a.funcs = append(a.funcs, f)
					a.funcIDs[f] = id
				}
				if _, dup := seen[id]; !dup {
					seen[id] = struct{}{}
					sf.unique = append(sf.unique, id)
				}
				sf.leaf = id
			}
			stacks[k.stack] = sf
		}
		a.add(rollupKey{k.group, 0, k.bucket}, v, v)
		for _, f := range sf.unique {
			self := int64(0)
			if f == sf.leaf {
				self = v
			}
			a.add(rollupKey{k.group, f, k.bucket}, self, v)
		}
	}
}

func (a *rollupAgg) add(k rollupKey, self, incl int64) {
	i, ok := a.index[k]
	if !ok {
		i = int32(len(a.keys))
		a.index[k] = i
		a.keys = append(a.keys, k)
		a.counts = append(a.counts, [2]int64{})
	}
	a.counts[i][0] += self
	a.counts[i][1] += incl
}

func (a *rollupAgg) each(f func(g rollupGroup, bucket int64, fn string, self, incl int64)) {
	for i, k := range a.keys {
		f(a.groups[k.group], k.bucket, a.funcs[k.fn], a.counts[i][0], a.counts[i][1])
	}
}

// record is the rollup as an Arrow record for function_rollup.
func (a *rollupAgg) record() arrow.RecordBatch {
	rb := array.NewRecordBuilder(memory.DefaultAllocator, rollupSchema)
	defer rb.Release()
	rb.Reserve(len(a.counts))
	svc := rb.Field(0).(*array.StringBuilder)
	ver := rb.Field(1).(*array.StringBuilder)
	hg := rb.Field(2).(*array.Uint8Builder)
	bk := rb.Field(3).(*array.TimestampBuilder)
	fn := rb.Field(4).(*array.StringBuilder)
	self := rb.Field(5).(*array.Uint64Builder)
	incl := rb.Field(6).(*array.Uint64Builder)
	for i, k := range a.keys {
		c := a.counts[i]
		g := &a.groups[k.group]
		svc.Append(g.service)
		ver.Append(g.version)
		hg.UnsafeAppend(g.hg)
		bk.UnsafeAppend(arrow.Timestamp(k.bucket))
		fn.Append(a.funcs[k.fn])
		self.UnsafeAppend(uint64(c[0]))
		incl.UnsafeAppend(uint64(c[1]))
	}
	return rb.NewRecordBatch()
}

func sortRollup(rows []RollupRow) {
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
