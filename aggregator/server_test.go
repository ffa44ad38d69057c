package aggregator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/queryclient"
	"github.com/fleetprof/fleetprof/model"
	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// flameString renders a tree as "name total/self" lines indented by depth, children
// sorted by name, so trees from any store compare equal.
func flameString(n *model.FlameNode) string {
	var b strings.Builder
	var walk func(n *model.FlameNode, depth int)
	walk = func(n *model.FlameNode, depth int) {
		fmt.Fprintf(&b, "%s%s %d/%d\n", strings.Repeat("  ", depth), n.Name, n.Total, n.Self)
		kids := append([]*model.FlameNode(nil), n.Children...)
		sort.Slice(kids, func(i, j int) bool { return kids[i].Name < kids[j].Name })
		for _, c := range kids {
			walk(c, depth+1)
		}
	}
	walk(n, 0)
	return b.String()
}

func TestIngestAndQuery(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			ts := startServer(t, be.open(t), Config{Token: "s3cret"})
			svc := uniqueService(t)
			bucket := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
			good := encode(t, dataset(svc, bucket))
			good2 := encode(t, dataset(svc, bucket.Add(time.Minute)))
			resps, err := write(ctx, ts.conn, "s3cret",
				&ingestv1.WriteRequest{BatchId: svc + "-1", ArrowIpc: good},
				&ingestv1.WriteRequest{BatchId: svc + "-1", ArrowIpc: good},
				&ingestv1.WriteRequest{BatchId: svc + "-bad", ArrowIpc: []byte("definitely not arrow")},
				&ingestv1.WriteRequest{BatchId: "", ArrowIpc: good2},
				&ingestv1.WriteRequest{BatchId: svc + "-future", ArrowIpc: encode(t, dataset(svc, time.Now().AddDate(5, 0, 0)))},
				&ingestv1.WriteRequest{BatchId: svc + "-2", ArrowIpc: good2},
			)
			if err != nil {
				t.Fatalf("write: %v", err)
			}
			want := []struct {
				st   ingestv1.WriteResponse_Status
				rows int64
				err  string
			}{
				{ingestv1.WriteResponse_STATUS_ACKED, 4, ""},
				{ingestv1.WriteResponse_STATUS_DUPLICATE, 0, ""},
				{ingestv1.WriteResponse_STATUS_REJECTED, 0, "not an arrow ipc stream"},
				{ingestv1.WriteResponse_STATUS_REJECTED, 0, "batch_id is empty"},
				{ingestv1.WriteResponse_STATUS_REJECTED, 0, "ts"},
				{ingestv1.WriteResponse_STATUS_ACKED, 4, ""},
			}
			for i, w := range want {
				r := resps[i]
				if r.Status != w.st || r.Rows != w.rows || !strings.Contains(r.Error, w.err) || (w.err == "") != (r.Error == "") {
					t.Errorf("response %d = %v rows=%d err=%q; want %v rows=%d err~%q", i, r.Status, r.Rows, r.Error, w.st, w.rows, w.err)
				}
			}

			sel := model.Selection{Service: svc}
			top, err := ts.client.Top(ctx, sel, 10)
			if err != nil {
				t.Fatal(err)
			}
			if top.Total != 28 {
				t.Errorf("top total = %d, want 28 (two batches of 14, duplicate not counted)", top.Total)
			}
			gotTop := map[string][2]int64{}
			for _, f := range top.Functions {
				gotTop[f.Function] = [2]int64{f.Self, f.Inclusive}
			}
			wantTop := map[string][2]int64{"b": {10, 10}, "r": {8, 8}, "a": {6, 16}, "c": {4, 4}, "main": {0, 28}}
			if !reflect.DeepEqual(gotTop, wantTop) {
				t.Errorf("top = %v, want %v", gotTop, wantTop)
			}

			flame, err := ts.client.Flame(ctx, sel)
			if err != nil {
				t.Fatal(err)
			}
			wantFlame := "root 28/0\n  main 28/0\n    a 16/6\n      b 10/10\n    c 4/4\n    r 8/0\n      r 8/8\n"
			if got := flameString(flame); got != wantFlame {
				t.Errorf("flame:\n%s\nwant:\n%s", got, wantFlame)
			}

			folded, err := ts.client.ProfileBytes(ctx, sel, "folded")
			if err != nil {
				t.Fatal(err)
			}
			if want := "main;a 6\nmain;a;b 10\nmain;c 4\nmain;r;r 8\n"; string(folded) != want {
				t.Errorf("folded = %q, want %q", folded, want)
			}

			// Filters: built-in label, extra label, two values of one key ORed.
			for _, tc := range []struct {
				filters []model.Filter
				total   int64
			}{
				{[]model.Filter{{Key: "host", Value: "h1"}}, 14},
				{[]model.Filter{{Key: "version", Value: "v2"}}, 12},
				{[]model.Filter{{Key: "region", Value: "eu-1"}, {Key: "host", Value: "h2"}}, 14},
				{[]model.Filter{{Key: "version", Value: "v1"}, {Key: "version", Value: "v2"}}, 28},
				{[]model.Filter{{Key: "version", Value: "v1' OR 1=1 --"}}, 0},
			} {
				top, err := ts.client.Top(ctx, model.Selection{Service: svc, Filters: tc.filters}, 10)
				if err != nil {
					t.Fatalf("filters %v: %v", tc.filters, err)
				}
				if top.Total != tc.total {
					t.Errorf("filters %v: total %d, want %d", tc.filters, top.Total, tc.total)
				}
			}

			svcs, err := ts.client.Services(ctx, time.Time{}, time.Time{})
			if err != nil || !contains(svcs, svc) {
				t.Errorf("services = %v, %v; want %q among them", svcs, err, svc)
			}
			vals, err := ts.client.LabelValues(ctx, sel, "version")
			if err != nil || !reflect.DeepEqual(vals, []string{"v1", "v2"}) {
				t.Errorf("label values = %v, %v; want [v1 v2]", vals, err)
			}
			keys, err := ts.client.LabelKeys(ctx, sel)
			if err != nil || !contains(keys, "region") {
				t.Errorf("label keys = %v, %v; want region among them", keys, err)
			}

			pts, err := ts.client.Series(ctx, sel, "a", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(pts) != 2 || pts[0].Inclusive != 8 || pts[0].Total != 14 || !pts[0].Time.Equal(bucket) {
				t.Errorf("series of a = %+v, want 2 points of 8/14 from %v", pts, bucket)
			}
			vs, err := ts.client.Versions(ctx, svc, time.Time{}, time.Time{})
			if err != nil || len(vs) != 2 || vs[0].Samples+vs[1].Samples != 28 {
				t.Errorf("versions = %+v, %v; want v1 and v2 with 28 samples", vs, err)
			}

			d, err := ts.client.Diff(ctx,
				model.Selection{Service: svc, Filters: []model.Filter{{Key: "version", Value: "v1"}}},
				model.Selection{Service: svc, Filters: []model.Filter{{Key: "version", Value: "v2"}}}, 5)
			if err != nil {
				t.Fatal(err)
			}
			if d.BaseTotal != 16 || d.CmpTotal != 12 || len(d.Movers) == 0 {
				t.Errorf("diff totals = %d/%d movers %d; want 16/12 and some movers", d.BaseTotal, d.CmpTotal, len(d.Movers))
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestAuth(t *testing.T) {
	ts := startServer(t, newMemStore(), Config{Token: "right"})
	svc := uniqueService(t)
	req := &ingestv1.WriteRequest{BatchId: "x", ArrowIpc: encode(t, dataset(svc, time.Now().Truncate(time.Minute)))}
	for _, tc := range []struct {
		name, token, wantMsg string
	}{
		{"missing", "", "missing credentials"},
		{"wrong", "wrong", "invalid bearer token"},
		{"prefix of right", "righ", "invalid bearer token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := write(context.Background(), ts.conn, tc.token, req)
			if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err = %v, want Unauthenticated with %q", err, tc.wantMsg)
			}
		})
	}
	resps, err := write(context.Background(), ts.conn, "right", req)
	if err != nil || resps[0].Status != ingestv1.WriteResponse_STATUS_ACKED {
		t.Fatalf("right token: %v %v", resps, err)
	}
}

func TestStorageFailureIsFailedNotFatal(t *testing.T) {
	st := newMemStore()
	ts := startServer(t, st, Config{})
	svc := uniqueService(t)
	data := encode(t, dataset(svc, time.Now().Truncate(time.Minute)))
	st.setFail(errors.New("disk on fire"))
	resps, err := write(context.Background(), ts.conn, "", &ingestv1.WriteRequest{BatchId: "1", ArrowIpc: data})
	if err != nil {
		t.Fatal(err)
	}
	if r := resps[0]; r.Status != ingestv1.WriteResponse_STATUS_FAILED || !strings.Contains(r.Error, "disk on fire") {
		t.Fatalf("response = %v %q, want FAILED naming the storage error", r.Status, r.Error)
	}
	st.setFail(nil)
	resps, err = write(context.Background(), ts.conn, "", &ingestv1.WriteRequest{BatchId: "1", ArrowIpc: data})
	if err != nil || resps[0].Status != ingestv1.WriteResponse_STATUS_ACKED {
		t.Fatalf("retry after failure: %v %v, want ACKED", resps, err)
	}
}

// TestGracefulShutdown stops the server while a batch is being stored: its ack
// must still reach the client, and Serve must return nil.
func TestGracefulShutdown(t *testing.T) {
	st := newMemStore()
	st.gate = make(chan struct{})
	st.entered = make(chan string, 1)
	ts := startServer(t, st, Config{ShutdownTimeout: time.Minute})
	svc := uniqueService(t)
	data := encode(t, dataset(svc, time.Now().Truncate(time.Minute)))

	stream, err := ingestv1.NewIngestServiceClient(ts.conn).Write(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&ingestv1.WriteRequest{BatchId: "inflight", ArrowIpc: data}); err != nil {
		t.Fatal(err)
	}
	<-st.entered // the store is now holding the batch
	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop() }()
	// Give shutdown a moment to begin; correctness doesn't depend on it.
	time.Sleep(50 * time.Millisecond)
	close(st.gate)
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("in-flight batch lost its ack: %v", err)
	}
	if resp.Status != ingestv1.WriteResponse_STATUS_ACKED || resp.Rows != 4 {
		t.Fatalf("in-flight batch: %v rows=%d, want ACKED rows=4", resp.Status, resp.Rows)
	}
	// The stream then ends as the server drains.
	if _, err := stream.Recv(); err == nil {
		t.Fatal("stream still open after shutdown")
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve returned %v after a clean shutdown", err)
	}
	if len(st.rows) != 4 {
		t.Fatalf("store has %d rows, want 4", len(st.rows))
	}
}

func getJSON(t *testing.T, base, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("GET %s: body %q is not a JSON object", path, body)
	}
	return resp.StatusCode, m
}

func TestHTTPErrors(t *testing.T) {
	st := newMemStore()
	ts := startServer(t, st, Config{})
	hs := ts.httpURL
	for _, tc := range []struct {
		path     string
		code     int
		wantText string
	}{
		{"/api/v1/top?from=yesterday", 400, "parameter from"},
		{"/api/v1/top?to=2026-13-01T00:00:00Z", 400, "parameter to"},
		{"/api/v1/top?from=now-1h&to=now-2h", 400, "parameter from"},
		{"/api/v1/top?filter=novalue", 400, "parameter filter"},
		{"/api/v1/top?filter==v", 400, "parameter filter"},
		{"/api/v1/top?filter=a%20b=v", 400, "parameter filter"},
		{"/api/v1/top?profile_type=heap", 400, "parameter profile_type"},
		{"/api/v1/diff?cmp_profile_type=A/B", 400, "parameter cmp_profile_type"},
		{"/api/v1/top?limit=0", 400, "parameter limit"},
		{"/api/v1/top?limit=many", 400, "parameter limit"},
		{"/api/v1/profile?format=xml", 400, "parameter format"},
		{"/api/v1/diff?base_from=nope", 400, "parameter base_from"},
		{"/api/v1/diff?cmp_filter=x", 400, "parameter cmp_filter"},
		{"/api/v1/diff?movers=-1", 400, "parameter movers"},
		{"/api/v1/label/bad%20key/values", 400, "parameter key"},
		{"/api/v1/nope", 404, "no API route"},
		{"/api/v2/top", 404, "no API route"},
		{"/api/v1/top?from=now-2h&to=now-1h&filter=version=v1'%3B%20DROP%20TABLE%20samples%3B--", 200, ""},
		{"/api/v1/top?from=1700000000&to=1700003600.5", 200, ""},
		{"/api/v1/series", 400, "parameter function"},
		{"/api/v1/series?function=f&step=0s", 400, "parameter step"},
		{"/api/v1/series?function=f&step=1s&from=now-30d", 400, "parameter step"},
		{"/api/v1/versions", 400, "parameter service"},
		{"/api/v1/findings?from=later", 400, "parameter from"},
		{"/api/v1/findings?limit=1000000", 400, "parameter limit"},
		{"/api/v1/findings?kind=regression", 200, ""},
		{"/api/v1/top?filter=version=" + strings.Repeat("x", MaxParamValueBytes+1), 400, "parameter filter"},
		{"/api/v1/top?service=" + strings.Repeat("s", MaxParamValueBytes+1), 400, "parameter service"},
		{"/api/v1/top?" + strings.Repeat("filter=k=v&", MaxFilters+1), 400, "parameter filter"},
		{"/api/v1/diff?" + strings.Repeat("filter=k=v&cmp_filter=k=v&", MaxFilters/2+1), 400, "parameter cmp_filter"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			code, m := getJSON(t, hs, tc.path)
			if code != tc.code {
				t.Fatalf("status %d, want %d (%v)", code, tc.code, m)
			}
			if tc.wantText != "" && !strings.Contains(fmt.Sprint(m["error"]), tc.wantText) {
				t.Fatalf("error %q does not name %q", m["error"], tc.wantText)
			}
		})
	}
	// A filter value is passed to the store verbatim.
	getJSON(t, hs, "/api/v1/top?filter="+url.QueryEscape(`version=v1" OR '1'='1`))
	if got := st.lastSel.Filters; len(got) != 1 || got[0] != (model.Filter{Key: "version", Value: `v1" OR '1'='1`}) {
		t.Fatalf("store got filters %+v", got)
	}
	// Engine text (it carries SQL) is logged, never answered.
	st.setFail(errors.New("DB::Exception: Cannot parse input: SELECT sum(value) FROM samples"))
	code, m := getJSON(t, hs, "/api/v1/top")
	if body := fmt.Sprint(m["error"]); code != 500 || strings.Contains(body, "DB::") || strings.Contains(body, "SELECT") {
		t.Fatalf("storage failure: %d %v, want a generic 500", code, m)
	}
	if code, _ := getJSON(t, hs, "/readyz"); code != 503 {
		t.Fatalf("readyz with store down = %d, want 503", code)
	}
}

func TestHealthMetricsAndUI(t *testing.T) {
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ui:"+r.URL.Path) })
	ts := startServer(t, newMemStore(), Config{}, WithUI(ui))
	svc := uniqueService(t)
	if _, err := write(context.Background(), ts.conn, "", &ingestv1.WriteRequest{BatchId: "m1",
		ArrowIpc: encode(t, dataset(svc, time.Now().Truncate(time.Minute)))}); err != nil {
		t.Fatal(err)
	}
	hs := ts.httpURL
	for _, tc := range []struct{ path, want string }{
		{"/healthz", `"ok"`},
		{"/readyz", `"ready"`},
		{"/metrics", `fleetprof_ingest_batches_total{status="acked"} 1`},
		{"/metrics", `fleetprof_ingest_rows_total 4`},
		{"/", "ui:/"},
		{"/flame/x", "ui:/flame/x"},
	} {
		resp, err := http.Get(hs + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), tc.want) {
			t.Errorf("GET %s = %d, body lacks %q", tc.path, resp.StatusCode, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "tok")
	os.WriteFile(tokFile, []byte("abc\n"), 0o600)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"defaults", Config{}, ""},
		{"bad grpc addr", Config{GRPCAddr: "nope"}, "grpc address"},
		{"bad http addr", Config{HTTPAddr: "x:y:z"}, "http address"},
		{"bad storage", Config{Storage: "postgres://x"}, "storage"},
		{"token twice", Config{Token: "a", TokenFile: tokFile}, "token"},
		{"cert without key", Config{TLSCert: "c.pem"}, "tls"},
		{"tiny messages", Config{MaxMessageBytes: 10}, "max message bytes"},
		{"negative timeout", Config{ShutdownTimeout: -time.Second}, "shutdown timeout"},
		{"server uri", Config{Storage: "clickhouse://127.0.0.1:9000/fleetprof"}, ""},
		{"stack cache off", Config{StackCache: -1}, ""},
		{"bad stack cache", Config{StackCache: -2}, "stack cache"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.want)
			}
		})
	}
	if tok, err := (Config{TokenFile: tokFile}).token(); err != nil || tok != "abc" {
		t.Fatalf("token file: %q %v", tok, err)
	}
	if _, err := New(Config{TokenFile: filepath.Join(dir, "missing")}, newMemStore(), nil); err == nil {
		t.Fatal("New with a missing token file: no error")
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"now", now, false},
		{"now-1h", now.Add(-time.Hour), false},
		{"now-90m", now.Add(-90 * time.Minute), false},
		{"now-2d", now.Add(-48 * time.Hour), false},
		{"now+5m", now.Add(5 * time.Minute), false},
		{"1700000000", time.Unix(1700000000, 0).UTC(), false},
		{"1700000000.5", time.Unix(1700000000, 5e8).UTC(), false},
		{"2026-01-01T00:00:00Z", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"2026-01-01T00:00:00.123+02:00", time.Date(2025, 12, 31, 22, 0, 0, 123e6, time.UTC), false},
		{"yesterday", time.Time{}, true},
		{"now-", time.Time{}, true},
		{"now-1x", time.Time{}, true},
		{"now--1h", time.Time{}, true},
		{"-5", time.Time{}, true},
		{"NaN", time.Time{}, true},
		{"1e300", time.Time{}, true},
	} {
		got, err := ParseTime(tc.in, now)
		if (err != nil) != tc.err || !tc.err && !got.Equal(tc.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseSelectionDiffSides(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	q := url.Values{
		"service":     {"api"},
		"filter":      {"region=eu"},
		"base_filter": {"version=v1"},
		"cmp_filter":  {"version=v2"},
		"cmp_from":    {"now-30m"},
	}
	base, err := parseSelection(q, "base_", now)
	if err != nil {
		t.Fatal(err)
	}
	cmp, err := parseSelection(q, "cmp_", now)
	if err != nil {
		t.Fatal(err)
	}
	wantBase := model.Selection{Service: "api", From: now.Add(-time.Hour), To: now,
		Filters: []model.Filter{{Key: "region", Value: "eu"}, {Key: "version", Value: "v1"}}}
	wantCmp := model.Selection{Service: "api", From: now.Add(-30 * time.Minute), To: now,
		Filters: []model.Filter{{Key: "region", Value: "eu"}, {Key: "version", Value: "v2"}}}
	if !reflect.DeepEqual(base, wantBase) || !reflect.DeepEqual(cmp, wantCmp) {
		t.Fatalf("base %+v\ncmp %+v", base, cmp)
	}
	// The client encodes what the server parses.
	enc := queryclient.SelectionValues(wantBase, "base_", nil)
	back, err := parseSelection(enc, "base_", now)
	if err != nil || !reflect.DeepEqual(back, wantBase) {
		t.Fatalf("client encoding round trip: %+v %v", back, err)
	}
}

// TestPipelinedStream sends batches without waiting for acks and closes its side:
// every batch is answered, in order, before the stream ends.
func TestPipelinedStream(t *testing.T) {
	st := newMemStore()
	ts := startServer(t, st, Config{})
	svc := uniqueService(t)
	good := encode(t, dataset(svc, time.Now().Truncate(time.Minute)))
	stream, err := ingestv1.NewIngestServiceClient(ts.conn).Write(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"p0", "p1", "p1", "bad", "p2", "p3"}
	for _, id := range ids {
		data := good
		if id == "bad" {
			data = []byte{1, 2, 3}
		}
		if err := stream.Send(&ingestv1.WriteRequest{BatchId: id, ArrowIpc: data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	want := []ingestv1.WriteResponse_Status{
		ingestv1.WriteResponse_STATUS_ACKED, ingestv1.WriteResponse_STATUS_ACKED, ingestv1.WriteResponse_STATUS_DUPLICATE,
		ingestv1.WriteResponse_STATUS_REJECTED, ingestv1.WriteResponse_STATUS_ACKED, ingestv1.WriteResponse_STATUS_ACKED,
	}
	for i, id := range ids {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if resp.BatchId != id || resp.Status != want[i] {
			t.Fatalf("response %d = %s %v, want %s %v", i, resp.BatchId, resp.Status, id, want[i])
		}
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after all responses: %v, want EOF", err)
	}
}
