package storage

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

func TestNoSpace(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"chdb reservation", errors.New("insert fleetprof.stacks: Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space. (NOT_ENOUGH_SPACE)"), true},
		{"write met ENOSPC", errors.New("Code: 75. DB::Exception: Cannot write to file /d/tmp_insert_1/data.bin, errno: 28, strerror: No space left on device. (CANNOT_WRITE_TO_FILE_DESCRIPTOR)"), true},
		{"server exception", fmt.Errorf("commit: %w", &clickhouse.Exception{Code: notEnoughSpace, Message: "Cannot reserve 1.00 MiB"}), true},
		{"other server exception", &clickhouse.Exception{Code: 60, Message: "Table fleetprof.x doesn't exist"}, false},
		{"other io error", errors.New("Code: 75. DB::Exception: Cannot write to file x, errno: 5, strerror: Input/output error"), false},
		{"timeout", context.DeadlineExceeded, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NoSpace(tc.err); got != tc.want {
				t.Fatalf("NoSpace(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// TestPauseMerges: while paused, a merge of the store's tables is refused
// (OPTIMIZE, which the background merges share the blocker with); resumed, it
// runs again. FreeSpace reports the data disk where the engine can.
func TestPauseMerges(t *testing.T) {
	eachBackend(t, Config{}, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ingest(t, s, "a", knownBatch())
		b := knownBatch()
		b.Rows[0].Labels.Host = "h2"
		ingest(t, s, "b", b)
		optimize := func() error { return s.be.Exec(ctx, "OPTIMIZE TABLE "+s.table("samples")+" FINAL") }
		if err := s.PauseMerges(ctx); err != nil {
			t.Fatal(err)
		}
		if err := optimize(); err == nil {
			t.Fatal("OPTIMIZE ran while merges were paused")
		}
		if err := s.ResumeMerges(ctx); err != nil {
			t.Fatal(err)
		}
		if err := optimize(); err != nil {
			t.Fatalf("OPTIMIZE after resuming merges: %v", err)
		}
		if _, ok := s.be.(*embedded); ok {
			r, err := s.be.Query(ctx, fmt.Sprintf("SELECT name FROM system.tables WHERE database = %s AND engine LIKE '%%MergeTree' AND create_table_query NOT LIKE '%%old_parts_lifetime = %d%%'",
				quote(s.lay.db), int(EmbeddedOldPartsLifetime/time.Second)))
			if err != nil || len(r.Data) > 0 {
				t.Fatalf("embedded tables without old_parts_lifetime %v: %v %v", EmbeddedOldPartsLifetime, r, err)
			}
		}
		free, err := s.FreeSpace(ctx)
		switch {
		case errors.Is(err, errors.ErrUnsupported) && !s.version.AtLeast(19, 15):
		case err != nil:
			t.Fatal(err)
		case free == 0:
			t.Fatal("free space 0 on the test's data disk")
		}
	})
}

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ranges []blockRange
		lo, hi int64
		want   bool
	}{
		{"sources of a merge", []blockRange{{9, 9}, {7, 7}, {8, 8}, {10, 12}}, 7, 12, true},
		{"one covering part", []blockRange{{1, 20}}, 7, 12, true},
		{"overlapping", []blockRange{{7, 9}, {8, 12}}, 7, 12, true},
		{"a source missing", []blockRange{{7, 8}, {10, 12}}, 7, 12, false},
		{"the first source missing", []blockRange{{8, 12}}, 7, 12, false},
		{"the last source missing", []blockRange{{7, 11}}, 7, 12, false},
		{"nothing active", nil, 7, 12, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := covers(tc.ranges, tc.lo, tc.hi); got != tc.want {
				t.Fatalf("covers(%v, %d, %d) = %v, want %v", tc.ranges, tc.lo, tc.hi, got, tc.want)
			}
		})
	}
}
