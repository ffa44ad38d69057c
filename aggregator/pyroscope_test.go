package aggregator

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/fleetprof/fleetprof/aggregator/pyroscope"
	"github.com/fleetprof/fleetprof/model"
	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
	pyroscopego "github.com/grafana/pyroscope-go"
	querierv1 "github.com/grafana/pyroscope/api/gen/proto/go/querier/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/querier/v1/querierv1connect"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"
)

// pyroscopeCPU is how much CPU the SDK test spends in busyHot: ~50 samples at 100 Hz.
const pyroscopeCPU = 500 * time.Millisecond

// TestPyroscopeSDKPushAndQuery: the real pyroscope-go SDK profiles this process and
// pushes to the aggregator (with the ingest token); the real Connect querier client
// (what Grafana's data source uses) then sees what fleetprof's own API sees.
func TestPyroscopeSDKPushAndQuery(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			const token = "s3cret"
			ts := startServer(t, be.open(t), Config{Token: token})
			svc := uniqueService(t)
			prof, err := pyroscopego.Start(pyroscopego.Config{
				ApplicationName:   svc,
				ServerAddress:     ts.httpURL,
				BasicAuthUser:     "fleetprof",
				BasicAuthPassword: token,
				Tags:              map[string]string{"region": "eu1", "version": "v2.1"},
				ProfileTypes:      []pyroscopego.ProfileType{pyroscopego.ProfileCPU},
				UploadRate:        time.Hour, // one upload, at Stop
			})
			if err != nil {
				t.Fatal(err)
			}
			start, deadline := cpuTime(), time.Now().Add(profileWallLimit)
			for cpuTime()-start < pyroscopeCPU && time.Now().Before(deadline) {
				sink += busyHot(200_000)
			}
			if err := prof.Stop(); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			sel := model.Selection{Service: svc, From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Minute)}
			top, err := ts.client.Top(ctx, sel, 20)
			if err != nil {
				t.Fatal(err)
			}
			if top.Total == 0 || len(top.Functions) == 0 {
				t.Fatalf("no samples stored for %s: %+v", svc, top)
			}
			var hot *model.FunctionStat
			for i, f := range top.Functions {
				if strings.HasSuffix(f.Function, ".busyHot") {
					hot = &top.Functions[i]
				}
			}
			if hot == nil || hot.SelfPct < 50 {
				t.Fatalf("busyHot not the main self function: %+v", top.Functions)
			}
			vals, err := ts.client.LabelValues(ctx, sel, "region")
			if err != nil || len(vals) != 1 || vals[0] != "eu1" {
				t.Fatalf("region values = %v, %v; want [eu1]", vals, err)
			}

			qc := querierv1connect.NewQuerierServiceClient(http.DefaultClient, ts.httpURL)
			startMS, endMS := sel.From.UnixMilli(), sel.To.UnixMilli()
			selector := `{service_name="` + svc + `", region=~"eu.*", version!="v1"}`
			pts, err := qc.ProfileTypes(ctx, connect.NewRequest(&querierv1.ProfileTypesRequest{Start: startMS, End: endMS}))
			if err != nil || len(pts.Msg.GetProfileTypes()) == 0 {
				t.Fatalf("ProfileTypes = %v, %v", pts, err)
			}
			names, err := qc.LabelNames(ctx, connect.NewRequest(&typesv1.LabelNamesRequest{Matchers: []string{selector}, Start: startMS, End: endMS}))
			if err != nil || !slices.Contains(names.Msg.GetNames(), "service_name") || !slices.Contains(names.Msg.GetNames(), "region") {
				t.Fatalf("LabelNames = %v, %v", names, err)
			}
			lv, err := qc.LabelValues(ctx, connect.NewRequest(&typesv1.LabelValuesRequest{Name: "service_name", Matchers: []string{selector}, Start: startMS, End: endMS}))
			if err != nil || len(lv.Msg.GetNames()) != 1 || lv.Msg.GetNames()[0] != svc {
				t.Fatalf("LabelValues = %v, %v", lv, err)
			}
			samplesType := "process_cpu:samples:count:cpu:nanoseconds"
			fg, err := qc.SelectMergeStacktraces(ctx, connect.NewRequest(&querierv1.SelectMergeStacktracesRequest{
				ProfileTypeID: samplesType, LabelSelector: selector, Start: startMS, End: endMS}))
			if err != nil {
				t.Fatal(err)
			}
			if got := fg.Msg.GetFlamegraph().GetTotal(); got != top.Total {
				t.Errorf("flame graph total %d, fleetprof top total %d", got, top.Total)
			}
			if !slices.Contains(fg.Msg.GetFlamegraph().GetNames(), hot.Function) {
				t.Errorf("flame graph names lack %s", hot.Function)
			}
			nsType := "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
			ns, err := qc.SelectMergeStacktraces(ctx, connect.NewRequest(&querierv1.SelectMergeStacktracesRequest{
				ProfileTypeID: nsType, LabelSelector: selector, Start: startMS, End: endMS}))
			if err != nil {
				t.Fatal(err)
			}
			p, err := ts.client.Profile(ctx, sel)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := ns.Msg.GetFlamegraph().GetTotal(), p.Total*p.PeriodNS; got != want {
				t.Errorf("nanoseconds total %d, want samples × period %d", got, want)
			}
			series, err := qc.SelectSeries(ctx, connect.NewRequest(&querierv1.SelectSeriesRequest{
				ProfileTypeID: samplesType, LabelSelector: selector, Start: startMS, End: endMS, Step: 60, GroupBy: []string{"region"}}))
			if err != nil {
				t.Fatal(err)
			}
			var sum float64
			for _, s := range series.Msg.GetSeries() {
				for _, p := range s.GetPoints() {
					sum += p.GetValue()
				}
			}
			if len(series.Msg.GetSeries()) != 1 || int64(sum) != top.Total {
				t.Errorf("SelectSeries: %d series summing to %v, want 1 summing to %d", len(series.Msg.GetSeries()), sum, top.Total)
			}
			side := &querierv1.SelectMergeStacktracesRequest{ProfileTypeID: samplesType, LabelSelector: selector, Start: startMS, End: endMS}
			diff, err := qc.Diff(ctx, connect.NewRequest(&querierv1.DiffRequest{Left: side, Right: side}))
			if err != nil {
				t.Fatal(err)
			}
			if d := diff.Msg.GetFlamegraph(); d.GetLeftTicks() != top.Total || d.GetRightTicks() != top.Total {
				t.Errorf("diff ticks %d/%d, want %d", d.GetLeftTicks(), d.GetRightTicks(), top.Total)
			}
			none, err := qc.SelectMergeStacktraces(ctx, connect.NewRequest(&querierv1.SelectMergeStacktracesRequest{
				ProfileTypeID: samplesType, LabelSelector: `{service_name="` + svc + `", region=~"us.*"}`, Start: startMS, End: endMS}))
			if err != nil || none.Msg.GetFlamegraph().GetTotal() != 0 {
				t.Errorf("non-matching selector: %v, %v", none, err)
			}
		})
	}
}

// TestPyroscopeProfileTypes: a service with CPU samples and an imported heap
// profile (alloc_space/bytes) lists both CPU types and Pyroscope's
// memory:alloc_space:bytes:space:bytes to the real Connect querier client, and
// each type's flame graph, series, pprof and __name__ see only its own rows.
// Stores that keep profile types only (the fake stores everything as CPU).
func TestPyroscopeProfileTypes(t *testing.T) {
	const heapID = "memory:alloc_space:bytes:space:bytes"
	for _, be := range backends {
		st := be.open(t)
		if _, ok := st.(pyroscope.ProfileTyper); !ok {
			continue
		}
		t.Run(be.name, func(t *testing.T) {
			ts := startServer(t, st, Config{})
			svc := uniqueService(t)
			at := time.Now().Truncate(time.Minute)
			heap := []samplebatch.Sample{
				{TS: at.Unix(), Labels: samplebatch.Labels{Service: svc, Host: "h1"}, Frames: []string{"main", "alloc"}, Value: 3 << 20, PeriodNS: 1},
				{TS: at.Unix(), Labels: samplebatch.Labels{Service: svc, Host: "h1"}, Frames: []string{"main", "parse"}, Value: 1 << 20, PeriodNS: 1},
			}
			heapIPC, err := samplebatch.EncodeProfile("alloc_space/bytes", heap)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			resps, err := write(ctx, ts.conn, "", &ingestv1.WriteRequest{BatchId: "cpu", ArrowIpc: encode(t, dataset(svc, at))},
				&ingestv1.WriteRequest{BatchId: "heap", ArrowIpc: heapIPC})
			if err != nil || resps[0].Status != ingestv1.WriteResponse_STATUS_ACKED || resps[1].Status != ingestv1.WriteResponse_STATUS_ACKED {
				t.Fatalf("write: %v, %v", resps, err)
			}
			qc := querierv1connect.NewQuerierServiceClient(http.DefaultClient, ts.httpURL)
			startMS, endMS := at.Add(-time.Minute).UnixMilli(), at.Add(time.Minute).UnixMilli()
			selector := `{service_name="` + svc + `"}`
			pts, err := qc.ProfileTypes(ctx, connect.NewRequest(&querierv1.ProfileTypesRequest{Start: startMS, End: endMS}))
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, pt := range pts.Msg.GetProfileTypes() {
				ids = append(ids, pt.GetID())
			}
			if want := []string{"process_cpu:cpu:nanoseconds:cpu:nanoseconds", "process_cpu:samples:count:cpu:nanoseconds", heapID}; !slices.Equal(ids, want) {
				t.Fatalf("ProfileTypes = %v, want %v", ids, want)
			}
			series, err := qc.Series(ctx, connect.NewRequest(&querierv1.SeriesRequest{Matchers: []string{selector}, Start: startMS, End: endMS}))
			if err != nil || len(series.Msg.GetLabelsSet()) != 3 {
				t.Fatalf("Series = %v, %v; want 3 label sets", series, err)
			}
			names, err := qc.LabelValues(ctx, connect.NewRequest(&typesv1.LabelValuesRequest{Name: "__name__", Matchers: []string{selector}, Start: startMS, End: endMS}))
			if err != nil || !slices.Equal(names.Msg.GetNames(), []string{"memory", "process_cpu"}) {
				t.Fatalf("__name__ values = %v, %v", names, err)
			}
			for _, tc := range []struct {
				name, typeID, selector string
				total                  int64
				has, lacks             string
			}{
				{"heap", heapID, selector, 4 << 20, "alloc", "b"},
				{"heap by __name__", heapID, `{service_name="` + svc + `", __name__="memory"}`, 4 << 20, "alloc", "b"},
				{"heap with cpu's __name__", heapID, `{service_name="` + svc + `", __name__="process_cpu"}`, 0, "", "alloc"},
				{"cpu samples", "process_cpu:samples:count:cpu:nanoseconds", selector, 14, "b", "alloc"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					req := &querierv1.SelectMergeStacktracesRequest{ProfileTypeID: tc.typeID, LabelSelector: tc.selector, Start: startMS, End: endMS}
					fg, err := qc.SelectMergeStacktraces(ctx, connect.NewRequest(req))
					if err != nil {
						t.Fatal(err)
					}
					fns := fg.Msg.GetFlamegraph().GetNames()
					if got := fg.Msg.GetFlamegraph().GetTotal(); got != tc.total || (tc.has != "" && !slices.Contains(fns, tc.has)) || slices.Contains(fns, tc.lacks) {
						t.Fatalf("flame graph total %d names %v; want %d with %q, without %q", got, fns, tc.total, tc.has, tc.lacks)
					}
					ser, err := qc.SelectSeries(ctx, connect.NewRequest(&querierv1.SelectSeriesRequest{ProfileTypeID: tc.typeID, LabelSelector: tc.selector, Start: startMS, End: endMS, Step: 60}))
					if err != nil {
						t.Fatal(err)
					}
					var sum float64
					for _, s := range ser.Msg.GetSeries() {
						for _, p := range s.GetPoints() {
							sum += p.GetValue()
						}
					}
					if int64(sum) != tc.total {
						t.Fatalf("SelectSeries sums to %v, want %d", sum, tc.total)
					}
				})
			}
			prof, err := qc.SelectMergeProfile(ctx, connect.NewRequest(&querierv1.SelectMergeProfileRequest{ProfileTypeID: heapID, //nolint:staticcheck // the pprof RPC Grafana's data source calls, and the one fleetprof serves
				LabelSelector: selector, Start: startMS, End: endMS}))
			if err != nil {
				t.Fatal(err)
			}
			var total int64
			for _, s := range prof.Msg.GetSample() {
				total += s.GetValue()[0]
			}
			st := prof.Msg.GetSampleType()
			if total != 4<<20 || len(st) != 1 || prof.Msg.GetStringTable()[st[0].GetType()] != "alloc_space" || prof.Msg.GetStringTable()[st[0].GetUnit()] != "bytes" {
				t.Fatalf("heap pprof: total %d, sample types %v", total, st)
			}
			if _, err := qc.SelectMergeStacktraces(ctx, connect.NewRequest(&querierv1.SelectMergeStacktracesRequest{ProfileTypeID: "memory:alloc_space:bytes:cpu:nanoseconds", LabelSelector: selector, Start: startMS, End: endMS})); connect.CodeOf(err) != connect.CodeInvalidArgument {
				t.Fatalf("a type id fleetprof does not serve: %v, want InvalidArgument", err)
			}
		})
	}
}

// TestPyroscopeIngestAuthAndTypes: /ingest needs the token, rejects non-CPU types
// naming them, and /debug/pprof is off by default.
func TestPyroscopeIngestAuthAndTypes(t *testing.T) {
	ts := startServer(t, newMemStore(), Config{Token: "tok"})
	ctx := context.Background()
	do := func(path, auth, body string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.httpURL+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		req.Header.Set("Content-Type", "text/plain")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		name, path, auth, body string
		want                   int
	}{
		{"no token", "/ingest?name=app&format=folded", "", "a;b 3\n", http.StatusUnauthorized},
		{"folded", "/ingest?name=app.cpu{env=x}&format=folded", "Bearer tok", "a;b 3\n", http.StatusOK},
		{"heap type", "/ingest?name=app.inuse_space&format=folded", "Bearer tok", "a;b 3\n", http.StatusUnprocessableEntity},
		{"bad line", "/ingest?name=app&format=folded", "Bearer tok", "a;b x\n", http.StatusBadRequest},
	} {
		if got := do(c.path, c.auth, c.body); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
	resp, err := http.Get(ts.httpURL + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without Pprof: status %d, want 404", resp.StatusCode)
	}
}

// TestPprofFlag: --pprof (Config.Pprof) serves the runtime's profiles.
func TestPprofFlag(t *testing.T) {
	ts := startServer(t, newMemStore(), Config{Pprof: true})
	resp, err := http.Get(ts.httpURL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/debug/pprof/goroutine with Pprof: status %d, want 200", resp.StatusCode)
	}
}
