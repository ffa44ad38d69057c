package aggregator

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/otlp"
	"github.com/fleetprof/fleetprof/aggregator/otlp/otlptest"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
	"github.com/google/pprof/profile"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pprofile"
	"go.opentelemetry.io/collector/pdata/pprofile/pprofileotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

const otlpToken = "otlp-s3cret"

// otlpExporter sends an OTLP export the way an exporter does: over gRPC (the
// pdata client) or OTLP/HTTP (protobuf, gzip-compressed).
type otlpExporter struct {
	name   string
	export func(t *testing.T, ts *testServer, pd pprofile.Profiles) (pprofileotlp.ExportResponse, error)
}

var otlpExporters = []otlpExporter{
	{"grpc", func(t *testing.T, ts *testServer, pd pprofile.Profiles) (pprofileotlp.ExportResponse, error) {
		ctx := withToken(context.Background(), otlpToken)
		return pprofileotlp.NewGRPCClient(ts.conn).Export(ctx, pprofileotlp.NewExportRequestFromProfiles(pd))
	}},
	{"http", func(t *testing.T, ts *testServer, pd pprofile.Profiles) (pprofileotlp.ExportResponse, error) {
		body, err := pprofileotlp.NewExportRequestFromProfiles(pd).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		code, resp := postOTLP(t, ts, "application/x-protobuf", "Bearer "+otlpToken, gzipped(t, body))
		if code != http.StatusOK {
			var st spb.Status
			if err := proto.Unmarshal(resp, &st); err != nil {
				t.Fatalf("HTTP %d with a body that is no google.rpc.Status: %v", code, err)
			}
			// OTLP/HTTP: 400 is not retried, 503 is.
			if want := map[codes.Code]int{codes.InvalidArgument: http.StatusBadRequest, codes.Unavailable: http.StatusServiceUnavailable}[codes.Code(st.GetCode())]; code != want {
				t.Errorf("HTTP %d for %s, want %d", code, codes.Code(st.GetCode()), want)
			}
			return pprofileotlp.ExportResponse{}, status.ErrorProto(&st)
		}
		er := pprofileotlp.NewExportResponse()
		if err := er.UnmarshalProto(resp); err != nil {
			t.Fatal(err)
		}
		return er, nil
	}},
}

func postOTLP(t *testing.T, ts *testServer, contentType, auth string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, ts.httpURL+otlp.HTTPPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if len(body) > 2 && body[0] == 0x1f && body[1] == 0x8b {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// otlpResource is what an OpenTelemetry SDK in a pod would put on its profiles.
func otlpResource(svc string) map[string]any {
	return map[string]any{
		"service.name":            svc,
		"service.version":         "v1.4.2",
		"host.name":               "node-a",
		"k8s.namespace.name":      "shop",
		"k8s.pod.name":            "api-7f9c",
		"container.id":            "c0ffee",
		"process.executable.name": "api",
		"process.pid":             int64(os.Getpid()),
		"telemetry.sdk.language":  "go", // not a fleetprof label: dropped
	}
}

// hotShare is the samples and busyHot's inclusive share of a runtime/pprof CPU profile.
func hotShare(t *testing.T, p *profile.Profile) (total int64, pct float64) {
	t.Helper()
	var hot int64
	for _, s := range p.Sample {
		total += s.Value[0] // samples/count
		for _, l := range s.Location {
			if slicesHasFunc(l, ".busyHot") {
				hot += s.Value[0]
				break
			}
		}
	}
	if total == 0 {
		t.Fatal("the CPU profile has no samples")
	}
	return total, float64(hot) / float64(total) * 100
}

func slicesHasFunc(l *profile.Location, suffix string) bool {
	for _, ln := range l.Line {
		if ln.Function != nil && strings.HasSuffix(ln.Function.Name, suffix) {
			return true
		}
	}
	return false
}

// TestOTLPExport: a real CPU profile of this process, converted to OTLP with the
// OpenTelemetry pdata library, exported over gRPC and OTLP/HTTP (each twice, as
// a retry) into a real aggregator: query top shows busyHot with the profile's
// share, each sample once, under the resource's and samples' labels.
func TestOTLPExport(t *testing.T) {
	if testing.Short() {
		testenv.Skip(t, testenv.Short, "profiles %v of CPU time", profileCPU)
	}
	prof, err := profile.ParseData(cpuProfile(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(prof.SampleType) != 2 || prof.SampleType[0].Type != "samples" {
		t.Fatalf("runtime/pprof sample types %v, want samples/count and cpu/nanoseconds", prof.SampleType)
	}
	wantTotal, wantPct := hotShare(t, prof)
	for _, be := range backends {
		for _, ex := range otlpExporters {
			t.Run(be.name+"/"+ex.name, func(t *testing.T) {
				ts := startServer(t, be.open(t), Config{Token: otlpToken})
				svc := uniqueService(t)
				pd, err := otlptest.FromPprof(prof, otlpResource(svc), map[string]any{"thread.name": "worker-1"})
				if err != nil {
					t.Fatal(err)
				}
				for range 2 { // the second is an exporter's retry: stored once
					resp, err := ex.export(t, ts, pd)
					if err != nil {
						t.Fatalf("export: %v", err)
					}
					if n := resp.PartialSuccess().RejectedProfiles(); n != 0 {
						t.Fatalf("%d profiles rejected: %s", n, resp.PartialSuccess().ErrorMessage())
					}
				}
				ctx := context.Background()
				sel := model.Selection{Service: svc, From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Minute)}
				top, err := ts.client.Top(ctx, sel, 1000)
				if err != nil {
					t.Fatal(err)
				}
				if top.Total != wantTotal {
					t.Errorf("query top total %d samples, the profile has %d", top.Total, wantTotal)
				}
				if p, err := ts.client.Profile(ctx, sel); err != nil || p.PeriodNS != prof.Period {
					t.Errorf("stored profile %v, %v; want period %d ns, the profile's", p, err, prof.Period)
				}
				hot := "github.com/fleetprof/fleetprof/aggregator.busyHot"
				var got *model.FunctionStat
				for i, f := range top.Functions {
					if f.Function == hot {
						got = &top.Functions[i]
					}
				}
				if got == nil {
					t.Fatalf("%s missing from query top: %+v", hot, top.Functions)
				}
				t.Logf("query top: %d samples, %s inclusive %.2f%% (profile: %d samples, %.2f%%)", top.Total, hot, got.InclusivePct, wantTotal, wantPct)
				if math.Abs(got.InclusivePct-wantPct) > 0.01 || wantPct < 5 {
					t.Errorf("%s inclusive %.2f%%, the profile says %.2f%%", hot, got.InclusivePct, wantPct)
				}
				for key, want := range map[string]string{
					"version": "v1.4.2", "host": "node-a", "namespace": "shop", "pod": "api-7f9c",
					"container": "c0ffee", "comm": "api", "pid": strconv.Itoa(os.Getpid()), "thread": "worker-1",
				} {
					vals, err := ts.client.LabelValues(ctx, sel, key)
					if err != nil || len(vals) != 1 || vals[0] != want {
						t.Errorf("label %s = %v, %v; want [%s]", key, vals, err, want)
					}
				}
				keys, err := ts.client.LabelKeys(ctx, sel)
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range keys {
					if strings.Contains(k, "telemetry") {
						t.Errorf("unmapped attribute stored as label %q", k)
					}
				}
			})
		}
	}
}

// otlpCase builds a request from a small valid one and says what the answer is.
type otlpCase struct {
	name   string
	mutate func(pd pprofile.Profiles)
	// wantErr is a substring of the InvalidArgument message; "" means accepted.
	wantErr string
	// wantRejected is the partial success's count of profiles not stored.
	wantRejected int64
}

// smallProfile is a two-sample CPU profile (pprof form) of a fake service.
func smallProfile() *profile.Profile {
	fn := []*profile.Function{{ID: 1, Name: "main.main"}, {ID: 2, Name: "main.work"}}
	loc := []*profile.Location{{ID: 1, Line: []profile.Line{{Function: fn[0]}}}, {ID: 2, Line: []profile.Line{{Function: fn[1]}}}}
	return &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"}, Period: 10_000_000,
		TimeNanos: time.Now().UnixNano(), DurationNanos: int64(time.Second),
		Sample: []*profile.Sample{
			{Location: []*profile.Location{loc[1], loc[0]}, Value: []int64{3, 30_000_000}},
			{Location: []*profile.Location{loc[0]}, Value: []int64{1, 10_000_000}},
		},
		Function: fn, Location: loc,
	}
}

func setString(pd pprofile.Profiles, s string) int32 {
	i, _ := pprofile.SetString(pd.Dictionary().StringTable(), s)
	return i
}

// TestOTLPBadRequests: requests that cannot be stored get InvalidArgument
// (gRPC) or 400 (HTTP) naming what was wrong; other sample types are named.
func TestOTLPBadRequests(t *testing.T) {
	profiles := func(pd pprofile.Profiles) pprofile.ProfilesSlice {
		return pd.ResourceProfiles().At(0).ScopeProfiles().At(0).Profiles()
	}
	cases := []otlpCase{
		{name: "valid", mutate: func(pprofile.Profiles) {}},
		{name: "stack index out of range", wantErr: "stack index 99 out of range", mutate: func(pd pprofile.Profiles) {
			profiles(pd).At(0).Samples().At(0).SetStackIndex(99)
		}},
		{name: "function index out of range", wantErr: "function index 42 out of range", mutate: func(pd pprofile.Profiles) {
			pd.Dictionary().LocationTable().At(1).Lines().At(0).SetFunctionIndex(42)
		}},
		{name: "values and timestamps disagree", wantErr: "2 values but 1 timestamps", mutate: func(pd pprofile.Profiles) {
			s := profiles(pd).At(0).Samples().At(0)
			s.Values().Append(5)
			s.TimestampsUnixNano().Append(uint64(time.Now().UnixNano()))
		}},
		{name: "pid not a number", wantErr: "process.pid", mutate: func(pd pprofile.Profiles) {
			pd.ResourceProfiles().At(0).Resource().Attributes().PutStr("process.pid", "api")
		}},
		{name: "heap profile only", wantErr: "sample type alloc_space/bytes", mutate: func(pd pprofile.Profiles) {
			for _, p := range profiles(pd).All() {
				p.SampleType().SetTypeStrindex(setString(pd, "alloc_space"))
				p.SampleType().SetUnitStrindex(setString(pd, "bytes"))
				p.PeriodType().SetTypeStrindex(setString(pd, "space"))
				p.PeriodType().SetUnitStrindex(setString(pd, "bytes"))
			}
		}},
		{name: "cpu and off-cpu", wantRejected: 1, mutate: func(pd pprofile.Profiles) {
			off := profiles(pd).AppendEmpty()
			profiles(pd).At(0).CopyTo(off)
			off.SampleType().SetTypeStrindex(setString(pd, "off_cpu"))
			off.SampleType().SetUnitStrindex(setString(pd, "nanoseconds"))
		}},
		{name: "samples two days ahead", wantErr: "outside the accepted range", mutate: func(pd pprofile.Profiles) {
			for _, p := range profiles(pd).All() {
				p.SetTime(pcommon.NewTimestampFromTime(time.Now().Add(48 * time.Hour)))
			}
		}},
	}
	for _, ex := range otlpExporters {
		for _, c := range cases {
			t.Run(ex.name+"/"+c.name, func(t *testing.T) {
				ts := startServer(t, newMemStore(), Config{Token: otlpToken})
				pd, err := otlptest.FromPprof(smallProfile(), map[string]any{"service.name": uniqueService(t)}, nil)
				if err != nil {
					t.Fatal(err)
				}
				c.mutate(pd)
				resp, err := ex.export(t, ts, pd)
				if c.wantErr == "" {
					if err != nil {
						t.Fatalf("export: %v", err)
					}
					if got := resp.PartialSuccess().RejectedProfiles(); got != c.wantRejected {
						t.Errorf("rejected %d profiles (%q), want %d", got, resp.PartialSuccess().ErrorMessage(), c.wantRejected)
					}
					if c.wantRejected > 0 && !strings.Contains(resp.PartialSuccess().ErrorMessage(), "off_cpu/nanoseconds") {
						t.Errorf("partial success %q does not name the type", resp.PartialSuccess().ErrorMessage())
					}
					return
				}
				st, _ := status.FromError(err)
				if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), c.wantErr) {
					t.Errorf("got %v, want InvalidArgument containing %q", err, c.wantErr)
				}
			})
		}
	}
}

// TestOTLPHTTPErrors: what only OTLP/HTTP can get wrong, and the token on both.
func TestOTLPHTTPErrors(t *testing.T) {
	ts := startServer(t, newMemStore(), Config{Token: otlpToken})
	pd, err := otlptest.FromPprof(smallProfile(), map[string]any{"service.name": uniqueService(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	good, err := pprofileotlp.NewExportRequestFromProfiles(pd).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	jsonBody, err := pprofileotlp.NewExportRequestFromProfiles(pd).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	bearer := "Bearer " + otlpToken
	for _, c := range []struct {
		name, contentType, auth string
		body                    []byte
		want                    int
		wantMsg                 string
	}{
		{"protobuf", "application/x-protobuf", bearer, good, http.StatusOK, ""},
		{"json", "application/json", bearer, jsonBody, http.StatusOK, ""},
		{"basic auth", "application/x-protobuf", "Basic " + base64.StdEncoding.EncodeToString([]byte("otel:"+otlpToken)), good, http.StatusOK, ""},
		{"no token", "application/x-protobuf", "", good, http.StatusUnauthorized, ""},
		{"garbage", "application/x-protobuf", bearer, []byte("\xff\xff\xff not protobuf"), http.StatusBadRequest, "decode ExportProfilesServiceRequest"},
		{"text", "text/plain", bearer, good, http.StatusUnsupportedMediaType, "content type"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := postOTLP(t, ts, c.contentType, c.auth, c.body)
			if code != c.want {
				t.Fatalf("status %d (%q), want %d", code, body, c.want)
			}
			if c.wantMsg != "" {
				var st spb.Status
				if err := proto.Unmarshal(body, &st); err != nil || !strings.Contains(st.GetMessage(), c.wantMsg) {
					t.Errorf("body %q (%v), want a google.rpc.Status naming %q", body, err, c.wantMsg)
				}
			}
		})
	}
	// The body bound holds for what a gzip body decompresses to.
	small := startServer(t, newMemStore(), Config{Token: otlpToken, MaxMessageBytes: 1024})
	big, err := otlptest.FromPprof(smallProfile(), map[string]any{"service.name": strings.Repeat("s", 4096)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bigBody, err := pprofileotlp.NewExportRequestFromProfiles(big).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	code, body := postOTLP(t, small, "application/x-protobuf", bearer, gzipped(t, bigBody))
	var st spb.Status
	if err := proto.Unmarshal(body, &st); code != http.StatusBadRequest || err != nil || !strings.Contains(st.GetMessage(), "body over 1024 bytes") {
		t.Errorf("oversize gzip body: %d %q, want 400 naming the limit", code, body)
	}
	_, err = pprofileotlp.NewGRPCClient(ts.conn).Export(context.Background(), pprofileotlp.NewExportRequestFromProfiles(pd))
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC export without token: %v, want Unauthenticated", err)
	}
}

// TestOTLPStorageFailure: while the store fails, exports get the retryable
// answer (gRPC Unavailable, HTTP 503); the exporter's retry after it recovers
// is stored, once.
func TestOTLPStorageFailure(t *testing.T) {
	for _, ex := range otlpExporters {
		t.Run(ex.name, func(t *testing.T) {
			store := newMemStore()
			ts := startServer(t, store, Config{Token: otlpToken})
			svc := uniqueService(t)
			pd, err := otlptest.FromPprof(smallProfile(), map[string]any{"service.name": svc}, nil)
			if err != nil {
				t.Fatal(err)
			}
			store.setFail(errors.New("disk full"))
			_, err = ex.export(t, ts, pd)
			if st, _ := status.FromError(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "disk full") {
				t.Fatalf("export while the store fails: %v, want Unavailable naming the failure", err)
			}
			store.setFail(nil)
			for range 2 {
				if _, err := ex.export(t, ts, pd); err != nil {
					t.Fatalf("retry: %v", err)
				}
			}
			sel := model.Selection{Service: svc, From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Minute)}
			top, err := ts.client.Top(context.Background(), sel, 10)
			if err != nil || top.Total != 4 {
				t.Fatalf("stored %+v, %v; want the profile's 4 samples once", top, err)
			}
		})
	}
}

// TestSelfProfileOverOTLP: with --pprof the aggregator profiles itself
// (/debug/pprof/profile), and that profile, sent back to it over OTLP, shows
// where it spent its CPU.
func TestSelfProfileOverOTLP(t *testing.T) {
	if testing.Short() {
		testenv.Skip(t, testenv.Short, "profiles the aggregator for a second")
	}
	ts := startServer(t, newMemStore(), Config{Token: otlpToken, Pprof: true})
	done := make(chan struct{})
	busy := make(chan float64)
	go func() { // the aggregator's work while it is profiled: this process's CPU
		x := 0.0
		for {
			select {
			case <-done:
				busy <- x
				return
			default:
				x += busyHot(50_000)
			}
		}
	}()
	resp, err := http.Get(ts.httpURL + "/debug/pprof/profile?seconds=1")
	close(done)
	sink += <-busy
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/debug/pprof/profile: %d, %v", resp.StatusCode, err)
	}
	prof, err := profile.ParseData(data)
	if err != nil {
		t.Fatal(err)
	}
	svc := uniqueService(t)
	pd, err := otlptest.FromPprof(prof, map[string]any{"service.name": svc, "process.executable.name": "fleetprof"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := otlpExporters[0].export(t, ts, pd); err != nil {
		t.Fatal(err)
	}
	sel := model.Selection{Service: svc, From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Minute)}
	top, err := ts.client.Top(context.Background(), sel, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range top.Functions {
		if strings.HasSuffix(f.Function, ".busyHot") && f.Inclusive > 0 {
			t.Logf("self profile: %d samples, busyHot inclusive %.1f%%", top.Total, f.InclusivePct)
			return
		}
	}
	t.Errorf("busyHot missing from the aggregator's own profile: %+v", top.Functions)
}

// TestOTLPWithReadToken: with a read token set, OTLP/HTTP still takes the
// ingest token (what exporters hold), and the read token does not write.
func TestOTLPWithReadToken(t *testing.T) {
	ts := startServer(t, newMemStore(), Config{Token: otlpToken, ReadToken: "reader"})
	pd, err := otlptest.FromPprof(smallProfile(), map[string]any{"service.name": uniqueService(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := pprofileotlp.NewExportRequestFromProfiles(pd).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		auth string
		want int
	}{
		{"Bearer " + otlpToken, http.StatusOK},
		{"Bearer reader", http.StatusUnauthorized},
	} {
		if code, resp := postOTLP(t, ts, "application/x-protobuf", c.auth, body); code != c.want {
			t.Errorf("%s: %d %q, want %d", c.auth, code, resp, c.want)
		}
	}
}
