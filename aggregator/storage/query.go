package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
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

// maxInlineIDs bounds stack ids written into a query as a literal list
// (ClickHouse's max_query_size is 256 KiB); beyond it frames are fetched with
// a subquery over the selection.
var maxInlineIDs = 5000

// inSub is IN for a subquery: GLOBAL IN in cluster mode, where a plain IN
// over two Distributed tables is refused (distributed_product_mode=deny).
func (s *Store) inSub() string {
	if s.lay.cluster != "" {
		return "GLOBAL IN"
	}
	return "IN"
}

// Services lists services with samples in [from, to).
func (s *Store) Services(ctx context.Context, from, to time.Time) ([]string, error) {
	conds := append(timeRange("bucket", bucketStart(from, s.cfg.RollupBucket), to), "function = ''")
	r, err := s.read(ctx, fmt.Sprintf("SELECT DISTINCT service FROM %s WHERE %s ORDER BY service",
		s.table("function_rollup"), strings.Join(conds, " AND ")))
	if err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	return column0Strings(r), nil
}

func bucketStart(t time.Time, bucket time.Duration) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Truncate(bucket)
}

func column0Strings(r *Rows) []string {
	out := make([]string, 0, len(r.Data))
	for _, row := range r.Data {
		out = append(out, asString(row[0]))
	}
	return out
}

// LabelKeys lists the built-in label keys followed by the extra label keys
// present in the selection (sorted).
func (s *Store) LabelKeys(ctx context.Context, sel model.Selection) ([]string, error) {
	where, err := selectionWhere(sel)
	if err != nil {
		return nil, fmt.Errorf("label keys: %w", err)
	}
	r, err := s.read(ctx, fmt.Sprintf("SELECT DISTINCT toString(arrayJoin(label_keys)) AS k FROM %s WHERE %s ORDER BY k LIMIT 1000",
		s.table("samples"), where))
	if err != nil {
		return nil, fmt.Errorf("label keys: %w", err)
	}
	out := append([]string(nil), builtinLabels...)
	for _, k := range column0Strings(r) {
		if !isBuiltin(k) {
			out = append(out, k)
		}
	}
	return out, nil
}

// LabelValues lists the values of one label in the selection (sorted, at
// most 10,000).
func (s *Store) LabelValues(ctx context.Context, sel model.Selection, key string) ([]string, error) {
	if key == "" {
		return nil, errors.New("label values: empty key")
	}
	where, err := selectionWhere(sel)
	if err != nil {
		return nil, fmt.Errorf("label values: %w", err)
	}
	if !isBuiltin(key) {
		where += " AND has(label_keys, " + quote(key) + ")"
	}
	r, err := s.read(ctx, fmt.Sprintf("SELECT DISTINCT toString(%s) AS v FROM %s WHERE %s ORDER BY v LIMIT 10000",
		labelExpr(key), s.table("samples"), where))
	if err != nil {
		return nil, fmt.Errorf("label values: %w", err)
	}
	return column0Strings(r), nil
}

// ProfileTypes lists the profile types stored for each service of sel (its
// ProfileType ignored): service → types, sorted, "cpu" for CPU samples.
func (s *Store) ProfileTypes(ctx context.Context, sel model.Selection) (map[string][]string, error) {
	where, err := selectionWhereOf(sel, false)
	if err != nil {
		return nil, fmt.Errorf("profile types: %w", err)
	}
	r, err := s.read(ctx, fmt.Sprintf("SELECT DISTINCT service, profile_type FROM %s WHERE %s ORDER BY service, profile_type LIMIT 10000",
		s.table("samples"), where))
	if err != nil {
		return nil, fmt.Errorf("profile types: %w", err)
	}
	out := map[string][]string{}
	for _, row := range r.Data {
		svc := asString(row[0])
		out[svc] = append(out[svc], asString(row[1]))
	}
	return out, nil
}

// Profile returns the selection's distinct stacks with their samples, the
// largest first. Aggregation by stack_id runs in the engine; frames come from
// the stacks table (or the in-process cache).
func (s *Store) Profile(ctx context.Context, sel model.Selection) (*model.Profile, error) {
	where, err := selectionWhere(sel)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	r, err := s.read(ctx, fmt.Sprintf("SELECT stack_id, period_ns, sum(value) FROM %s WHERE %s GROUP BY stack_id, period_ns",
		s.table("samples"), where))
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	values := map[uint64]int64{}
	periods := map[int64]int64{}
	p := &model.Profile{}
	if !isCPU(sel.ProfileType) {
		p.ProfileType = sel.ProfileType
	}
	for _, row := range r.Data {
		id, per, v := asUint(row[0]), asInt(row[1]), asInt(row[2])
		values[id] += v
		periods[per] += v
		p.Total += v
	}
	var best int64 = -1
	for per, v := range periods {
		if v > best || (v == best && per < p.PeriodNS) {
			p.PeriodNS, best = per, v
		}
	}
	stacks := make(map[uint64]stack, len(values))
	var missing []uint64
	for id := range values {
		if st, ok := s.stacks.Get(id); ok {
			stacks[id] = st
		} else {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		cond := "stack_id " + s.inSub() + " (SELECT stack_id FROM " + s.table("samples") + " WHERE " + where + ")"
		if len(missing) <= maxInlineIDs {
			ids := make([]string, len(missing))
			for i, id := range missing {
				ids[i] = strconv.FormatUint(id, 10)
			}
			cond = "stack_id IN (" + strings.Join(ids, ",") + ")"
		}
		// A stack may be stored with and without locations (written before its
		// locations were known, or before schema v4): take the row with them.
		fr, err := s.read(ctx, fmt.Sprintf("SELECT stack_id, any(frames), argMax(locations, length(locations)) FROM %s WHERE %s GROUP BY stack_id", s.table("stacks"), cond))
		if err != nil {
			return nil, fmt.Errorf("profile: read stacks: %w", err)
		}
		for _, row := range fr.Data {
			id, st := asUint(row[0]), stack{frames: asStrings(row[1]), locations: asStrings(row[2])}
			if len(st.locations) != len(st.frames) {
				st.locations = nil
			}
			if _, want := values[id]; want {
				stacks[id] = st
				s.stacks.Put(id, st)
			}
		}
	}
	type entry struct {
		id uint64
		model.StackCount
	}
	entries := make([]entry, 0, len(values))
	for id, v := range values {
		st, ok := stacks[id]
		if !ok || len(st.frames) == 0 {
			// Samples whose stack row is lost still count toward the total.
			st = stack{frames: []string{fmt.Sprintf("[missing stack %016x]", id)}}
		}
		entries = append(entries, entry{id, model.StackCount{Frames: st.frames, Locations: st.locations, Value: v}})
	}
	// Ties by stack id: deterministic without comparing frames.
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if a.Value != b.Value {
			return a.Value > b.Value
		}
		return a.id < b.id
	})
	p.Stacks = make([]model.StackCount, len(entries))
	for i, e := range entries {
		p.Stacks[i] = e.StackCount
	}
	return p, nil
}

// Top returns the selection's functions by self samples (limit <= 0: all).
func (s *Store) Top(ctx context.Context, sel model.Selection, limit int) (*model.Top, error) {
	p, err := s.Profile(ctx, sel)
	if err != nil {
		return nil, err
	}
	return model.TopFromProfile(p, limit), nil
}

// Flame returns the selection's flame graph.
func (s *Store) Flame(ctx context.Context, sel model.Selection) (*model.FlameNode, error) {
	p, err := s.Profile(ctx, sel)
	if err != nil {
		return nil, err
	}
	return model.FlameFromProfile(p), nil
}

// Diff compares two selections normalized to their totals, with the top
// movers functions (<= 0: all).
func (s *Store) Diff(ctx context.Context, base, cmp model.Selection, movers int) (*model.Diff, error) {
	bp, err := s.Profile(ctx, base)
	if err != nil {
		return nil, fmt.Errorf("diff base: %w", err)
	}
	cp, err := s.Profile(ctx, cmp)
	if err != nil {
		return nil, fmt.Errorf("diff cmp: %w", err)
	}
	return model.DiffProfiles(bp, cp, movers), nil
}

// Rollup reads the function rollup of one service, keeping functions whose
// inclusive share over the whole range is at least q.MinShare, plus the
// totals rows (Function ""). Rows are summed per (version, host group,
// bucket or q.Step, function) and sorted by bucket, function, version, host group.
func (s *Store) Rollup(ctx context.Context, q model.RollupQuery) ([]model.RollupRow, error) {
	if q.Service == "" {
		return nil, errors.New("rollup: service is required")
	}
	if q.MinShare < 0 || q.MinShare > 1 || math.IsNaN(q.MinShare) {
		return nil, fmt.Errorf("rollup: min share %v out of range [0, 1]", q.MinShare)
	}
	if q.Step < 0 || q.Step%time.Second != 0 {
		return nil, fmt.Errorf("rollup: step %v: want a whole number of seconds >= 0", q.Step)
	}
	bucketExpr := "toUInt32(bucket)"
	if sec := int64(q.Step / time.Second); sec > 0 {
		bucketExpr = fmt.Sprintf("intDiv(toUInt32(bucket), %[1]d) * %[1]d", sec)
	}
	t := s.table("function_rollup")
	base := strings.Join(append(timeRange("bucket", bucketStart(q.From, s.cfg.RollupBucket), q.To), "service = "+quote(q.Service)), " AND ")
	funcCond := "1"
	if q.MinShare > 0 {
		r, err := s.read(ctx, fmt.Sprintf("SELECT sum(inclusive) FROM %s WHERE %s AND function = ''", t, base))
		if err != nil {
			return nil, fmt.Errorf("rollup: total: %w", err)
		}
		var total int64
		if len(r.Data) == 1 {
			total = asInt(r.Data[0][0])
		}
		min := int64(math.Ceil(q.MinShare * float64(total)))
		funcCond = fmt.Sprintf("(function = '' OR function %s (SELECT function FROM %s WHERE %s AND function != '' GROUP BY function HAVING sum(inclusive) >= %d))", s.inSub(), t, base, min)
	}
	r, err := s.read(ctx, fmt.Sprintf(`SELECT version, host_group, %s AS b, function, sum(self), sum(inclusive) FROM %s WHERE %s AND %s
GROUP BY version, host_group, b, function ORDER BY b, function, version, host_group`, bucketExpr, t, base, funcCond))
	if err != nil {
		return nil, fmt.Errorf("rollup: %w", err)
	}
	out := make([]model.RollupRow, 0, len(r.Data))
	for _, row := range r.Data {
		out = append(out, model.RollupRow{Service: q.Service, Version: asString(row[0]), HostGroup: uint8(asUint(row[1])),
			Bucket: time.Unix(asInt(row[2]), 0).UTC(), Function: asString(row[3]), Self: asInt(row[4]), Inclusive: asInt(row[5])})
	}
	return out, nil
}

// Versions lists the versions of a service seen in [from, to), oldest first.
func (s *Store) Versions(ctx context.Context, service string, from, to time.Time) ([]model.VersionSpan, error) {
	if service == "" {
		return nil, errors.New("versions: service is required")
	}
	// Deploy events for the analyzer, which reads CPU samples only.
	conds := append(timeRange("ts", from, to), "service = "+quote(service), "profile_type = "+quote(samplebatch.ProfileCPU))
	r, err := s.read(ctx, fmt.Sprintf(`SELECT version, toUInt32(min(ts)) AS first, toUInt32(max(ts)) AS last, sum(value) FROM %s WHERE %s
GROUP BY version ORDER BY first, version`, s.table("samples"), strings.Join(conds, " AND ")))
	if err != nil {
		return nil, fmt.Errorf("versions: %w", err)
	}
	out := make([]model.VersionSpan, 0, len(r.Data))
	for _, row := range r.Data {
		out = append(out, model.VersionSpan{Version: asString(row[0]), FirstSeen: time.Unix(asInt(row[1]), 0).UTC(),
			LastSeen: time.Unix(asInt(row[2]), 0).UTC(), Samples: asInt(row[3])})
	}
	return out, nil
}

// FunctionSeries is the inclusive share of function per step over the
// selection; steps without samples are absent.
func (s *Store) FunctionSeries(ctx context.Context, sel model.Selection, function string, step time.Duration) ([]model.SeriesPoint, error) {
	if function == "" {
		return nil, errors.New("function series: empty function")
	}
	if step < time.Second {
		return nil, fmt.Errorf("function series: step %v under one second", step)
	}
	where, err := selectionWhere(sel)
	if err != nil {
		return nil, fmt.Errorf("function series: %w", err)
	}
	sec := int64(step / time.Second)
	r, err := s.read(ctx, fmt.Sprintf(`SELECT intDiv(toUInt32(ts), %[1]d) * %[1]d AS t, sum(value),
sumIf(value, stack_id %[6]s (SELECT stack_id FROM %[2]s WHERE has(frames, %[3]s)))
FROM %[4]s WHERE %[5]s GROUP BY t ORDER BY t`, sec, s.table("stacks"), quote(function), s.table("samples"), where, s.inSub()))
	if err != nil {
		return nil, fmt.Errorf("function series: %w", err)
	}
	out := make([]model.SeriesPoint, 0, len(r.Data))
	for _, row := range r.Data {
		p := model.SeriesPoint{Time: time.Unix(asInt(row[0]), 0).UTC(), Total: asInt(row[1]), Inclusive: asInt(row[2])}
		if p.Total > 0 {
			p.Share = float64(p.Inclusive) / float64(p.Total)
		}
		out = append(out, p)
	}
	return out, nil
}

// PutFindings stores findings; a record with a known ID replaces the old one.
func (s *Store) PutFindings(ctx context.Context, recs []model.FindingRecord) error {
	if len(recs) == 0 {
		return nil
	}
	rb := array.NewRecordBuilder(memory.DefaultAllocator, findingsSchema)
	defer rb.Release()
	rev := uint64(time.Now().UnixNano())
	for i, f := range recs {
		if f.ID == "" {
			return fmt.Errorf("put findings: record %d: empty id", i)
		}
		body := f.Body
		if len(body) == 0 {
			body = json.RawMessage("null")
		}
		if !json.Valid(body) {
			return fmt.Errorf("put findings: record %d (%s): body is not valid JSON", i, f.ID)
		}
		rb.Field(0).(*array.StringBuilder).Append(f.ID)
		rb.Field(1).(*array.StringBuilder).Append(f.Kind)
		rb.Field(2).(*array.StringBuilder).Append(f.Service)
		rb.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(f.Created.Unix()))
		rb.Field(4).(*array.StringBuilder).Append(string(body))
		// Later puts win, also within one call.
		rb.Field(5).(*array.Uint64Builder).Append(rev + uint64(i))
	}
	rec := rb.NewRecordBatch()
	defer rec.Release()
	if err := s.be.Insert(ctx, s.table("findings"), rec); err != nil {
		return fmt.Errorf("put findings: %w", err)
	}
	return nil
}

// Findings reads findings, newest first.
func (s *Store) Findings(ctx context.Context, q model.FindingsQuery) ([]model.FindingRecord, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	conds := timeRange("c", q.From, q.To)
	if q.Service != "" {
		conds = append(conds, "svc = "+quote(q.Service))
	}
	if q.Kind != "" {
		conds = append(conds, "k = "+quote(q.Kind))
	}
	where := "1"
	if len(conds) > 0 {
		where = strings.Join(conds, " AND ")
	}
	// argMax instead of FINAL: it also dedups across shards of a Distributed table.
	r, err := s.read(ctx, fmt.Sprintf(`SELECT id, k, svc, toUInt32(c), b FROM (
SELECT id, argMax(kind, revision) AS k, argMax(service, revision) AS svc, argMax(created, revision) AS c, argMax(body, revision) AS b
FROM %s GROUP BY id) WHERE %s ORDER BY c DESC, id LIMIT %d`, s.table("findings"), where, limit))
	if err != nil {
		return nil, fmt.Errorf("findings: %w", err)
	}
	out := make([]model.FindingRecord, 0, len(r.Data))
	for _, row := range r.Data {
		out = append(out, model.FindingRecord{ID: asString(row[0]), Kind: asString(row[1]), Service: asString(row[2]),
			Created: time.Unix(asInt(row[3]), 0).UTC(), Body: json.RawMessage(asString(row[4]))})
	}
	return out, nil
}

// EnforceRetention drops whole days of samples and rollups older than the
// retention, for servers without table TTL (18.16). With TTL, or without a
// retention, it does nothing. Returns the partitions dropped.
func (s *Store) EnforceRetention(ctx context.Context, now time.Time) (int, error) {
	if s.cfg.Retention == 0 || s.feat.TTL {
		return 0, nil
	}
	if s.lay.cluster != "" {
		return 0, errors.New("enforce retention: not supported in cluster mode on servers without TTL")
	}
	cutoff := now.Add(-s.cfg.Retention)
	dropped := 0
	for _, t := range []string{"samples", "function_rollup"} {
		r, err := s.read(ctx, fmt.Sprintf("SELECT DISTINCT partition FROM system.parts WHERE database = %s AND table = %s AND active",
			quote(s.lay.db), quote(t)))
		if err != nil {
			return dropped, fmt.Errorf("enforce retention: list partitions: %w", err)
		}
		for _, p := range column0Strings(r) {
			day, err := time.Parse("20060102", strings.Trim(p, "'"))
			if err != nil {
				continue
			}
			if !day.Add(24 * time.Hour).After(cutoff) {
				if err := s.be.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DROP PARTITION %s", s.table(t), day.Format("20060102"))); err != nil {
					return dropped, fmt.Errorf("enforce retention: drop %s %s: %w", t, p, err)
				}
				dropped++
			}
		}
	}
	return dropped, nil
}
