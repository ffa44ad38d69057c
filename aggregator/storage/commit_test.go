package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

// faultBackend fails the call numbered failAt (1-based, counting every
// Exec, Query and Insert) and every call after it until disarmed: the
// engine going away between two table writes.
type faultBackend struct {
	Backend
	mu     sync.Mutex
	calls  int
	failAt int // 0 = no fault
	hit    bool
}

var errInjected = errors.New("injected storage fault")

func (f *faultBackend) fault(what string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failAt > 0 && f.calls >= f.failAt {
		f.hit = true
		return fmt.Errorf("%s: %w", what, errInjected)
	}
	return nil
}

func (f *faultBackend) arm(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls, f.failAt, f.hit = 0, n, false
}

func (f *faultBackend) Exec(ctx context.Context, sql string) error {
	if err := f.fault("exec"); err != nil {
		return err
	}
	return f.Backend.Exec(ctx, sql)
}

func (f *faultBackend) Query(ctx context.Context, sql string) (*Rows, error) {
	if err := f.fault("query"); err != nil {
		return nil, err
	}
	return f.Backend.Query(ctx, sql)
}

func (f *faultBackend) Insert(ctx context.Context, table string, rec arrow.RecordBatch) error {
	if err := f.fault("insert " + table); err != nil {
		return err
	}
	return f.Backend.Insert(ctx, table, rec)
}

// storedTotals are the samples, the rollup's totals row and the rows of one
// batch id as readers see them.
func storedTotals(t *testing.T, s *Store, id string) (samples, rollup, ids uint64) {
	t.Helper()
	ctx := context.Background()
	one := func(sql string) uint64 {
		r, err := s.be.Query(ctx, sql)
		if err != nil || len(r.Data) != 1 {
			t.Fatalf("%s: %v", sql, err)
		}
		return asUint(r.Data[0][0])
	}
	samples = one("SELECT toUInt64(sum(value)) FROM " + s.table("samples"))
	rollup = one("SELECT toUInt64(sum(inclusive)) FROM " + s.table("function_rollup") + " WHERE function = ''")
	ids = one("SELECT count() FROM " + s.table("ingested_batches") + " WHERE batch_id = " + quote(id))
	return samples, rollup, ids
}

// TestStagedCommitFaults fails the engine at every call of a commit in turn,
// then retries the batch, in the same process and after reopening the store
// (a restart): every batch is stored exactly once in samples, rollup and ids.
func TestStagedCommitFaults(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			eachBackend(t, Config{}, func(t *testing.T, s *Store) {
				ctx := context.Background()
				const perBatch = 20 // knownBatch's samples
				cur := s
				var want uint64
				for k := 1; ; k++ {
					fb := &faultBackend{Backend: cur.be}
					cur.be = fb
					fb.arm(k)
					id := fmt.Sprintf("fault-%d", k)
					_, dup, err := cur.Ingest(ctx, id, knownBatch())
					fb.arm(0)
					if err == nil {
						if fb.hit || dup {
							t.Fatalf("k=%d: ingest ok but fault hit=%v dup=%v", k, fb.hit, dup)
						}
						want += perBatch
						if got, _, _ := storedTotals(t, cur, id); got != want {
							t.Fatalf("k=%d (no fault left): samples %d, want %d", k, got, want)
						}
						return // every call of a commit has failed once
					}
					if !errors.Is(err, errInjected) {
						t.Fatalf("k=%d: %v", k, err)
					}
					// A background merge may run before recovery does; run one
					// now so every k meets it (it drops rows that sum to zero).
					if err := fb.Backend.Exec(ctx, "OPTIMIZE TABLE "+cur.table("function_rollup")+" FINAL"); err != nil {
						t.Fatalf("k=%d: optimize: %v", k, err)
					}
					if restart {
						cur.be = fb.Backend
						next, err := Open(ctx, cur.cfg)
						if err != nil {
							t.Fatalf("k=%d: reopen: %v", k, err)
						}
						t.Cleanup(func() { next.Close() })
						cur = next
					} else {
						cur.be = fb.Backend
					}
					n, dup, err := cur.Ingest(ctx, id, knownBatch())
					if err != nil {
						t.Fatalf("k=%d: retry: %v", k, err)
					}
					if !dup && n != 4 {
						t.Fatalf("k=%d: retry stored %d rows", k, n)
					}
					want += perBatch
					samples, rollup, ids := storedTotals(t, cur, id)
					if samples != want || rollup != want || ids != 1 {
						t.Fatalf("k=%d: samples %d rollup %d ids %d, want %d %d 1 (dup=%v)", k, samples, rollup, ids, want, want, dup)
					}
					if st := cur.Recovery(); st.PartialPartitions != 0 {
						t.Fatalf("k=%d: recovery %+v", k, st)
					}
				}
			})
		})
	}
}

// schemaVersionStatements record version as db's only applied schema version.
func schemaVersionStatements(db string, version int) []string {
	return []string{
		"DROP TABLE " + db + ".schema_migrations",
		"CREATE TABLE " + db + ".schema_migrations (version UInt32, applied DateTime) ENGINE = TinyLog",
		"INSERT INTO " + db + ".schema_migrations (version, applied) SELECT " + strconv.Itoa(version) + ", now()",
	}
}

// TestUpgradeV1 opens a store created with the v1 DDL: commit_seq is added,
// the rollup keeps its rows and sums only the counters.
func TestUpgradeV1(t *testing.T) {
	eachBackend(t, Config{}, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ingest(t, s, "before", knownBatch())
		// Turn the database back into v1: old rollup engine, no commit_seq.
		db := s.lay.db
		for _, stmt := range append([]string{
			"CREATE TABLE " + db + ".r1 (service String, version String, host_group UInt8, bucket DateTime, function String, self UInt64, inclusive UInt64) ENGINE = SummingMergeTree PARTITION BY toYYYYMMDD(bucket) ORDER BY (service, bucket, function, version, host_group)",
			"INSERT INTO " + db + ".r1 SELECT service, version, host_group, bucket, function, self, inclusive FROM " + db + ".function_rollup",
			"DROP TABLE " + db + ".function_rollup",
			"RENAME TABLE " + db + ".r1 TO " + db + ".function_rollup",
			"ALTER TABLE " + db + ".samples DROP COLUMN commit_seq",
			"ALTER TABLE " + db + ".samples DROP COLUMN profile_type",
			"ALTER TABLE " + db + ".ingested_batches DROP COLUMN commit_seq",
			"DROP TABLE " + db + ".samples_stage_default",
			"DROP TABLE " + db + ".function_rollup_stage_default",
			"DROP TABLE " + db + ".ingested_batches_stage_default",
		}, schemaVersionStatements(db, 1)...) {
			if err := s.be.Exec(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		s2, err := Open(ctx, s.cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		ingest(t, s2, "after", knownBatch())
		samples, rollup, _ := storedTotals(t, s2, "after")
		if samples != 40 || rollup != 40 {
			t.Fatalf("after upgrade: samples %d rollup %d, want 40 40", samples, rollup)
		}
		r, err := s2.be.Query(ctx, "SELECT engine_full FROM system.tables WHERE database = "+quote(db)+" AND name = 'function_rollup'")
		if err != nil || len(r.Data) != 1 || !strings.Contains(asString(r.Data[0][0]), "SummingMergeTree((self, inclusive))") {
			t.Fatalf("rollup engine after upgrade: %v %v", r, err)
		}
	})
}

// TestDetachedParts lists a partition an operator detached; an engine without
// system.detached_parts says so with ErrUnsupported.
func TestDetachedParts(t *testing.T) {
	eachBackend(t, Config{}, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ingest(t, s, "d1", knownBatch())
		parts, err := s.DetachedParts(ctx)
		if errors.Is(err, errors.ErrUnsupported) {
			if s.version.AtLeast(19, 1) {
				t.Fatalf("ClickHouse %v: detached parts unsupported", s.version)
			}
			return
		}
		if err != nil || len(parts) != 0 {
			t.Fatalf("fresh store: %v %v", parts, err)
		}
		r, err := s.be.Query(ctx, "SELECT DISTINCT partition_id FROM system.parts WHERE database = "+quote(s.lay.db)+" AND table = 'samples' AND active")
		if err != nil || len(r.Data) == 0 {
			t.Fatalf("samples partitions: %v %v", r, err)
		}
		if err := s.be.Exec(ctx, "ALTER TABLE "+s.table("samples")+" DETACH PARTITION ID "+quote(asString(r.Data[0][0]))); err != nil {
			t.Fatal(err)
		}
		parts, err = s.DetachedParts(ctx)
		if err != nil || len(parts) == 0 || parts[0].Table != "samples" {
			t.Fatalf("after DETACH PARTITION: %+v %v", parts, err)
		}
	})
}
