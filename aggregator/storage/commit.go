package storage

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// Staged commit (SCHEMA.md, "Exactly-once ingest"). ClickHouse 18.16 has no
// transactions and no insert deduplication for non-replicated tables, so a
// batch group is written to per-writer stage tables first, which readers never
// see, then moved into the public tables with ALTER TABLE ... ATTACH PARTITION
// ... FROM, which publishes all parts of a partition at once. The batch ids go
// first: once they are published the group is committed and is rolled forward
// (by this process, or by the next Open after a crash); before that it is
// discarded. Every row of a group carries its commit_seq, so rolling forward
// skips the partitions already published.

// stagedOrder is the order partitions are published in: the batch ids are the
// commit point.
var stagedOrder = []string{"ingested_batches", "samples", "function_rollup"}

// partitionExpr is each staged table's PARTITION BY expression ("" = none).
var partitionExpr = map[string]string{
	"ingested_batches": "",
	"samples":          "toYYYYMMDD(ts)",
	"function_rollup":  "toYYYYMMDD(bucket)",
}

// RecoveryStats counts what commit recovery did since Open.
type RecoveryStats struct {
	// RolledForward is the number of committed batch groups found in the
	// stage and published.
	RolledForward int
	// Discarded is the number of uncommitted stage contents dropped (their
	// batches were never acknowledged and are resent by the agents).
	Discarded int
	// PartialPartitions counts partitions found partly published (a crash
	// inside one ATTACH); their rows may be short or doubled. Expected 0.
	PartialPartitions int
}

// committer serializes staged commits of one store: the stage tables hold one
// group at a time.
type committer struct {
	mu      sync.Mutex
	dirty   bool // the stage may hold a group: recover before the next commit
	lastSeq uint64
	stats   RecoveryStats
}

// stageTable is the qualified name of table's stage for this writer.
func (s *Store) stageTable(t string) string { return s.table(s.stageName(t)) }

func (s *Store) stageName(t string) string { return t + "_stage_" + s.cfg.Writer }

// createStages makes this writer's stage tables, copies of the public ones. A
// stage made before a schema upgrade gains the columns its table gained (it may
// hold a committed group to roll forward, so it is not recreated).
func (s *Store) createStages(ctx context.Context) error {
	for _, t := range stagedOrder {
		if err := s.be.Exec(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s AS %s", s.stageTable(t), s.table(t))); err != nil {
			return fmt.Errorf("create stage for %s: %w", t, err)
		}
	}
	if err := addColumn(ctx, s.be, s.lay, s.stageName("samples"), profileTypeColumn, s.feat); err != nil {
		return fmt.Errorf("upgrade stage: %w", err)
	}
	return nil
}

func (c *committer) nextSeq(now time.Time) uint64 {
	seq := uint64(now.UnixNano())
	if seq <= c.lastSeq {
		seq = c.lastSeq + 1
	}
	c.lastSeq = seq
	return seq
}

// commitStaged writes one group of new batches exactly once.
func (s *Store) commitStaged(ctx context.Context, b *samplebatch.Batch, ids []string, rows []uint64) error {
	c := &s.commit
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dirty {
		if err := s.recoverStageLocked(ctx); err != nil {
			return fmt.Errorf("ingest: recover stage: %w", err)
		}
	}
	seq := c.nextSeq(time.Now())
	c.dirty = true // until the stage is empty again
	// Stacks go straight to the public table: rows are keyed by content, so a
	// group that never commits leaves only unreferenced, harmless stacks.
	if err := s.writeStacks(ctx, b); err != nil {
		return err
	}
	var wg sync.WaitGroup
	var dataErr error
	wg.Go(func() {
		rec := withCommitSeq(samplesRecord(b), seq)
		defer rec.Release()
		if err := s.be.Insert(ctx, s.stageTable("samples"), rec); err != nil {
			dataErr = fmt.Errorf("ingest: stage samples: %w", err)
		}
	})
	rollErr := func() error {
		a := aggregateRollup(b, s.cfg.HostGroups, s.cfg.RollupBucket)
		if a.len() == 0 {
			return nil
		}
		rec := withCommitSeq(a.record(), seq)
		defer rec.Release()
		if err := s.be.Insert(ctx, s.stageTable("function_rollup"), rec); err != nil {
			return fmt.Errorf("ingest: stage rollup: %w", err)
		}
		marks := withCommitSeq(a.commitMarkers(seq), seq)
		defer marks.Release()
		if err := s.be.Insert(ctx, s.stageTable("function_rollup"), marks); err != nil {
			return fmt.Errorf("ingest: stage rollup commit markers: %w", err)
		}
		return nil
	}()
	wg.Wait()
	if dataErr != nil {
		return dataErr
	}
	if rollErr != nil {
		return rollErr
	}
	rec := withCommitSeq(batchIDRecord(ids, time.Now(), rows), seq)
	err := s.be.Insert(ctx, s.stageTable("ingested_batches"), rec)
	rec.Release()
	if err != nil {
		return fmt.Errorf("ingest: stage batch ids: %w", err)
	}
	if err := s.publish(ctx, seq, false); err != nil {
		return err
	}
	if err := s.clearStage(ctx); err != nil {
		return err
	}
	c.dirty = false
	return nil
}

// publish attaches the stage's partitions to the public tables in
// stagedOrder. With check, partitions already holding rows of seq are skipped
// (rolling forward after a failure part way).
func (s *Store) publish(ctx context.Context, seq uint64, check bool) error {
	for _, t := range stagedOrder {
		parts, err := s.stagePartitions(ctx, t)
		if err != nil {
			return err
		}
		for _, p := range parts {
			if check {
				cond := s.markerCond(t, seq)
				want, err := s.stagedRows(ctx, t, cond, p)
				if err == nil && cond != "" && want == 0 {
					cond = "" // staged before commit markers existed: count its rows
					want, err = s.stagedRows(ctx, t, cond, p)
				}
				if err != nil {
					return err
				}
				have, err := s.publishedRows(ctx, t, seq, cond, p)
				if err != nil {
					return err
				}
				if have > 0 {
					if have != want {
						s.commit.stats.PartialPartitions++
					}
					continue
				}
			}
			if err := s.be.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ATTACH PARTITION ID %s FROM %s", s.table(t), quote(p), s.stageTable(t))); err != nil {
				return fmt.Errorf("ingest: publish %s partition %s: %w", t, p, err)
			}
		}
	}
	return nil
}

// stagePartitions lists the partition ids of t's stage that hold parts.
func (s *Store) stagePartitions(ctx context.Context, t string) ([]string, error) {
	r, err := s.be.Query(ctx, fmt.Sprintf("SELECT DISTINCT partition_id FROM system.parts WHERE database = %s AND table = %s AND active ORDER BY partition_id",
		quote(s.lay.db), quote(s.stageName(t))))
	if err != nil {
		return nil, fmt.Errorf("ingest: list stage partitions of %s: %w", t, err)
	}
	return column0Strings(r), nil
}

// markerCond restricts a count of the rollup to seq's commit markers ("" for
// other tables).
func (s *Store) markerCond(t string, seq uint64) string {
	if t != "function_rollup" {
		return ""
	}
	return " AND function = " + quote(commitMarkerPrefix+strconv.FormatUint(seq, 10))
}

// partitionCond selects one partition of t. The partitions are toYYYYMMDD
// numbers; anything else (a schema this code does not know) selects nothing.
func (s *Store) partitionCond(t, partition string) string {
	e := partitionExpr[t]
	if e == "" {
		return ""
	}
	if _, err := strconv.ParseUint(partition, 10, 32); err != nil {
		return " AND 0"
	}
	return " AND " + e + " = " + partition
}

// commitMarkerPrefix starts the function name of a rollup commit marker: a
// row with service "", counts commitMarkerCount and function
// commitMarkerPrefix+seq in every bucket a staged commit's rollup covers.
// SummingMergeTree merges rows of one key and keeps one commit_seq, so the
// rollup's own rows of a commit may not count as published after a merge; a
// marker's key is its commit's alone, so it never merges with other rows, and
// it is published by the same ATTACH as the rows of its partition. Readers
// never see markers: every rollup read selects a service, or the totals rows
// (function "").
const commitMarkerPrefix = "[fleetprof commit] "

// commitMarkerCount is a marker's self and inclusive: not zero, because a
// SummingMergeTree merge deletes rows whose summed columns are all zero, and
// a marker a merge deleted would let recovery publish its commit again.
const commitMarkerCount = 1

// publishedRows counts the rows of commit seq in partition of public table t
// that match cond (for the rollup, markerCond: its commit markers).
func (s *Store) publishedRows(ctx context.Context, t string, seq uint64, cond, partition string) (uint64, error) {
	r, err := s.be.Query(ctx, fmt.Sprintf("SELECT count() FROM %s WHERE commit_seq = %d%s%s", s.table(t), seq, cond, s.partitionCond(t, partition)))
	if err != nil {
		return 0, fmt.Errorf("ingest: check published %s: %w", t, err)
	}
	if len(r.Data) != 1 {
		return 0, fmt.Errorf("ingest: check published %s: unexpected result shape", t)
	}
	return asUint(r.Data[0][0]), nil
}

// stagedRows counts the rows of partition in t's stage that match cond.
func (s *Store) stagedRows(ctx context.Context, t, cond, partition string) (uint64, error) {
	r, err := s.be.Query(ctx, fmt.Sprintf("SELECT count() FROM %s WHERE 1%s%s", s.stageTable(t), cond, s.partitionCond(t, partition)))
	if err != nil {
		return 0, fmt.Errorf("ingest: count staged %s: %w", t, err)
	}
	if len(r.Data) != 1 {
		return 0, fmt.Errorf("ingest: count staged %s: unexpected result shape", t)
	}
	return asUint(r.Data[0][0]), nil
}

// clearStage empties the stage tables.
func (s *Store) clearStage(ctx context.Context) error {
	for _, t := range stagedOrder {
		if err := s.be.Exec(ctx, "TRUNCATE TABLE "+s.stageTable(t)); err != nil {
			return fmt.Errorf("ingest: clear stage %s: %w", t, err)
		}
	}
	return nil
}

// recoverStageLocked finishes or discards what the stage holds: a group
// whose batch ids are published is published in full, anything else is
// dropped. Callers hold s.commit.mu.
func (s *Store) recoverStageLocked(ctx context.Context) error {
	r, err := s.be.Query(ctx, "SELECT DISTINCT commit_seq FROM "+s.stageTable("ingested_batches"))
	if err != nil {
		return fmt.Errorf("read staged commit: %w", err)
	}
	rolled := false
	for _, row := range r.Data {
		seq := asUint(row[0])
		ids, err := s.publishedRows(ctx, "ingested_batches", seq, "", "")
		if err != nil {
			return err
		}
		if ids == 0 {
			continue
		}
		if err := s.publish(ctx, seq, true); err != nil {
			return err
		}
		rolled = true
	}
	nonEmpty, err := s.stageNonEmpty(ctx)
	if err != nil {
		return err
	}
	if err := s.clearStage(ctx); err != nil {
		return err
	}
	switch {
	case rolled:
		s.commit.stats.RolledForward++
	case nonEmpty:
		s.commit.stats.Discarded++
	}
	s.commit.dirty = false
	return nil
}

func (s *Store) stageNonEmpty(ctx context.Context) (bool, error) {
	for _, t := range stagedOrder {
		parts, err := s.stagePartitions(ctx, t)
		if err != nil {
			return false, err
		}
		if len(parts) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// recoverIfDirty finishes a commit that failed part way in this process
// before batch ids are checked: its ids may be published without its data.
func (s *Store) recoverIfDirty(ctx context.Context) error {
	s.commit.mu.Lock()
	defer s.commit.mu.Unlock()
	if !s.commit.dirty {
		return nil
	}
	if err := s.recoverStageLocked(ctx); err != nil {
		return fmt.Errorf("ingest: recover stage: %w", err)
	}
	return nil
}

// recoverStage runs recovery at Open.
func (s *Store) recoverStage(ctx context.Context) error {
	s.commit.mu.Lock()
	defer s.commit.mu.Unlock()
	return s.recoverStageLocked(ctx)
}

// Recovery reports what commit recovery did since Open.
func (s *Store) Recovery() RecoveryStats {
	s.commit.mu.Lock()
	defer s.commit.mu.Unlock()
	return s.commit.stats
}

// withCommitSeq returns rec plus a constant commit_seq column; it releases rec.
func withCommitSeq(rec arrow.RecordBatch, seq uint64) arrow.RecordBatch {
	defer rec.Release()
	n := int(rec.NumRows())
	b := array.NewUint64Builder(memory.DefaultAllocator)
	defer b.Release()
	b.Reserve(n)
	for range n {
		b.UnsafeAppend(seq)
	}
	col := b.NewUint64Array()
	defer col.Release()
	fields := append(rec.Schema().Fields(), arrow.Field{Name: "commit_seq", Type: arrow.PrimitiveTypes.Uint64})
	cols := append(rec.Columns()[:rec.NumCols():rec.NumCols()], col)
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, int64(n))
}
