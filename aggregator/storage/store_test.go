package storage

import (
	"context"
	"encoding/json"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

var (
	stackA = []string{"main", "handle", "parse"}
	stackB = []string{"main", "handle", "write"}
	stackC = []string{"main", "rec", "rec", "rec"}
	stackD = []string{"main", "gc"}
)

// knownBatch has 20 samples of service "api": v1 on h1/h2, v2 on h1/h2, a
// recursive stack and extra labels.
func knownBatch() *samplebatch.Batch {
	b := &samplebatch.Batch{Stacks: map[uint64][]string{}}
	add := func(ts time.Time, version, host string, pid uint32, frames []string, v int64, extra ...samplebatch.Label) {
		id := samplebatch.StackID(frames)
		b.Stacks[id] = frames
		b.Rows = append(b.Rows, samplebatch.Row{TS: ts.Unix(), StackID: id, Value: v, PeriodNS: 10_101_010,
			Labels: samplebatch.Labels{Service: "api", Version: version, Host: host, Namespace: "prod", Pod: "api-" + host,
				Container: "api", Comm: "api", PID: pid, Extra: extra}})
	}
	add(t0, "v1", "h1", 100, stackA, 10)
	add(t0.Add(time.Minute), "v1", "h2", 200, stackB, 5, samplebatch.Label{Key: "region", Value: "eu"})
	add(t0.Add(2*time.Minute), "v2", "h1", 101, stackC, 3)
	add(t0.Add(2*time.Minute), "v2", "h2", 201, stackD, 2, samplebatch.Label{Key: "region", Value: "us"}, samplebatch.Label{Key: "zone", Value: "a"})
	return b
}

func all() model.Selection { return model.Selection{Service: "api", From: t0, To: t0.Add(time.Hour)} }

func ingest(t *testing.T, s *Store, id string, b *samplebatch.Batch) {
	t.Helper()
	if _, dup, err := s.Ingest(context.Background(), id, b); err != nil || dup {
		t.Fatalf("ingest %s: dup=%v err=%v", id, dup, err)
	}
}

func TestIngestAndQuery(t *testing.T) {
	eachBackend(t, Config{}, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		n, dup, err := s.Ingest(ctx, "b1", knownBatch())
		if err != nil || dup || n != 4 {
			t.Fatalf("ingest = %d, %v, %v", n, dup, err)
		}
		p, err := s.Profile(ctx, all())
		if err != nil {
			t.Fatal(err)
		}
		wantStacks := []model.StackCount{{Frames: stackA, Value: 10}, {Frames: stackB, Value: 5}, {Frames: stackC, Value: 3}, {Frames: stackD, Value: 2}}
		if p.Total != 20 || p.PeriodNS != 10_101_010 || !reflect.DeepEqual(p.Stacks, wantStacks) {
			t.Fatalf("profile = %+v", p)
		}
		top, err := s.Top(ctx, all(), 0)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][2]int64{}
		for _, f := range top.Functions {
			got[f.Function] = [2]int64{f.Self, f.Inclusive}
		}
		want := map[string][2]int64{"main": {0, 20}, "handle": {0, 15}, "parse": {10, 10}, "write": {5, 5}, "rec": {3, 3}, "gc": {2, 2}}
		if top.Total != 20 || !reflect.DeepEqual(got, want) || top.Functions[0].Function != "parse" || top.Functions[0].SelfPct != 50 {
			t.Fatalf("top = %+v", top)
		}
		flame, err := s.Flame(ctx, all())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := flameString(flame), "root 20/0 [main 20/0 [handle 15/0 [parse 10/10 write 5/5] rec 3/0 [rec 3/0 [rec 3/3]] gc 2/2]]"; got != want {
			t.Fatalf("flame = %s, want %s", got, want)
		}
		svcs, err := s.Services(ctx, t0, t0.Add(time.Hour))
		if err != nil || !reflect.DeepEqual(svcs, []string{"api"}) {
			t.Fatalf("services = %v, %v", svcs, err)
		}
		keys, err := s.LabelKeys(ctx, all())
		if err != nil || !reflect.DeepEqual(keys, append(append([]string(nil), builtinLabels...), "region", "zone")) {
			t.Fatalf("label keys = %v, %v", keys, err)
		}
		for key, want := range map[string][]string{"region": {"eu", "us"}, "host": {"h1", "h2"}, "pid": {"100", "101", "200", "201"}, "nope": {}} {
			vals, err := s.LabelValues(ctx, all(), key)
			if err != nil || !reflect.DeepEqual(vals, want) {
				t.Errorf("label values %s = %v, %v; want %v", key, vals, err, want)
			}
		}
		vs, err := s.Versions(ctx, "api", t0, t0.Add(time.Hour))
		wantVS := []model.VersionSpan{{Version: "v1", FirstSeen: t0, LastSeen: t0.Add(time.Minute), Samples: 15}, {Version: "v2", FirstSeen: t0.Add(2 * time.Minute), LastSeen: t0.Add(2 * time.Minute), Samples: 5}}
		if err != nil || !reflect.DeepEqual(vs, wantVS) {
			t.Fatalf("versions = %+v, %v", vs, err)
		}
		series, err := s.FunctionSeries(ctx, all(), "handle", time.Minute)
		wantSeries := []model.SeriesPoint{{Time: t0, Total: 10, Inclusive: 10, Share: 1}, {Time: t0.Add(time.Minute), Total: 5, Inclusive: 5, Share: 1}, {Time: t0.Add(2 * time.Minute), Total: 5, Inclusive: 0, Share: 0}}
		if err != nil || !reflect.DeepEqual(series, wantSeries) {
			t.Fatalf("series = %+v, %v", series, err)
		}
		// An empty range is an empty profile, not an error.
		empty, err := s.Profile(ctx, model.Selection{Service: "api", From: t0.Add(-2 * time.Hour), To: t0.Add(-time.Hour)})
		if err != nil || empty.Total != 0 || len(empty.Stacks) != 0 {
			t.Fatalf("empty profile = %+v, %v", empty, err)
		}
	})
}

func flameString(n *model.FlameNode) string {
	s := n.Name + " " + itoa(n.Total) + "/" + itoa(n.Self)
	if len(n.Children) > 0 {
		var parts []string
		for _, c := range n.Children {
			parts = append(parts, flameString(c))
		}
		s += " [" + strings.Join(parts, " ") + "]"
	}
	return s
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestIngestDuplicate(t *testing.T) {
	eachBackend(t, Config{}, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ingest(t, s, "dup", knownBatch())
		n, dup, err := s.Ingest(ctx, "dup", knownBatch())
		if err != nil || !dup || n != 0 {
			t.Fatalf("second ingest = %d, %v, %v", n, dup, err)
		}
		// Concurrent retries of a new id: exactly one writes.
		var wg sync.WaitGroup
		var mu sync.Mutex
		writes := 0
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, dup, err := s.Ingest(ctx, "concurrent", knownBatch())
				if err != nil {
					t.Error(err)
				}
				if !dup {
					mu.Lock()
					writes++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if writes != 1 {
			t.Fatalf("concurrent writes = %d, want 1", writes)
		}
		// A fresh store (no in-process memory) still sees the id in the table.
		s2, err := Open(ctx, s.cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		if _, dup, err := s2.Ingest(ctx, "dup", knownBatch()); err != nil || !dup {
			t.Fatalf("ingest after reopen: dup=%v err=%v", dup, err)
		}
		// Frames come from the stacks table when the process has not seen them,
		// by literal id list or by subquery.
		for _, inline := range []int{5000, 1} {
			s2.stacks = samplebatch.NewIDCache[stack](10)
			defer func(v int) { maxInlineIDs = v }(maxInlineIDs)
			maxInlineIDs = inline
			p, err := s2.Profile(ctx, all())
			want := []model.StackCount{{Frames: stackA, Value: 20}, {Frames: stackB, Value: 10}, {Frames: stackC, Value: 6}, {Frames: stackD, Value: 4}}
			if err != nil || p.Total != 40 || !reflect.DeepEqual(p.Stacks, want) {
				t.Fatalf("profile from stacks table (inline %d) = %+v, %v", inline, p, err)
			}
		}
		p, err := s.Profile(ctx, all())
		if err != nil || p.Total != 40 {
			t.Fatalf("total = %d, %v; want 40 (two distinct batches)", p.Total, err)
		}
		r, err := s.be.Query(ctx, "SELECT count(), uniqExact(stack_id) FROM "+s.table("stacks"))
		if err != nil || asInt(r.Data[0][0]) != 4 || asInt(r.Data[0][1]) != 4 {
			t.Fatalf("stacks rows = %v, %v; want each stack stored once", r, err)
		}
		if _, _, err := s.Ingest(ctx, "", knownBatch()); err == nil {
			t.Fatal("empty batch id accepted")
		}
	})
}

func TestFilters(t *testing.T) {
	eachBackend(t, Config{}, func(t *testing.T, s *Store) {
		ingest(t, s, "b", knownBatch())
		cases := []struct {
			name    string
			filters []model.Filter
			total   int64
		}{
			{"none", nil, 20},
			{"host", []model.Filter{{Key: "host", Value: "h1"}}, 13},
			{"version and host", []model.Filter{{Key: "version", Value: "v2"}, {Key: "host", Value: "h2"}}, 2},
			{"pid", []model.Filter{{Key: "pid", Value: "200"}}, 5},
			{"extra", []model.Filter{{Key: "region", Value: "eu"}}, 5},
			{"extra ored", []model.Filter{{Key: "region", Value: "eu"}, {Key: "region", Value: "us"}}, 7},
			{"extra and builtin", []model.Filter{{Key: "region", Value: "us"}, {Key: "zone", Value: "a"}, {Key: "comm", Value: "api"}}, 2},
			{"missing key is not empty value", []model.Filter{{Key: "region", Value: ""}}, 0},
			{"unknown key", []model.Filter{{Key: "nope", Value: "x"}}, 0},
			{"injection builtin", []model.Filter{{Key: "host", Value: "h1' OR 1=1 --"}}, 0},
			{"injection extra", []model.Filter{{Key: "region", Value: `x') OR ('1'='1`}}, 0},
			{"injection key", []model.Filter{{Key: "a') OR 1=1 OR has(label_keys, 'b", Value: "x"}}, 0},
			{"backslash", []model.Filter{{Key: "host", Value: `h1\' OR 1=1 OR host=\`}}, 0},
			{"statement", []model.Filter{{Key: "host", Value: "'; DROP TABLE samples; --"}}, 0},
			{"nul and newline", []model.Filter{{Key: "host", Value: "h1\x00\n\n"}}, 0},
		}
		for _, c := range cases {
			sel := all()
			sel.Filters = c.filters
			p, err := s.Profile(context.Background(), sel)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if p.Total != c.total {
				t.Errorf("%s: total %d, want %d", c.name, p.Total, c.total)
			}
		}
		if p, err := s.Profile(context.Background(), all()); err != nil || p.Total != 20 {
			t.Fatalf("after injections: %v, %v", p, err)
		}
		sel := all()
		sel.Filters = []model.Filter{{Key: "pid", Value: "1 OR 1=1"}}
		if _, err := s.Profile(context.Background(), sel); err == nil || !strings.Contains(err.Error(), "pid") {
			t.Fatalf("bad pid filter: %v", err)
		}
	})
}

func TestRollup(t *testing.T) {
	eachBackend(t, Config{HostGroups: 4}, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ingest(t, s, "b", knownBatch())
		rows, err := s.Rollup(ctx, model.RollupQuery{Service: "api", From: t0, To: t0.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		want := ComputeRollup(knownBatch(), 4, time.Minute)
		sortRollup(rows)
		if !reflect.DeepEqual(rows, want) {
			t.Fatalf("rollup = %+v\nwant %+v", rows, want)
		}
		sum := map[string][2]int64{}
		for _, r := range rows {
			v := sum[r.Function]
			sum[r.Function] = [2]int64{v[0] + r.Self, v[1] + r.Inclusive}
		}
		if sum["rec"] != [2]int64{3, 3} || sum[""] != [2]int64{20, 20} || sum["main"] != [2]int64{0, 20} {
			t.Fatalf("rollup sums = %v (recursion must count once)", sum)
		}
		rows, err = s.Rollup(ctx, model.RollupQuery{Service: "api", From: t0, To: t0.Add(time.Hour), MinShare: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		fns := map[string]bool{}
		for _, r := range rows {
			fns[r.Function] = true
		}
		if !reflect.DeepEqual(fns, map[string]bool{"": true, "main": true, "handle": true, "parse": true}) {
			t.Fatalf("min share 0.5 functions = %v", fns)
		}
		if _, err := s.Rollup(ctx, model.RollupQuery{From: t0, To: t0.Add(time.Hour)}); err == nil {
			t.Fatal("rollup without service accepted")
		}
		// Summed into 10-minute steps by the database: the same counts per
		// (version, host group, function) as summing the minutes here.
		rows, err = s.Rollup(ctx, model.RollupQuery{Service: "api", From: t0, To: t0.Add(time.Hour), Step: 10 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		type key struct {
			v, fn string
			g     uint8
			b     time.Time
		}
		wantStep := map[key][2]int64{}
		for _, r := range want {
			k := key{r.Version, r.Function, r.HostGroup, r.Bucket.Truncate(10 * time.Minute)}
			v := wantStep[k]
			wantStep[k] = [2]int64{v[0] + r.Self, v[1] + r.Inclusive}
		}
		gotStep := map[key][2]int64{}
		for _, r := range rows {
			gotStep[key{r.Version, r.Function, r.HostGroup, r.Bucket}] = [2]int64{r.Self, r.Inclusive}
		}
		if !reflect.DeepEqual(gotStep, wantStep) || len(rows) != len(wantStep) {
			t.Fatalf("10m rollup = %v\nwant %v", gotStep, wantStep)
		}
		if _, err := s.Rollup(ctx, model.RollupQuery{Service: "api", From: t0, To: t0.Add(time.Hour), Step: 1500 * time.Millisecond}); err == nil {
			t.Fatal("rollup with a step of 1.5s accepted")
		}
	})
}

func TestDiff(t *testing.T) {
	eachBackend(t, Config{}, func(t *testing.T, s *Store) {
		ingest(t, s, "b", knownBatch())
		base, cmp := all(), all()
		base.Filters = []model.Filter{{Key: "version", Value: "v1"}}
		cmp.Filters = []model.Filter{{Key: "version", Value: "v2"}}
		d, err := s.Diff(context.Background(), base, cmp, 3)
		if err != nil {
			t.Fatal(err)
		}
		if d.BaseTotal != 15 || d.CmpTotal != 5 {
			t.Fatalf("totals %d %d", d.BaseTotal, d.CmpTotal)
		}
		// handle: 15/15 = 100% in base, 0% in cmp; rec 0% -> 60%; gc 0% -> 40%.
		want := []model.Mover{
			{Function: "handle", BaseInclusivePct: 100, DeltaInclusivePct: -100},
			{Function: "parse", BaseSelfPct: 200.0 / 3, BaseInclusivePct: 200.0 / 3, DeltaInclusivePct: -200.0 / 3},
			{Function: "rec", CmpSelfPct: 60, CmpInclusivePct: 60, DeltaInclusivePct: 60},
		}
		if len(d.Movers) != 3 {
			t.Fatalf("movers = %+v", d.Movers)
		}
		for i := range want {
			if !moverClose(d.Movers[i], want[i]) {
				t.Errorf("mover %d = %+v, want %+v", i, d.Movers[i], want[i])
			}
		}
		main := d.Root.Children[0]
		if main.Name != "main" || main.Base != 15 || main.Cmp != 5 || main.BasePct != 100 || main.CmpPct != 100 || main.DeltaPct != 0 {
			t.Fatalf("main = %+v", main)
		}
	})
}

func moverClose(a, b model.Mover) bool {
	eq := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	return a.Function == b.Function && eq(a.BaseSelfPct, b.BaseSelfPct) && eq(a.CmpSelfPct, b.CmpSelfPct) &&
		eq(a.BaseInclusivePct, b.BaseInclusivePct) && eq(a.CmpInclusivePct, b.CmpInclusivePct) && eq(a.DeltaInclusivePct, b.DeltaInclusivePct)
}

func TestFindings(t *testing.T) {
	eachBackend(t, Config{}, func(t *testing.T, s *Store) {
		ctx := context.Background()
		recs := []model.FindingRecord{
			{ID: "f1", Kind: "regression", Service: "api", Created: t0, Body: json.RawMessage(`{"fn":"parse"}`)},
			{ID: "f2", Kind: "opportunity", Service: "api", Created: t0.Add(time.Hour), Body: json.RawMessage(`{"fn":"gc"}`)},
			{ID: "f3", Kind: "regression", Service: "db", Created: t0.Add(2 * time.Hour), Body: json.RawMessage(`{"x":"it's"}`)},
		}
		if err := s.PutFindings(ctx, recs); err != nil {
			t.Fatal(err)
		}
		// Replace f1.
		if err := s.PutFindings(ctx, []model.FindingRecord{{ID: "f1", Kind: "regression", Service: "api", Created: t0, Body: json.RawMessage(`{"fn":"parse","v":2}`)}}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Findings(ctx, model.FindingsQuery{})
		if err != nil || len(got) != 3 || got[0].ID != "f3" || got[2].ID != "f1" || string(got[2].Body) != `{"fn":"parse","v":2}` || !got[2].Created.Equal(t0) {
			t.Fatalf("findings = %+v, %v", got, err)
		}
		got, err = s.Findings(ctx, model.FindingsQuery{Service: "api", Kind: "regression"})
		if err != nil || len(got) != 1 || got[0].ID != "f1" {
			t.Fatalf("filtered findings = %+v, %v", got, err)
		}
		got, err = s.Findings(ctx, model.FindingsQuery{From: t0.Add(time.Minute), To: t0.Add(3 * time.Hour), Limit: 1})
		if err != nil || len(got) != 1 || got[0].ID != "f3" {
			t.Fatalf("ranged findings = %+v, %v", got, err)
		}
		if err := s.PutFindings(ctx, []model.FindingRecord{{ID: "bad", Body: json.RawMessage(`{`)}}); err == nil {
			t.Fatal("invalid JSON body accepted")
		}
	})
}

func TestRetention(t *testing.T) {
	eachBackend(t, Config{Retention: 48 * time.Hour}, func(t *testing.T, s *Store) {
		ctx := context.Background()
		r, err := s.be.Query(ctx, "SELECT engine_full FROM system.tables WHERE database = "+quote(s.lay.db)+" AND name = 'samples'")
		if err != nil || len(r.Data) != 1 {
			t.Fatalf("read table engine: %v, %v", r, err)
		}
		hasTTL := strings.Contains(asString(r.Data[0][0]), "TTL")
		if hasTTL != s.feat.TTL {
			t.Fatalf("engine %q: TTL present=%v, supported=%v", asString(r.Data[0][0]), hasTTL, s.feat.TTL)
		}
		if s.feat.TTL {
			return // the engine expires rows itself
		}
		old := knownBatch()
		for i := range old.Rows {
			old.Rows[i].TS -= 10 * 24 * 3600
		}
		ingest(t, s, "old", old)
		ingest(t, s, "new", knownBatch())
		n, err := s.EnforceRetention(ctx, t0.Add(time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("enforce retention dropped %d, %v; want 2 (samples, rollup)", n, err)
		}
		p, err := s.Profile(ctx, model.Selection{Service: "api"})
		if err != nil || p.Total != 20 {
			t.Fatalf("after retention total = %v, %v; want 20", p, err)
		}
	})
}

func TestFeaturesFor(t *testing.T) {
	cases := []struct {
		v    string
		want features
	}{
		{"18.16.1", features{}},
		{"19.5.3", features{}},
		{"19.6.1", features{TTL: true}},
		{"20.1.2.4", features{TTL: true, Codecs: true, LowCardinality: true, ThreadPriority: true}},
		{"26.5.3.1", features{TTL: true, Codecs: true, LowCardinality: true, ThreadPriority: true}},
	}
	for _, c := range cases {
		v, err := ParseVersion(c.v)
		if err != nil {
			t.Fatal(err)
		}
		if got := featuresFor(v); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.v, got, c.want)
		}
		lay := layout{db: "d"}
		ddl := strings.Join(lay.createStatements(featuresFor(v), 24*time.Hour), "\n")
		if strings.Contains(ddl, "TTL") != c.want.TTL || strings.Contains(ddl, "CODEC") != c.want.Codecs || strings.Contains(ddl, "LowCardinality") != c.want.LowCardinality {
			t.Errorf("%s: DDL does not match features:\n%s", c.v, ddl)
		}
	}
	if _, err := ParseVersion("x.y"); err == nil {
		t.Error("bad version parsed")
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{URI: "postgres://x"}, `unknown scheme "postgres"`},
		{Config{URI: "/data"}, "unknown scheme"},
		{Config{URI: "embedded:"}, "empty data directory"},
		{Config{URI: "embedded:/d?database=a-b"}, "not a plain identifier"},
		{Config{URI: "embedded:/d?foo=1"}, `unknown parameter "foo"`},
		{Config{URI: "clickhouse:///db"}, "no host"},
		{Config{URI: "clickhouse://h1/db"}, "needs a port"},
		{Config{URI: "clickhouse://u:secret@h1:9000/x;drop"}, "not a plain identifier"},
		{Config{URI: "clickhouse://h1:9000/db?ddl=zk"}, "ddl="},
		{Config{Retention: -time.Hour}, "negative"},
		{Config{HostGroups: 300}, "host groups"},
		{Config{RollupBucket: 1500 * time.Millisecond}, "whole seconds"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want it to mention %q", c.cfg, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
	tgt, err := parseURI("clickhouse://a:9000,b:9001/prof?cluster=c1&ddl=on_cluster&dial_timeout=5s")
	if err != nil || !reflect.DeepEqual(tgt.hosts, []string{"a:9000", "b:9001"}) || tgt.cluster != "c1" || !tgt.onCluster || tgt.database != "prof" || strings.Contains(tgt.dsn, "cluster") {
		t.Errorf("cluster uri = %+v, %v", tgt, err)
	}
	if _, err := Open(context.Background(), Config{URI: "embedded:/tmp/x", ChdbLib: "/nonexistent/libchdb.so"}); err == nil || !strings.Contains(err.Error(), "scripts/fetch-chdb.sh") {
		t.Errorf("missing chdb library: %v", err)
	}
}

func TestQuote(t *testing.T) {
	cases := map[string]string{
		"":         `''`,
		"abc":      `'abc'`,
		"it's":     `'it\'s'`,
		`a\b`:      `'a\\b'`,
		"a\x00b\n": `'a\x00b\x0A'`,
		"ünïcødé":  `'ünïcødé'`,
		`\'; DROP`: `'\\\'; DROP'`,
	}
	for in, want := range cases {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestComputeRollup(t *testing.T) {
	rows := ComputeRollup(knownBatch(), 1, time.Hour)
	got := map[string][2]int64{}
	for _, r := range rows {
		if !r.Bucket.Equal(t0) || r.HostGroup != 0 {
			t.Fatalf("row %+v: bucket/host group", r)
		}
		v := got[r.Version+"/"+r.Function]
		got[r.Version+"/"+r.Function] = [2]int64{v[0] + r.Self, v[1] + r.Inclusive}
	}
	want := map[string][2]int64{
		"v1/": {15, 15}, "v1/main": {0, 15}, "v1/handle": {0, 15}, "v1/parse": {10, 10}, "v1/write": {5, 5},
		"v2/": {5, 5}, "v2/main": {0, 5}, "v2/rec": {3, 3}, "v2/gc": {2, 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rollup = %v\nwant %v", got, want)
	}
	if g := HostGroup("h1", 16); g != HostGroup("h1", 16) || g >= 16 {
		t.Fatal("host group unstable or out of range")
	}
}

func TestTreesFromProfile(t *testing.T) {
	p := &model.Profile{Total: 6, Stacks: []model.StackCount{{Frames: []string{"a", "b", "a"}, Value: 4}, {Frames: []string{"a"}, Value: 2}, {Frames: []string{"z"}, Value: 0}}}
	top := model.TopFromProfile(p, 1)
	if len(top.Functions) != 1 || top.Functions[0] != (model.FunctionStat{Function: "a", Self: 6, Inclusive: 6, SelfPct: 100, InclusivePct: 100}) {
		t.Fatalf("top = %+v", top)
	}
	if got := flameString(model.FlameFromProfile(p)); got != "root 6/0 [a 6/2 [b 4/0 [a 4/4]]]" {
		t.Fatalf("flame = %s", got)
	}
	d := model.DiffProfiles(p, &model.Profile{}, 0)
	if d.Root.BasePct != 100 || d.Root.CmpPct != 0 || len(d.Movers) != 2 || d.Movers[0].Function != "a" {
		t.Fatalf("diff = %+v %+v", d.Root, d.Movers)
	}
	names := []string{}
	for _, m := range d.Movers {
		names = append(names, m.Function)
	}
	if !sort.StringsAreSorted(names) {
		t.Fatalf("equal movers not sorted by name: %v", names)
	}
}

func TestBulkWriter(t *testing.T) {
	eachBackend(t, Config{HostGroups: 4}, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := s.NewBulkWriter()
		for range 2 {
			if n, err := w.Write(ctx, knownBatch()); err != nil || n != 4 {
				t.Fatalf("bulk write = %d, %v", n, err)
			}
		}
		rows, err := s.Rollup(ctx, model.RollupQuery{Service: "api"})
		if err != nil || len(rows) != 0 {
			t.Fatalf("rollup before flush = %v, %v", rows, err)
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		rows, err = s.Rollup(ctx, model.RollupQuery{Service: "api"})
		if err != nil {
			t.Fatal(err)
		}
		want := ComputeRollup(knownBatch(), 4, time.Minute)
		for i := range want {
			want[i].Self *= 2
			want[i].Inclusive *= 2
		}
		sortRollup(rows)
		if !reflect.DeepEqual(rows, want) {
			t.Fatalf("rollup = %+v\nwant %+v", rows, want)
		}
		if p, err := s.Profile(ctx, all()); err != nil || p.Total != 40 {
			t.Fatalf("profile = %v, %v", p, err)
		}
	})
}

func TestIngestBatches(t *testing.T) {
	eachBackend(t, Config{}, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ingest(t, s, "old", knownBatch())
		res, err := s.IngestBatches(ctx, []IngestItem{
			{"a", knownBatch()}, {"old", knownBatch()}, {"a", knownBatch()}, {"b", knownBatch()},
		})
		want := []IngestResult{{4, false}, {0, true}, {0, true}, {4, false}}
		if err != nil || !reflect.DeepEqual(res, want) {
			t.Fatalf("ingest batches = %v, %v; want %v", res, err, want)
		}
		if p, err := s.Profile(ctx, all()); err != nil || p.Total != 60 {
			t.Fatalf("total = %v, %v; want 60 (old, a, b)", p, err)
		}
		rows, err := s.Rollup(ctx, model.RollupQuery{Service: "api"})
		var total int64
		for _, r := range rows {
			if r.Function == "" {
				total += r.Inclusive
			}
		}
		if err != nil || total != 60 {
			t.Fatalf("rollup total = %d, %v", total, err)
		}
		if _, err := s.IngestBatches(ctx, []IngestItem{{"x", nil}}); err == nil {
			t.Fatal("nil batch accepted")
		}
	})
}
