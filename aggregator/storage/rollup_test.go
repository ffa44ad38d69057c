package storage

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// naiveRollup is the rollup's definition written plainly (string keys, one
// row at a time): the reference the optimized aggregation must match.
func naiveRollup(batches []*samplebatch.Batch, hostGroups int, bucket time.Duration) map[string][2]int64 {
	step := int64(bucket / time.Second)
	out := map[string][2]int64{}
	add := func(k string, self, incl int64) {
		v := out[k]
		out[k] = [2]int64{v[0] + self, v[1] + incl}
	}
	for _, b := range batches {
		for _, r := range b.Rows {
			if r.Value == 0 {
				continue
			}
			ts := r.TS - ((r.TS%step)+step)%step
			key := fmt.Sprintf("%s|%s|%d|%d|", r.Labels.Service, r.Labels.Version, HostGroup(r.Labels.Host, hostGroups), ts)
			add(key, r.Value, r.Value)
			frames := b.Stacks[r.StackID]
			seen := map[string]bool{}
			for i, f := range frames {
				if !seen[f] {
					seen[f] = true
					add(key+f, 0, r.Value)
				}
				if i == len(frames)-1 {
					add(key+f, r.Value, 0)
				}
			}
		}
	}
	return out
}

func aggMap(a *rollupAgg) map[string][2]int64 {
	out := map[string][2]int64{}
	a.each(func(g rollupGroup, bucket int64, fn string, self, incl int64) {
		k := fmt.Sprintf("%s|%s|%d|%d|%s", g.service, g.version, g.hg, bucket, fn)
		if _, dup := out[k]; dup {
			panic("duplicate rollup key " + k)
		}
		out[k] = [2]int64{self, incl}
	})
	return out
}

// recursiveBatch has recursive stacks (a function twice, the leaf also
// higher up), a missing stack, zero values and negative timestamps.
func recursiveBatch(seed uint64) *samplebatch.Batch {
	r := rand.New(rand.NewPCG(seed, 3))
	names := []string{"main", "a", "b", "c", "rec", "leaf"}
	b := &samplebatch.Batch{Stacks: map[uint64][]string{}}
	var ids []uint64
	for range 40 {
		f := make([]string, 1+r.IntN(8))
		for j := range f {
			f[j] = names[r.IntN(len(names))]
		}
		id := samplebatch.StackID(f)
		b.Stacks[id] = f
		ids = append(ids, id)
	}
	ids = append(ids, 12345) // no frames stored: counts only in the totals row
	for range 500 {
		h := r.IntN(7)
		b.Rows = append(b.Rows, samplebatch.Row{
			TS: t0.Unix() - 200 + int64(r.IntN(400)), StackID: ids[r.IntN(len(ids))], Value: int64(r.IntN(4)),
			Labels: samplebatch.Labels{Service: fmt.Sprintf("s%d", h%2), Version: fmt.Sprintf("v%d", h%3), Host: fmt.Sprintf("h%d", h)},
		})
	}
	return b
}

func TestRollupMatchesDefinition(t *testing.T) {
	stacks := synthStacks(300, 7)
	cases := []struct {
		name    string
		batches []*samplebatch.Batch
		groups  int
		bucket  time.Duration
	}{
		{"recursive", []*samplebatch.Batch{recursiveBatch(1)}, 4, time.Minute},
		{"recursive-multi", []*samplebatch.Batch{recursiveBatch(1), recursiveBatch(2), recursiveBatch(3)}, 16, time.Minute},
		{"fleet", []*samplebatch.Batch{synthBatch(5000, stacks, 1, true, 20, 300)}, 16, time.Minute},
		{"fleet-multi", []*samplebatch.Batch{synthBatch(3000, stacks, 1, false, 20, 300), synthBatch(3000, stacks, 2, true, 5, 120)}, 3, 30 * time.Second},
		{"one-group", []*samplebatch.Batch{synthBatch(2000, stacks, 3, true, 1, 60)}, 1, time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newRollupAgg(tc.groups, tc.bucket)
			for _, b := range tc.batches {
				a.addBatch(b)
			}
			got, want := aggMap(a), naiveRollup(tc.batches, tc.groups, tc.bucket)
			if a.len() != len(got) {
				t.Fatalf("len() = %d, rows = %d", a.len(), len(got))
			}
			checkRecordOrder(t, a)
			if !reflect.DeepEqual(got, want) {
				for k, v := range want {
					if got[k] != v {
						t.Errorf("%s: got %v want %v", k, got[k], v)
					}
				}
				for k := range got {
					if _, ok := want[k]; !ok {
						t.Errorf("%s: unexpected row", k)
					}
				}
				t.FailNow()
			}
		})
	}
}

// checkRecordOrder checks that the record holds every row once, in
// function_rollup's sorting key order (the engine then skips its sort).
func checkRecordOrder(t *testing.T, a *rollupAgg) {
	t.Helper()
	rec := a.record()
	defer rec.Release()
	if int(rec.NumRows()) != a.len() {
		t.Fatalf("record has %d rows, want %d", rec.NumRows(), a.len())
	}
	svc := rec.Column(0).(*array.String)
	ver := rec.Column(1).(*array.String)
	hg := rec.Column(2).(*array.Uint8)
	bk := rec.Column(3).(*array.Timestamp)
	fn := rec.Column(4).(*array.String)
	key := func(i int) string {
		return fmt.Sprintf("%s\x00%020d\x00%s\x00%s\x00%03d", svc.Value(i), int64(bk.Value(i))+1<<40, fn.Value(i), ver.Value(i), hg.Value(i))
	}
	for i := 1; i < int(rec.NumRows()); i++ {
		if key(i-1) >= key(i) {
			t.Fatalf("record rows %d, %d out of order: %q >= %q", i-1, i, key(i-1), key(i))
		}
	}
}

// BenchmarkRollup is the Go-side rollup alone on the fleet-shaped batch of
// BenchmarkIngest (no engine needed).
func BenchmarkRollup(b *testing.B) {
	stacks := synthStacks(2000, 1)
	for _, zipf := range []bool{true, false} {
		bt := synthBatch(100_000, stacks, 1, zipf, 50, 600)
		b.Run(fmt.Sprintf("fleet-zipf=%v", zipf), func(b *testing.B) {
			rows := 0
			for b.Loop() {
				a := aggregateRollup(bt, 16, time.Minute)
				rec := a.record()
				rows = a.len()
				rec.Release()
			}
			b.ReportMetric(float64(len(bt.Rows)*b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(rows), "rollup-rows")
		})
	}
}
