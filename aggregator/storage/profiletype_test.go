package storage

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

const heapType = "alloc_space/bytes"

var stackAlloc = []string{"main", "handle", "alloc"}

// heapBatch is an imported heap profile of service "api": 3 MiB allocated under
// alloc, 1 MiB under parse (stackA, shared with knownBatch's CPU samples).
func heapBatch() *samplebatch.Batch {
	b := &samplebatch.Batch{Stacks: map[uint64][]string{}}
	for _, s := range []struct {
		frames []string
		v      int64
	}{{stackAlloc, 3 << 20}, {stackA, 1 << 20}} {
		id := samplebatch.StackID(s.frames)
		b.Stacks[id] = s.frames
		b.Rows = append(b.Rows, samplebatch.Row{TS: t0.Unix(), StackID: id, Value: s.v, PeriodNS: 1, ProfileType: heapType,
			Labels: samplebatch.Labels{Service: "api", Version: "v1", Host: "h1"}})
	}
	return b
}

// TestProfileTypes stores CPU and heap rows of one service: each profile type's
// queries see only its rows, and the rollup and versions (the analyzer's
// inputs) stay CPU only.
func TestProfileTypes(t *testing.T) {
	eachBackend(t, Config{}, func(t *testing.T, s *Store) {
		ctx := context.Background()
		// Grouped in one commit: rows of both types in one insert.
		if _, err := s.IngestBatches(ctx, []IngestItem{{ID: "cpu", Batch: knownBatch()}, {ID: "heap", Batch: heapBatch()}}); err != nil {
			t.Fatal(err)
		}
		ingest(t, s, "heap-alone", heapBatch())
		heap := all()
		heap.ProfileType = heapType
		for _, tc := range []struct {
			name  string
			sel   model.Selection
			total int64
			first model.FunctionStat
		}{
			{"default is cpu", all(), 20, model.FunctionStat{Function: "parse", Self: 10, Inclusive: 10, SelfPct: 50, InclusivePct: 50}},
			{"cpu", model.Selection{Service: "api", From: t0, To: t0.Add(time.Hour), ProfileType: samplebatch.ProfileCPU}, 20,
				model.FunctionStat{Function: "parse", Self: 10, Inclusive: 10, SelfPct: 50, InclusivePct: 50}},
			{"heap", heap, 8 << 20, model.FunctionStat{Function: "alloc", Self: 6 << 20, Inclusive: 6 << 20, SelfPct: 75, InclusivePct: 75}},
			{"type with no rows", model.Selection{Service: "api", From: t0, To: t0.Add(time.Hour), ProfileType: "goroutine/count"}, 0, model.FunctionStat{}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				top, err := s.Top(ctx, tc.sel, 1)
				if err != nil {
					t.Fatal(err)
				}
				var first model.FunctionStat
				if len(top.Functions) > 0 {
					first = top.Functions[0]
				}
				if top.Total != tc.total || first != tc.first {
					t.Fatalf("top = total %d, first %+v; want %d, %+v", top.Total, first, tc.total, tc.first)
				}
			})
		}
		keys, err := s.LabelValues(ctx, heap, "host")
		if err != nil || !reflect.DeepEqual(keys, []string{"h1"}) {
			t.Fatalf("heap hosts = %v, %v", keys, err)
		}
		types, err := s.ProfileTypes(ctx, heap)
		if want := map[string][]string{"api": {heapType, samplebatch.ProfileCPU}}; err != nil || !reflect.DeepEqual(types, want) {
			t.Fatalf("profile types = %v, %v; want %v", types, err, want)
		}
		rows, err := s.Rollup(ctx, model.RollupQuery{Service: "api", From: t0, To: t0.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		var rollupTotal int64
		for _, r := range rows {
			if r.Function == "" {
				rollupTotal += r.Inclusive
			}
			if r.Function == "alloc" {
				t.Fatalf("rollup has heap function %+v", r)
			}
		}
		vs, err := s.Versions(ctx, "api", t0, t0.Add(time.Hour))
		if err != nil || rollupTotal != 20 || len(vs) != 2 || vs[0].Samples != 15 {
			t.Fatalf("rollup total %d, versions %+v (%v): want the CPU rows only (20; v1 15)", rollupTotal, vs, err)
		}
		bad := all()
		bad.ProfileType = "heap'; DROP TABLE samples"
		if _, err := s.Profile(ctx, bad); err == nil || !strings.Contains(err.Error(), "profile_type") {
			t.Fatalf("bad profile type: %v, want an error naming profile_type", err)
		}
	})
}

// TestUpgradeV2 opens a v2 store whose stage holds a committed group (a crash
// before the upgrade): samples and the stage gain profile_type, old rows are
// CPU, and the group is rolled forward into the upgraded table.
func TestUpgradeV2(t *testing.T) {
	eachBackend(t, Config{}, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ingest(t, s, "before", knownBatch())
		db := s.lay.db
		const seq = 42
		row := "toDateTime(" + strconv.FormatInt(t0.Unix(), 10) + "), 'api', 'v1', 'h1', '', '', '', 'api', 1, [], [], " +
			strconv.FormatUint(samplebatch.StackID(stackA), 10) + ", 7, 10101010, " + strconv.Itoa(seq)
		for _, stmt := range append([]string{
			"ALTER TABLE " + db + ".samples DROP COLUMN profile_type",
			"ALTER TABLE " + db + ".samples_stage_default DROP COLUMN profile_type",
			// A group committed (ids public) but not yet published: 7 samples.
			"INSERT INTO " + db + ".samples_stage_default SELECT " + row,
			"INSERT INTO " + db + ".ingested_batches_stage_default SELECT 'crashed', now(), 1, " + strconv.Itoa(seq),
			"INSERT INTO " + db + ".ingested_batches SELECT 'crashed', now(), 1, " + strconv.Itoa(seq),
		}, schemaVersionStatements(db, 2)...) {
			if err := s.be.Exec(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		s2, err := Open(ctx, s.cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		if rec := s2.Recovery(); rec.RolledForward != 1 {
			t.Fatalf("recovery = %+v, want the staged group rolled forward", rec)
		}
		ingest(t, s2, "heap", heapBatch())
		cpu, err := s2.Profile(ctx, all())
		if err != nil {
			t.Fatal(err)
		}
		heap := all()
		heap.ProfileType = heapType
		hp, err := s2.Profile(ctx, heap)
		if err != nil {
			t.Fatal(err)
		}
		if cpu.Total != 27 || hp.Total != 4<<20 {
			t.Fatalf("after upgrade: cpu %d, heap %d; want 27 (20 + 7 rolled forward) and %d", cpu.Total, hp.Total, 4<<20)
		}
	})
}
