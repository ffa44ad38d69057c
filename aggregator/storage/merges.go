package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// notEnoughSpace is ClickHouse's NOT_ENOUGH_SPACE: a space reservation for a
// write failed.
const notEnoughSpace = 243

// noSpaceTexts are (in lower case) what the engine's message says when the volume is full:
// a failed reservation or a write that met ENOSPC (whose code, e.g.
// CANNOT_WRITE_TO_FILE_DESCRIPTOR, also stands for other I/O errors). chDB
// carries only the text.
var noSpaceTexts = []string{"not_enough_space", "not enough space", "no space left on device", "errno: 28,"}

// NoSpace reports whether err is the engine failing a write because its
// data volume is full.
func NoSpace(err error) bool {
	if err == nil {
		return false
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) && ex.Code == notEnoughSpace {
		return true
	}
	msg := strings.ToLower(err.Error())
	for _, t := range noSpaceTexts {
		if strings.Contains(msg, t) {
			return true
		}
	}
	return false
}

// PauseMerges stops the engine's background merges on the store's tables
// (SYSTEM STOP MERGES, which also cancels the running ones) until
// ResumeMerges or a restart. While the data volume is full a merge has
// nowhere to write its result, and chDB 26.5 was seen to publish such a
// merge result with every file empty: the part is set aside as broken at
// the next start, and its source parts survive only until they are removed
// as outdated (old_parts_lifetime). Merges are an optimization, so pausing
// them while writes fail costs nothing but part count.
func (s *Store) PauseMerges(ctx context.Context) error { return s.systemMerges(ctx, "STOP") }

// ResumeMerges undoes PauseMerges.
func (s *Store) ResumeMerges(ctx context.Context) error { return s.systemMerges(ctx, "START") }

// systemMerges runs SYSTEM verb MERGES on every MergeTree table of the
// store's database (the stage tables included) on the node the store talks
// to; other databases of a shared server are left alone.
func (s *Store) systemMerges(ctx context.Context, verb string) error {
	if err := s.eachMergeTree(ctx, func(table string) string { return "SYSTEM " + verb + " MERGES " + table }); err != nil {
		return fmt.Errorf("%s merges: %w", strings.ToLower(verb), err)
	}
	return nil
}

// EmbeddedOldPartsLifetime is how long embedded tables keep the source parts
// of a merge on disk (MergeTree old_parts_lifetime; chDB 26.5 defaults to 0,
// the server to 8 minutes). A merge result found broken at the next start
// is then set aside and its sources served again (DetachedPart.Covered), if
// that start comes within this time.
const EmbeddedOldPartsLifetime = 8 * time.Minute

// keepMergeSources sets EmbeddedOldPartsLifetime on the store's tables.
func (s *Store) keepMergeSources(ctx context.Context) error {
	secs := int(EmbeddedOldPartsLifetime / time.Second)
	return s.eachMergeTree(ctx, func(table string) string {
		return fmt.Sprintf("ALTER TABLE %s MODIFY SETTING old_parts_lifetime = %d", table, secs)
	})
}

// eachMergeTree runs stmt(table) for every MergeTree table of the store's
// database.
func (s *Store) eachMergeTree(ctx context.Context, stmt func(table string) string) error {
	r, err := s.be.Query(ctx, fmt.Sprintf("SELECT name FROM system.tables WHERE database = %s AND engine LIKE '%%MergeTree' ORDER BY name", quote(s.lay.db)))
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	var errs []error
	for _, row := range r.Data {
		if err := s.be.Exec(ctx, stmt(s.table(asString(row[0])))); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", asString(row[0]), err))
		}
	}
	return errors.Join(errs...)
}

// FreeSpace is the free space of the fullest disk holding the store's data
// (every disk before the store has parts). Engines without system.disks
// (before 19.15) return ErrUnsupported.
func (s *Store) FreeSpace(ctx context.Context) (uint64, error) {
	r, err := s.be.Query(ctx, "SELECT count() FROM system.tables WHERE database = 'system' AND name = 'disks'")
	if err != nil {
		return 0, fmt.Errorf("free space: %w", err)
	}
	if len(r.Data) != 1 || asUint(r.Data[0][0]) == 0 {
		return 0, fmt.Errorf("free space: %w", errors.ErrUnsupported)
	}
	r, err = s.be.Query(ctx, fmt.Sprintf(`SELECT min(free_space), count() FROM system.disks
WHERE name IN (SELECT DISTINCT disk_name FROM system.parts WHERE database = %s AND active)
   OR (SELECT count() FROM system.parts WHERE database = %[1]s AND active) = 0`, quote(s.lay.db)))
	if err != nil {
		return 0, fmt.Errorf("free space: %w", err)
	}
	if len(r.Data) != 1 || asUint(r.Data[0][1]) == 0 {
		return 0, errors.New("free space: no disk found")
	}
	return asUint(r.Data[0][0]), nil
}
