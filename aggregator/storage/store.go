package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// Store is fleetprof's profile store on ClickHouse. It is safe for
// concurrent use.
type Store struct {
	cfg     Config
	be      Backend
	lay     layout
	version Version
	feat    features

	stacks *samplebatch.IDCache[stack]
	locks  keyedLocks
	recent *idSet // batch ids ingested by this process

	// staged is true on a single node: batches are committed through the
	// stage tables exactly once (commit.go). Cluster mode writes directly.
	staged bool
	commit committer

	// readSlots bounds the reads holding engine connections at once (embedded:
	// EmbeddedReadConns); nil means no bound.
	readSlots chan struct{}
}

// Open connects to (or starts) the engine named by cfg.URI and brings the
// schema up to date.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	tgt, err := parseURI(cfg.URI)
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:    cfg,
		lay:    layout{db: tgt.database, cluster: tgt.cluster, onCluster: tgt.onCluster},
		stacks: samplebatch.NewIDCache[stack](cfg.StackCache),
		recent: newIDSet(100_000),
	}
	if tgt.embedded {
		s.be, err = openEmbedded(tgt.dir, cfg.ChdbLib)
		s.readSlots = make(chan struct{}, EmbeddedReadConns)
	} else {
		s.be, err = openServerTarget(ctx, tgt, cfg.Retention, s.lay)
	}
	if err != nil {
		return nil, err
	}
	if s.version, err = s.be.ServerVersion(ctx); err != nil {
		s.be.Close()
		return nil, err
	}
	s.feat = featuresFor(s.version)
	// Cluster DDL node by node already ran in openServerTarget.
	if tgt.cluster == "" || tgt.onCluster {
		if err := migrate(ctx, s.be, s.lay, s.feat, cfg.Retention); err != nil {
			s.be.Close()
			return nil, err
		}
	}
	s.staged = tgt.cluster == ""
	if s.staged {
		if err := s.createStages(ctx); err != nil {
			s.be.Close()
			return nil, err
		}
		if tgt.embedded {
			if err := s.keepMergeSources(ctx); err != nil {
				s.be.Close()
				return nil, fmt.Errorf("keep merge sources: %w", err)
			}
		}
		// Finish or drop what a crashed process left in the stage before any
		// batch id is checked.
		if err := s.recoverStage(ctx); err != nil {
			s.be.Close()
			return nil, fmt.Errorf("recover staged commit: %w", err)
		}
	}
	return s, nil
}

// openServerTarget connects to a server or cluster; in cluster mode without
// ON CLUSTER it creates the schema on every node first (no ZooKeeper needed).
func openServerTarget(ctx context.Context, tgt target, retention time.Duration, lay layout) (Backend, error) {
	dsn := tgt.dsn
	if tgt.cluster != "" {
		// Reads right after a write must see it: insert into all shards synchronously.
		u, err := url.Parse(dsn)
		if err != nil {
			return nil, fmt.Errorf("parse clickhouse uri: %w", err)
		}
		q := u.Query()
		q.Set("insert_distributed_sync", "1")
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	if tgt.cluster != "" && !tgt.onCluster {
		for _, h := range tgt.hosts {
			node, err := openServer(ctx, tgt.dsn, []string{h}, "")
			if err != nil {
				return nil, err
			}
			v, err := node.ServerVersion(ctx)
			if err == nil {
				err = migrate(ctx, node, lay, featuresFor(v), retention)
			}
			node.Close()
			if err != nil {
				return nil, fmt.Errorf("node %s: %w", h, err)
			}
		}
	}
	return openServer(ctx, dsn, tgt.hosts, "")
}

// Close releases the engine connection.
func (s *Store) Close() error { return s.be.Close() }

// Ping checks that the engine answers.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.be.Query(ctx, "SELECT 1"); err != nil {
		return fmt.Errorf("ping storage: %w", err)
	}
	return nil
}

// ServerVersion is the ClickHouse version of the engine.
func (s *Store) ServerVersion() Version { return s.version }

// table is the qualified public name of a table.
func (s *Store) table(name string) string { return s.lay.db + "." + name }

// Ingest writes a decoded batch once: a batch id already stored returns
// duplicate=true and writes nothing. Concurrent retries of one id in this
// process are serialized; the id is recorded only after the data is written,
// so a failed write can be retried.
func (s *Store) Ingest(ctx context.Context, batchID string, b *samplebatch.Batch) (rows int, duplicate bool, err error) {
	res, err := s.IngestBatches(ctx, []IngestItem{{ID: batchID, Batch: b}})
	if err != nil {
		return 0, false, err
	}
	return res[0].Rows, res[0].Duplicate, nil
}

// IngestItem is one batch and its id for IngestBatches.
type IngestItem struct {
	ID    string
	Batch *samplebatch.Batch
}

// IngestResult is what happened to one IngestItem.
type IngestResult struct {
	Rows      int
	Duplicate bool
}

// maxIDsPerCheck bounds the ids quoted into one lookup (max_query_size).
const maxIDsPerCheck = 1000

// IngestBatches is Ingest for several batches written together: one id
// lookup and one insert per table for all of them. Every ClickHouse insert
// creates a part, so a server that queues agent batches for a few
// milliseconds and writes them here gets several times the rows/s of one
// Ingest per batch. Either every new batch is written or none is (an error).
func (s *Store) IngestBatches(ctx context.Context, items []IngestItem) ([]IngestResult, error) {
	ids := make([]string, 0, len(items))
	for i, it := range items {
		if it.ID == "" {
			return nil, fmt.Errorf("ingest: item %d: empty batch id", i)
		}
		if it.Batch == nil {
			return nil, fmt.Errorf("ingest: item %d (%s): nil batch", i, it.ID)
		}
		ids = append(ids, it.ID)
	}
	// Sorted, distinct: a fixed lock order cannot deadlock against another call.
	sort.Strings(ids)
	ids = slices.Compact(ids)
	for _, id := range ids {
		unlock := s.locks.lock(id)
		defer unlock()
	}
	if s.staged {
		if err := s.recoverIfDirty(ctx); err != nil {
			return nil, err
		}
	}
	known, err := s.KnownBatches(ctx, ids)
	if err != nil {
		return nil, err
	}
	res := make([]IngestResult, len(items))
	merged := &samplebatch.Batch{}
	var newIDs []string
	var newRows []uint64
	total := 0
	for _, it := range items {
		total += len(it.Batch.Rows)
	}
	for i, it := range items {
		if known[it.ID] {
			res[i].Duplicate = true
			continue
		}
		known[it.ID] = true // the same id twice in one call is written once
		res[i].Rows = len(it.Batch.Rows)
		newIDs = append(newIDs, it.ID)
		newRows = append(newRows, uint64(len(it.Batch.Rows)))
		if len(newIDs) == 1 {
			merged.Rows, merged.Stacks, merged.Locations = it.Batch.Rows, it.Batch.Stacks, it.Batch.Locations
			continue
		}
		if len(newIDs) == 2 { // copy before appending: the first batch is the caller's
			merged.Rows = append(make([]samplebatch.Row, 0, total), merged.Rows...)
			merged.Stacks = maps.Clone(merged.Stacks)
			merged.Locations = maps.Clone(merged.Locations)
		}
		merged.Rows = append(merged.Rows, it.Batch.Rows...)
		maps.Copy(merged.Stacks, it.Batch.Stacks)
		if merged.Locations == nil {
			merged.Locations = map[uint64][]string{}
		}
		maps.Copy(merged.Locations, it.Batch.Locations)
	}
	if len(newIDs) == 0 {
		return res, nil
	}
	if s.staged {
		if err := s.commitStaged(ctx, merged, newIDs, newRows); err != nil {
			return nil, err
		}
		for _, id := range newIDs {
			s.recent.add(id)
		}
		return res, nil
	}
	// Cluster mode: no stage; a crash between the data and the ids can
	// duplicate that group on retry (SCHEMA.md).
	if _, err := s.write(ctx, merged); err != nil {
		return nil, err
	}
	rec := batchIDRecord(newIDs, time.Now(), newRows)
	defer rec.Release()
	if err := s.be.Insert(ctx, s.table("ingested_batches"), rec); err != nil {
		return nil, fmt.Errorf("ingest: record batch ids: %w", err)
	}
	for _, id := range newIDs {
		s.recent.add(id)
	}
	return res, nil
}

// KnownBatches returns which of ids are stored (committed) batch ids: one
// lookup per maxIDsPerCheck ids not in the recent-id cache.
func (s *Store) KnownBatches(ctx context.Context, ids []string) (map[string]bool, error) {
	known := map[string]bool{}
	var check []string
	for _, id := range ids {
		if s.recent.has(id) {
			known[id] = true
		} else {
			check = append(check, id)
		}
	}
	for len(check) > 0 {
		n := min(len(check), maxIDsPerCheck)
		quoted := make([]string, n)
		for i, id := range check[:n] {
			quoted[i] = quote(id)
		}
		r, err := s.be.Query(ctx, fmt.Sprintf("SELECT DISTINCT batch_id FROM %s WHERE batch_id IN (%s)", s.table("ingested_batches"), strings.Join(quoted, ",")))
		if err != nil {
			return nil, fmt.Errorf("ingest: check batch ids: %w", err)
		}
		for _, id := range column0Strings(r) {
			known[id] = true
			s.recent.add(id)
		}
		check = check[n:]
	}
	return known, nil
}

// IngestBulk writes a batch without the batch-id check: the simulator's and
// importers' path for large runs. The batch may exceed the network limits.
func (s *Store) IngestBulk(ctx context.Context, b *samplebatch.Batch) (int, error) {
	if b == nil {
		return 0, errors.New("ingest bulk: nil batch")
	}
	return s.write(ctx, b)
}

func (s *Store) write(ctx context.Context, b *samplebatch.Batch) (int, error) {
	if len(b.Rows) == 0 {
		return 0, nil
	}
	// Stacks+samples and the rollup go to different tables on different
	// connections: computing and inserting the rollup overlaps the samples
	// insert instead of following it. A failure of either fails the write
	// (the batch id is not recorded, so the batch is retried in full).
	var wg sync.WaitGroup
	var dataErr error
	wg.Go(func() { dataErr = s.writeData(ctx, b) })
	rollErr := s.writeRollup(ctx, aggregateRollup(b, s.cfg.HostGroups, s.cfg.RollupBucket))
	wg.Wait()
	if dataErr != nil {
		return 0, dataErr
	}
	if rollErr != nil {
		return 0, rollErr
	}
	return len(b.Rows), nil
}

func (s *Store) writeRollup(ctx context.Context, a *rollupAgg) error {
	if a.len() == 0 {
		return nil
	}
	rec := a.record()
	defer rec.Release()
	if err := s.be.Insert(ctx, s.table("function_rollup"), rec); err != nil {
		return fmt.Errorf("ingest: write rollup: %w", err)
	}
	return nil
}

// writeData writes the batch's new stacks, then its samples.
func (s *Store) writeData(ctx context.Context, b *samplebatch.Batch) error {
	if err := s.writeStacks(ctx, b); err != nil {
		return err
	}
	rec := samplesRecord(b)
	err := s.be.Insert(ctx, s.table("samples"), rec)
	rec.Release()
	if err != nil {
		return fmt.Errorf("ingest: write samples: %w", err)
	}
	return nil
}

// writeStacks writes the stacks of b not known to be stored, and again those
// stored without locations that b has locations for (readers prefer a row with
// locations: query.go).
func (s *Store) writeStacks(ctx context.Context, b *samplebatch.Batch) error {
	var newIDs []uint64
	for id := range b.Stacks {
		if st, ok := s.stacks.Get(id); !ok || (st.locations == nil && b.Locations[id] != nil) {
			newIDs = append(newIDs, id)
		}
	}
	if len(newIDs) > 0 {
		rec := stacksRecord(newIDs, b)
		err := s.be.Insert(ctx, s.table("stacks"), rec)
		rec.Release()
		if err != nil {
			return fmt.Errorf("ingest: write stacks: %w", err)
		}
		// Only after the insert: a failed one must be retried next time.
		for _, id := range newIDs {
			s.stacks.Put(id, stack{frames: b.Stacks[id], locations: b.Locations[id]})
		}
	}
	return nil
}

// bulkRollupKeys is when a BulkWriter writes its rollup without waiting for Flush.
const bulkRollupKeys = 2_000_000

// BulkWriter writes large runs (simulator, imports) fast: no batch-id check,
// and the rollup is merged in memory across writes, so rows of one host group
// and minute from many batches become one row. It is written by Flush (and
// whenever it holds 2M keys). Until Flush the samples are stored but the
// rollup lacks them. Not safe for concurrent use.
type BulkWriter struct {
	s   *Store
	agg *rollupAgg
}

// NewBulkWriter starts a bulk run; call Flush at the end.
func (s *Store) NewBulkWriter() *BulkWriter {
	return &BulkWriter{s: s, agg: newRollupAgg(s.cfg.HostGroups, s.cfg.RollupBucket)}
}

// Write stores a batch's stacks and samples and adds it to the pending rollup.
func (w *BulkWriter) Write(ctx context.Context, b *samplebatch.Batch) (int, error) {
	if b == nil {
		return 0, errors.New("bulk write: nil batch")
	}
	if len(b.Rows) == 0 {
		return 0, nil
	}
	if err := w.s.writeData(ctx, b); err != nil {
		return 0, err
	}
	w.agg.addBatch(b)
	if w.agg.len() >= bulkRollupKeys {
		if err := w.Flush(ctx); err != nil {
			return 0, err
		}
	}
	return len(b.Rows), nil
}

// Flush writes the pending rollup.
func (w *BulkWriter) Flush(ctx context.Context) error {
	if err := w.s.writeRollup(ctx, w.agg); err != nil {
		return err
	}
	w.agg = newRollupAgg(w.s.cfg.HostGroups, w.s.cfg.RollupBucket)
	return nil
}

// labelDictType carries the samples' label columns: the engine reads each
// distinct value once into its LowCardinality column instead of once per row.
var labelDictType = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}

var (
	tsType      = &arrow.TimestampType{Unit: arrow.Second, TimeZone: "UTC"}
	stringList  = arrow.ListOf(arrow.BinaryTypes.String)
	stackSchema = arrow.NewSchema([]arrow.Field{
		{Name: "stack_id", Type: arrow.PrimitiveTypes.Uint64},
		{Name: "frames", Type: stringList},
		{Name: "locations", Type: stringList},
	}, nil)
	samplesSchema = arrow.NewSchema([]arrow.Field{
		{Name: "ts", Type: tsType},
		{Name: "service", Type: labelDictType},
		{Name: "version", Type: labelDictType},
		{Name: "host", Type: labelDictType},
		{Name: "namespace", Type: labelDictType},
		{Name: "pod", Type: labelDictType},
		{Name: "container", Type: labelDictType},
		{Name: "comm", Type: labelDictType},
		{Name: "pid", Type: arrow.PrimitiveTypes.Uint32},
		{Name: "label_keys", Type: stringList},
		{Name: "label_values", Type: stringList},
		{Name: "stack_id", Type: arrow.PrimitiveTypes.Uint64},
		{Name: "value", Type: arrow.PrimitiveTypes.Uint64},
		{Name: "period_ns", Type: arrow.PrimitiveTypes.Uint64},
	}, nil)
	// samplesTypedSchema adds profile_type, for batches with other than CPU rows.
	samplesTypedSchema = arrow.NewSchema(append(samplesSchema.Fields(),
		arrow.Field{Name: "profile_type", Type: arrow.BinaryTypes.String}), nil)
	rollupSchema = arrow.NewSchema([]arrow.Field{
		{Name: "service", Type: arrow.BinaryTypes.String},
		{Name: "version", Type: arrow.BinaryTypes.String},
		{Name: "host_group", Type: arrow.PrimitiveTypes.Uint8},
		{Name: "bucket", Type: tsType},
		{Name: "function", Type: arrow.BinaryTypes.String},
		{Name: "self", Type: arrow.PrimitiveTypes.Uint64},
		{Name: "inclusive", Type: arrow.PrimitiveTypes.Uint64},
	}, nil)
	batchIDSchema = arrow.NewSchema([]arrow.Field{
		{Name: "batch_id", Type: arrow.BinaryTypes.String},
		{Name: "ts", Type: tsType},
		{Name: "rows", Type: arrow.PrimitiveTypes.Uint64},
	}, nil)
	findingsSchema = arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String},
		{Name: "kind", Type: arrow.BinaryTypes.String},
		{Name: "service", Type: arrow.BinaryTypes.String},
		{Name: "created", Type: tsType},
		{Name: "body", Type: arrow.BinaryTypes.String},
		{Name: "revision", Type: arrow.PrimitiveTypes.Uint64},
	}, nil)
)

// stacksRecord is the stacks table's rows of b's stacks ids; a stack without
// locations gets an empty array.
func stacksRecord(ids []uint64, b *samplebatch.Batch) arrow.RecordBatch {
	rb := array.NewRecordBuilder(memory.DefaultAllocator, stackSchema)
	defer rb.Release()
	idb := rb.Field(0).(*array.Uint64Builder)
	for _, id := range ids {
		idb.Append(id)
		appendStringList(rb.Field(1).(*array.ListBuilder), b.Stacks[id])
		appendStringList(rb.Field(2).(*array.ListBuilder), b.Locations[id])
	}
	return rb.NewRecordBatch()
}

func appendStringList(lb *array.ListBuilder, vs []string) {
	lb.Append(true)
	vb := lb.ValueBuilder().(*array.StringBuilder)
	for _, v := range vs {
		vb.Append(v)
	}
}

// samplesRecord is b's rows for the samples table. A batch of CPU rows only
// leaves profile_type to its default.
func samplesRecord(b *samplebatch.Batch) arrow.RecordBatch {
	typed := slices.ContainsFunc(b.Rows, func(r samplebatch.Row) bool { return !isCPU(r.ProfileType) })
	schema := samplesSchema
	if typed {
		schema = samplesTypedSchema
	}
	rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer rb.Release()
	rb.Reserve(len(b.Rows))
	ts := rb.Field(0).(*array.TimestampBuilder)
	var strs [7]labelDict // fields 1-7
	for i := range strs {
		strs[i].init(len(b.Rows))
		defer strs[i].release()
	}
	pid := rb.Field(8).(*array.Uint32Builder)
	lk := rb.Field(9).(*array.ListBuilder)
	lkv := lk.ValueBuilder().(*array.StringBuilder)
	lv := rb.Field(10).(*array.ListBuilder)
	lvv := lv.ValueBuilder().(*array.StringBuilder)
	sid := rb.Field(11).(*array.Uint64Builder)
	val := rb.Field(12).(*array.Uint64Builder)
	per := rb.Field(13).(*array.Uint64Builder)
	var typ *array.StringBuilder
	if typed {
		typ = rb.Field(14).(*array.StringBuilder)
	}
	for i := range b.Rows {
		r := &b.Rows[i]
		l := &r.Labels
		ts.UnsafeAppend(arrow.Timestamp(r.TS))
		strs[0].append(l.Service)
		strs[1].append(l.Version)
		strs[2].append(l.Host)
		strs[3].append(l.Namespace)
		strs[4].append(l.Pod)
		strs[5].append(l.Container)
		strs[6].append(l.Comm)
		pid.UnsafeAppend(l.PID)
		lk.Append(true)
		lv.Append(true)
		for _, e := range l.Extra {
			lkv.Append(e.Key)
			lvv.Append(e.Value)
		}
		sid.UnsafeAppend(r.StackID)
		val.UnsafeAppend(uint64(r.Value))
		per.UnsafeAppend(uint64(r.PeriodNS))
		if typed {
			if isCPU(r.ProfileType) {
				typ.Append(samplebatch.ProfileCPU)
			} else {
				typ.Append(r.ProfileType)
			}
		}
	}
	cols := make([]arrow.Array, len(rb.Fields()))
	for i := range strs {
		cols[1+i] = strs[i].array()
	}
	for i, f := range rb.Fields() {
		if cols[i] == nil { // the label fields' own builders stay unused
			cols[i] = f.NewArray()
		}
		defer cols[i].Release()
	}
	return array.NewRecordBatch(schema, cols, int64(len(b.Rows)))
}

// labelDict builds one labelDictType column. Rows of one agent repeat their
// labels, so a value equal to the previous row's skips the map.
type labelDict struct {
	idx    *array.Int32Builder
	vals   *array.StringBuilder
	ids    map[string]int32
	last   string
	lastID int32
}

func (d *labelDict) init(rows int) {
	d.idx = array.NewInt32Builder(memory.DefaultAllocator)
	d.idx.Reserve(rows)
	d.vals = array.NewStringBuilder(memory.DefaultAllocator)
	d.ids = map[string]int32{}
	d.lastID = -1
}

func (d *labelDict) append(v string) {
	if d.lastID < 0 || v != d.last {
		id, ok := d.ids[v]
		if !ok {
			id = int32(len(d.ids))
			d.ids[v] = id
			d.vals.Append(v)
		}
		d.last, d.lastID = v, id
	}
	d.idx.UnsafeAppend(d.lastID)
}

func (d *labelDict) array() arrow.Array {
	idx, vals := d.idx.NewArray(), d.vals.NewArray()
	defer idx.Release()
	defer vals.Release()
	return array.NewDictionaryArray(labelDictType, idx, vals)
}

func (d *labelDict) release() {
	d.idx.Release()
	d.vals.Release()
}

func batchIDRecord(ids []string, ts time.Time, rows []uint64) arrow.RecordBatch {
	rb := array.NewRecordBuilder(memory.DefaultAllocator, batchIDSchema)
	defer rb.Release()
	for i, id := range ids {
		rb.Field(0).(*array.StringBuilder).Append(id)
		rb.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(ts.Unix()))
		rb.Field(2).(*array.Uint64Builder).Append(rows[i])
	}
	return rb.NewRecordBatch()
}

// stack is one stored stack: frames root first, and each frame's location
// (nil when it has none).
type stack struct{ frames, locations []string }

// idSet is a bounded two-generation set of strings.
type idSet struct {
	mu        sync.Mutex
	cap       int
	cur, prev map[string]struct{}
}

func newIDSet(n int) *idSet {
	return &idSet{cap: max(n/2, 1), cur: map[string]struct{}{}, prev: map[string]struct{}{}}
}

func (s *idSet) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, a := s.cur[id]
	_, b := s.prev[id]
	return a || b
}

func (s *idSet) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cur) >= s.cap {
		s.prev, s.cur = s.cur, make(map[string]struct{}, s.cap)
	}
	s.cur[id] = struct{}{}
}

// keyedLocks serializes work per key (concurrent retries of one batch id).
type keyedLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedLocks) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// DetachedPart is a data part the engine set aside instead of serving it,
// typically one found broken at start (truncated or checksum mismatch).
type DetachedPart struct {
	Table  string `json:"table"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
	// Covered: every block of the part is in an active part, so no row is
	// missing. It is a merge result set aside while its source parts, still
	// on disk, were loaded instead (seen after the disk filled during a
	// merge: the engine had published a result none of whose writes landed).
	Covered bool `json:"covered"`
}

// Uncovered returns the parts whose rows are missing from queries (not
// Covered).
func Uncovered(parts []DetachedPart) []DetachedPart {
	var out []DetachedPart
	for _, p := range parts {
		if !p.Covered {
			out = append(out, p)
		}
	}
	return out
}

// DetachedParts lists the detached parts of the store's tables. Their rows
// are missing from every query until an operator repairs or drops them,
// unless Covered. Engines without system.detached_parts (before 19.x)
// return ErrUnsupported.
func (s *Store) DetachedParts(ctx context.Context) ([]DetachedPart, error) {
	r, err := s.be.Query(ctx, "SELECT count() FROM system.tables WHERE database = 'system' AND name = 'detached_parts'")
	if err != nil {
		return nil, fmt.Errorf("list detached parts: %w", err)
	}
	if len(r.Data) != 1 || asUint(r.Data[0][0]) == 0 {
		return nil, fmt.Errorf("list detached parts: %w", errors.ErrUnsupported)
	}
	r, err = s.be.Query(ctx, fmt.Sprintf(`SELECT table, name, ifNull(reason, ''), ifNull(partition_id, ''),
    ifNull(min_block_number, -1), ifNull(max_block_number, -1)
FROM system.detached_parts WHERE database = %s ORDER BY table, name`, quote(s.lay.db)))
	if err != nil {
		return nil, fmt.Errorf("list detached parts: %w", err)
	}
	if len(r.Data) == 0 {
		return []DetachedPart{}, nil
	}
	active, err := s.activeBlocks(ctx)
	if err != nil {
		return nil, fmt.Errorf("list detached parts: %w", err)
	}
	out := make([]DetachedPart, 0, len(r.Data))
	for _, row := range r.Data {
		p := DetachedPart{Table: asString(row[0]), Name: asString(row[1]), Reason: asString(row[2])}
		lo, hi := asInt(row[4]), asInt(row[5])
		p.Covered = lo >= 0 && covers(active[[2]string{p.Table, asString(row[3])}], lo, hi)
		out = append(out, p)
	}
	return out, nil
}

// blockRange is the block numbers [lo, hi] of a part.
type blockRange struct{ lo, hi int64 }

// activeBlocks is the block ranges of the active parts per table and
// partition id.
func (s *Store) activeBlocks(ctx context.Context) (map[[2]string][]blockRange, error) {
	r, err := s.be.Query(ctx, fmt.Sprintf("SELECT table, partition_id, min_block_number, max_block_number FROM system.parts WHERE database = %s AND active",
		quote(s.lay.db)))
	if err != nil {
		return nil, err
	}
	out := map[[2]string][]blockRange{}
	for _, row := range r.Data {
		k := [2]string{asString(row[0]), asString(row[1])}
		out[k] = append(out[k], blockRange{asInt(row[2]), asInt(row[3])})
	}
	return out, nil
}

// covers reports whether ranges hold every block of [lo, hi]. Blocks that
// were never written leave gaps too, so a gap means not covered.
func covers(ranges []blockRange, lo, hi int64) bool {
	rs := slices.Clone(ranges)
	slices.SortFunc(rs, func(a, b blockRange) int { return cmp.Compare(a.lo, b.lo) })
	next := lo
	for _, r := range rs {
		if r.lo > next {
			break
		}
		next = max(next, r.hi+1)
		if next > hi {
			return true
		}
	}
	return false
}
