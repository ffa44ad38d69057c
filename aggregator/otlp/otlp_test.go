package otlp_test

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/otlp"
	"github.com/fleetprof/fleetprof/aggregator/otlp/otlptest"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
	"github.com/google/pprof/profile"
	"go.opentelemetry.io/collector/pdata/pprofile"
	"go.opentelemetry.io/collector/pdata/pprofile/pprofileotlp"
)

var t0 = time.Date(2026, 12, 4, 10, 0, 30, 0, time.UTC)

var (
	fnMain    = &profile.Function{ID: 1, Name: "main.main"}
	fnOuter   = &profile.Function{ID: 2, Name: "main.outer"}
	fnInlined = &profile.Function{ID: 3, Name: "main.inlined"}
	locMain   = &profile.Location{ID: 1, Line: []profile.Line{{Function: fnMain}}}
	// Line[0] is the inlined callee, as in pprof.
	locOuter = &profile.Location{ID: 2, Line: []profile.Line{{Function: fnInlined}, {Function: fnOuter}}}
	locAddr  = &profile.Location{ID: 3, Address: 0x1234, Mapping: &profile.Mapping{ID: 1, Start: 0x1000, File: "/bin/app"}}
)

// cpuProfile is a runtime/pprof-shaped profile: samples/count and cpu/nanoseconds.
func cpuProfile(samples ...*profile.Sample) *profile.Profile {
	return &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"}, Period: 20_000_000,
		TimeNanos: t0.UnixNano(), DurationNanos: int64(10 * time.Second), Sample: samples,
	}
}

func sample(n int64, locs ...*profile.Location) *profile.Sample {
	return &profile.Sample{Location: locs, Value: []int64{n, n * 20_000_000}}
}

// row is what a test compares of a sample batch row.
type row struct {
	TS     int64
	Labels string
	Stack  string
	Value  int64
	Period int64
}

func rows(samples []samplebatch.Sample) []row {
	out := make([]row, 0, len(samples))
	for _, s := range samples {
		l := s.Labels
		labels := fmt.Sprintf("service=%s version=%s host=%s ns=%s pod=%s container=%s comm=%s pid=%d", l.Service, l.Version, l.Host, l.Namespace, l.Pod, l.Container, l.Comm, l.PID)
		for _, e := range l.Extra {
			labels += " " + e.Key + "=" + e.Value
		}
		out = append(out, row{TS: s.TS, Labels: labels, Stack: strings.Join(s.Frames, ";"), Value: s.Value, Period: s.PeriodNS})
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}

func profiles(pd pprofile.Profiles) pprofile.ProfilesSlice {
	return pd.ResourceProfiles().At(0).ScopeProfiles().At(0).Profiles()
}

func str(pd pprofile.Profiles, s string) int32 {
	i, err := pprofile.SetString(pd.Dictionary().StringTable(), s)
	if err != nil {
		panic(err)
	}
	return i
}

const bucket = 1796378400 // t0's minute

func TestConvert(t *testing.T) {
	svc := map[string]any{"service.name": "api"}
	base := "service=api version= host= ns= pod= container= comm= pid=0"
	for _, c := range []struct {
		name     string
		prof     *profile.Profile
		resource map[string]any
		sample   map[string]any
		mutate   func(pd pprofile.Profiles)
		want     []row
		rejected int
	}{
		{name: "stacks root first, inlined frames expanded, one type stored",
			prof:     cpuProfile(sample(3, locOuter, locMain), sample(2, locMain), sample(1, locAddr, locMain)),
			resource: svc,
			want: []row{
				{bucket, base, "main.main", 2, 20_000_000},
				{bucket, base, "main.main;/bin/app+0x234", 1, 20_000_000},
				{bucket, base, "main.main;main.outer;main.inlined", 3, 20_000_000},
			}},
		{name: "resource, sample attributes mapped; sample wins; others dropped",
			prof: cpuProfile(sample(4, locMain)),
			resource: map[string]any{"service.name": "api", "service.version": "v2", "host.name": "h1", "k8s.namespace.name": "ns1",
				"k8s.pod.name": "p1", "container.id": "c1", "process.executable.name": "apibin", "process.pid": int64(42), "os.type": "linux"},
			sample: map[string]any{"thread.name": "gc", "service.version": "v3", "thread.id": int64(7)},
			want:   []row{{bucket, "service=api version=v3 host=h1 ns=ns1 pod=p1 container=c1 comm=apibin pid=42 thread=gc", "main.main", 4, 20_000_000}}},
		{name: "no service.name: the executable name, then unknown_service",
			prof:     cpuProfile(sample(1, locMain)),
			resource: map[string]any{"process.executable.name": "worker"},
			want:     []row{{bucket, "service=worker version= host= ns= pod= container= comm=worker pid=0", "main.main", 1, 20_000_000}}},
		{name: "unknown_service",
			prof: cpuProfile(sample(1, locMain)),
			want: []row{{bucket, "service=unknown_service version= host= ns= pod= container= comm= pid=0", "main.main", 1, 20_000_000}}},
		{name: "cpu nanoseconds alone are divided by the period",
			prof: cpuProfile(sample(5, locMain)), resource: svc,
			mutate: func(pd pprofile.Profiles) {
				profiles(pd).RemoveIf(func(p pprofile.Profile) bool { return p.SampleType().TypeStrindex() == str(pd, "samples") })
			},
			want: []row{{bucket, base, "main.main", 5, 20_000_000}}},
		{name: "cpu nanoseconds without a period: the default period",
			prof: cpuProfile(sample(5, locMain)), resource: svc,
			mutate: func(pd pprofile.Profiles) {
				profiles(pd).RemoveIf(func(p pprofile.Profile) bool { return p.SampleType().TypeStrindex() == str(pd, "samples") })
				profiles(pd).At(0).SetPeriod(0)
			},
			want: []row{{bucket, base, "main.main", 10, 10_000_000}}},
		{name: "timestamps without values: one sample each, in its minute",
			prof: cpuProfile(sample(1, locMain)), resource: svc,
			mutate: func(pd pprofile.Profiles) {
				s := profiles(pd).At(0).Samples().At(0)
				s.Values().FromRaw(nil)
				for _, d := range []time.Duration{0, time.Second, 40 * time.Second} {
					s.TimestampsUnixNano().Append(uint64(t0.Add(d).UnixNano()))
				}
			},
			want: []row{{bucket, base, "main.main", 2, 20_000_000}, {bucket + 60, base, "main.main", 1, 20_000_000}}},
		{name: "timestamps with values",
			prof: cpuProfile(sample(1, locMain)), resource: svc,
			mutate: func(pd pprofile.Profiles) {
				s := profiles(pd).At(0).Samples().At(0)
				s.Values().FromRaw([]int64{2, 5})
				s.TimestampsUnixNano().FromRaw([]uint64{uint64(t0.UnixNano()), uint64(t0.Add(time.Minute).UnixNano())})
			},
			want: []row{{bucket, base, "main.main", 2, 20_000_000}, {bucket + 60, base, "main.main", 5, 20_000_000}}},
		{name: "heap-like samples/count is rejected naming its period",
			prof: cpuProfile(sample(1, locMain)), resource: svc,
			mutate: func(pd pprofile.Profiles) {
				profiles(pd).RemoveIf(func(p pprofile.Profile) bool { return p.SampleType().TypeStrindex() == str(pd, "cpu") })
				p := profiles(pd).At(0)
				p.PeriodType().SetTypeStrindex(str(pd, "space"))
				p.PeriodType().SetUnitStrindex(str(pd, "bytes"))
			},
			rejected: 1},
		{name: "zero values store nothing",
			prof: cpuProfile(sample(0, locMain)), resource: svc},
	} {
		t.Run(c.name, func(t *testing.T) {
			pd, err := otlptest.FromPprof(c.prof, c.resource, c.sample)
			if err != nil {
				t.Fatal(err)
			}
			if c.mutate != nil {
				c.mutate(pd)
			}
			res, err := otlp.Convert(pd, otlp.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Rejected) != c.rejected {
				t.Errorf("rejected %q, want %d", res.Rejected, c.rejected)
			}
			for _, r := range res.Rejected {
				if !strings.Contains(r, "samples/count, period type space/bytes") {
					t.Errorf("rejection %q does not name the types", r)
				}
			}
			if got := rows(res.Samples); (len(got) > 0 || len(c.want) > 0) && !reflect.DeepEqual(got, c.want) {
				t.Errorf("rows\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// TestBatchID: the id depends on the content only (not the transport encoding),
// and leaves the request as it was.
func TestBatchID(t *testing.T) {
	mk := func(n int64) pprofile.Profiles {
		pd, err := otlptest.FromPprof(cpuProfile(sample(n, locMain)), map[string]any{"service.name": "api"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return pd
	}
	a, b := mk(1), mk(2)
	idA, err := otlp.BatchID(a)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := pprofileotlp.NewExportRequestFromProfiles(mk(1)).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := otlp.Decode(raw, true)
	if err != nil {
		t.Fatal(err)
	}
	idJSON, _ := otlp.BatchID(fromJSON)
	idB, _ := otlp.BatchID(b)
	if idA != idJSON || idA == idB || !strings.HasPrefix(idA, "otlp-") {
		t.Errorf("ids: %s, same content from JSON %s, other content %s", idA, idJSON, idB)
	}
	if res, err := otlp.Convert(a, otlp.Options{}); err != nil || len(res.Samples) != 1 {
		t.Errorf("convert after BatchID: %+v, %v", res, err)
	}
}

// FuzzDecode: no input panics the decoder; what it accepts are rows the sample
// batch encodes, with a service, positive values and bounded stacks.
func FuzzDecode(f *testing.F) {
	pd, err := otlptest.FromPprof(cpuProfile(sample(3, locOuter, locMain), sample(1, locAddr)),
		map[string]any{"service.name": "api", "process.pid": int64(7)}, map[string]any{"thread.name": "t"})
	if err != nil {
		f.Fatal(err)
	}
	seed, err := pprofileotlp.NewExportRequestFromProfiles(pd).MarshalProto()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte{})
	f.Add(seed[:len(seed)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		pd, err := otlp.Decode(data, false)
		if err != nil {
			return
		}
		res, err := otlp.Convert(pd, otlp.Options{Now: func() time.Time { return t0 }})
		if err != nil {
			if !errors.Is(err, otlp.ErrMalformed) {
				t.Fatalf("convert error that is not ErrMalformed: %v", err)
			}
			return
		}
		for _, s := range res.Samples {
			if s.Labels.Service == "" || s.Value <= 0 || len(s.Frames) == 0 || len(s.Frames) > 1024 || s.PeriodNS <= 0 {
				t.Fatalf("bad row %+v", s)
			}
		}
		if len(res.Samples) > 0 {
			if _, err := samplebatch.Encode(res.Samples); err != nil {
				t.Fatalf("encode converted rows: %v", err)
			}
		}
		if _, err := otlp.BatchID(pd); err != nil {
			t.Fatalf("batch id of a decoded request: %v", err)
		}
	})
}

// BenchmarkConvert: a request of 2,000 samples over 200 stacks 30 frames deep,
// with per-sample thread names (the eBPF profiler's shape).
func BenchmarkConvert(b *testing.B) {
	fns := make([]*profile.Location, 400)
	for i := range fns {
		fn := &profile.Function{ID: uint64(i + 1), Name: fmt.Sprintf("pkg.f%d", i)}
		fns[i] = &profile.Location{ID: uint64(i + 1), Line: []profile.Line{{Function: fn}}}
	}
	p := cpuProfile()
	for i := range 2000 {
		stack := make([]*profile.Location, 30)
		for j := range stack {
			stack[j] = fns[(i%200+j*7)%len(fns)]
		}
		p.Sample = append(p.Sample, sample(int64(i%5+1), stack...))
	}
	pd, err := otlptest.FromPprof(p, map[string]any{"service.name": "api", "host.name": "h"}, map[string]any{"thread.name": "worker"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, err := otlp.Convert(pd, otlp.Options{})
		if err != nil || len(res.Samples) != 200 {
			b.Fatalf("%d rows, %v", len(res.Samples), err)
		}
	}
}
