package pprofconv

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
	"github.com/google/pprof/profile"
)

var fixedNow = func() time.Time { return time.Unix(1_760_000_000, 0) }

// cpuProfile builds a small Go-style CPU profile: main→work→(inlined) hash, main→idle.
func cpuProfile() *profile.Profile {
	fMain := &profile.Function{ID: 1, Name: "main.main"}
	fWork := &profile.Function{ID: 2, Name: "main.work"}
	fHash := &profile.Function{ID: 3, Name: "main.hash"}
	fIdle := &profile.Function{ID: 4, Name: "main.idle"}
	lMain := &profile.Location{ID: 1, Address: 0x10, Line: []profile.Line{{Function: fMain}}}
	// hash is inlined into work: innermost first.
	lWork := &profile.Location{ID: 2, Address: 0x20, Line: []profile.Line{{Function: fHash}, {Function: fWork}}}
	lIdle := &profile.Location{ID: 3, Address: 0x30, Line: []profile.Line{{Function: fIdle}}}
	lRaw := &profile.Location{ID: 4, Address: 0xbeef}
	return &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10_000_000,
		TimeNanos:  time.Unix(1_750_000_030, 0).UnixNano(),
		Sample: []*profile.Sample{
			{Location: []*profile.Location{lWork, lMain}, Value: []int64{3, 30_000_000}},
			{Location: []*profile.Location{lWork, lMain}, Value: []int64{2, 20_000_000}},
			{Location: []*profile.Location{lIdle, lMain}, Value: []int64{1, 10_000_000}, Label: map[string][]string{"request": {"GET"}}},
			{Location: []*profile.Location{lRaw, lMain}, Value: []int64{4, 40_000_000}},
			{Location: []*profile.Location{lIdle}, Value: []int64{0, 0}},
		},
		Location: []*profile.Location{lMain, lWork, lIdle, lRaw},
		Function: []*profile.Function{fMain, fWork, fHash, fIdle},
	}
}

func TestImport(t *testing.T) {
	labels := samplebatch.Labels{Service: "api", Version: "v1"}
	bucket := time.Unix(1_750_000_030, 0).Truncate(time.Minute).Unix()
	cpuOnly := cpuProfile()
	cpuOnly.SampleType = cpuOnly.SampleType[1:]
	for _, s := range cpuOnly.Sample {
		s.Value = s.Value[1:]
	}
	want := []samplebatch.Sample{
		{TS: bucket, Labels: labels, Frames: []string{"main.main", "main.work", "main.hash"}, Value: 5, PeriodNS: 10_000_000},
		{TS: bucket, Labels: samplebatch.Labels{Service: "api", Version: "v1", Extra: []samplebatch.Label{{Key: "request", Value: "GET"}}},
			Frames: []string{"main.main", "main.idle"}, Value: 1, PeriodNS: 10_000_000},
		{TS: bucket, Labels: labels, Frames: []string{"main.main", "0xbeef"}, Value: 4, PeriodNS: 10_000_000},
	}
	for _, tc := range []struct {
		name string
		p    *profile.Profile
	}{
		{"samples and cpu", cpuProfile()},
		{"cpu nanoseconds only", cpuOnly},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Import(tc.p, ImportOptions{Labels: labels, Now: fixedNow})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Import:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestImportErrors(t *testing.T) {
	empty := cpuProfile()
	empty.Sample = nil
	for _, tc := range []struct {
		name    string
		p       *profile.Profile
		service string
		want    string
	}{
		{"no service", cpuProfile(), "", "service label is required"},
		{"no samples", empty, "api", "no samples"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Import(tc.p, ImportOptions{Labels: samplebatch.Labels{Service: tc.service}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want containing %q", err, tc.want)
			}
		})
	}
	if _, err := Parse([]byte("not a profile"), ImportOptions{Labels: samplebatch.Labels{Service: "a"}}); err == nil {
		t.Fatal("Parse of garbage: no error")
	}
}

func TestImportDeepStackTruncated(t *testing.T) {
	p := cpuProfile()
	var locs []*profile.Location
	for i := 0; i < 2000; i++ {
		locs = append(locs, p.Location[0])
	}
	p.Sample = []*profile.Sample{{Location: locs, Value: []int64{1, 1}}}
	got, err := Import(p, ImportOptions{Labels: samplebatch.Labels{Service: "a"}, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got[0].Frames); n != maxFrames || got[0].Frames[0] != truncatedFrame {
		t.Fatalf("frames = %d, first %q; want %d starting with %q", n, got[0].Frames[0], maxFrames, truncatedFrame)
	}
	checkDecodes(t, got)
}

func TestExportRoundTrip(t *testing.T) {
	sp := &model.Profile{
		Stacks: []model.StackCount{
			{Frames: []string{"main", "a", "b"}, Value: 7},
			{Frames: []string{"main", "a"}, Value: 2},
			{Frames: []string{"main", "c;d"}, Value: 1},
		},
		Total:    10,
		PeriodNS: 1_000_000,
	}
	var buf bytes.Buffer
	if err := WritePprof(&buf, sp, time.Unix(1_750_000_000, 0), time.Hour); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		t.Fatalf("parse exported pprof: %v", err)
	}
	if err := p.CheckValid(); err != nil {
		t.Fatalf("exported pprof invalid: %v", err)
	}
	back, err := Import(p, ImportOptions{Labels: samplebatch.Labels{Service: "s"}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, s := range back {
		got[strings.Join(s.Frames, ";")] += s.Value
		if s.PeriodNS != 1_000_000 {
			t.Errorf("period = %d, want 1000000", s.PeriodNS)
		}
	}
	want := map[string]int64{"main;a;b": 7, "main;a": 2, "main;c;d": 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip = %v, want %v", got, want)
	}

	var folded bytes.Buffer
	if err := WriteFolded(&folded, sp); err != nil {
		t.Fatal(err)
	}
	if want := "main;a 2\nmain;a;b 7\nmain;c:d 1\n"; folded.String() != want {
		t.Errorf("folded = %q, want %q", folded.String(), want)
	}
}

// TestExportLocations: a frame with a location exports its function's filename
// and start line (and the line, the first one); one without has none, and the
// same name with and without a location gets two functions.
func TestExportLocations(t *testing.T) {
	sp := &model.Profile{
		Stacks: []model.StackCount{
			{Frames: []string{"main", "app.outer", "app.inner"}, Locations: []string{"", "/srv/app.py:10", "/srv/app.py:14"}, Value: 3},
			{Frames: []string{"main", "app.outer"}, Value: 1},
		},
		Total:    4,
		PeriodNS: 1_000_000,
	}
	var buf bytes.Buffer
	if err := WritePprof(&buf, sp, time.Unix(1_750_000_000, 0), time.Hour); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckValid(); err != nil {
		t.Fatalf("exported pprof invalid: %v", err)
	}
	type fn struct {
		file       string
		start, row int64
	}
	got := map[string][]fn{}
	for _, l := range p.Location {
		ln := l.Line[0]
		got[ln.Function.Name] = append(got[ln.Function.Name], fn{ln.Function.Filename, ln.Function.StartLine, ln.Line})
	}
	want := map[string][]fn{
		"main":      {{}},
		"app.outer": {{"/srv/app.py", 10, 10}, {}},
		"app.inner": {{"/srv/app.py", 14, 14}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("functions = %+v, want %+v", got, want)
	}
}

func checkDecodes(t testing.TB, samples []samplebatch.Sample) {
	t.Helper()
	data, err := samplebatch.Encode(samples)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	b, err := samplebatch.Decode(data, samplebatch.Limits{})
	if err != nil {
		t.Fatalf("imported samples do not decode: %v", err)
	}
	var want int64
	for _, s := range samples {
		want += s.Value
	}
	if b.Samples() != want {
		t.Fatalf("decoded %d samples, want %d", b.Samples(), want)
	}
}

func TestTestdataProfiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.pb.gz")
	if len(files) == 0 {
		t.Fatal("no testdata/*.pb.gz profiles")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(data, ImportOptions{Labels: samplebatch.Labels{Service: "svc"}})
			if strings.HasPrefix(filepath.Base(f), "heap") {
				if !errors.Is(err, ErrNotCPU) {
					t.Fatalf("heap profile: err = %v, want ErrNotCPU", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkDecodes(t, got)
		})
	}
}

// FuzzImport feeds arbitrary bytes to Parse: it must never panic, and whatever it
// accepts must encode into a batch that Decode accepts. Run it with a short
// minimization budget, or the fuzzer spends minutes shrinking each new 2 KB input:
//
//	go test -run XXX -fuzz FuzzImport -fuzzminimizetime 10x ./aggregator/pprofconv/
func FuzzImport(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.pb.gz")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	var buf bytes.Buffer
	if err := cpuProfile().WriteUncompressed(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		samples, err := Parse(data, ImportOptions{Labels: samplebatch.Labels{Service: "fuzz"}, Now: fixedNow})
		if err != nil {
			return
		}
		// pprof accepts profiles whose TimeNanos is far in the past or future;
		// the aggregator would reject those rows, which is fine, so only check the shape.
		for i := range samples {
			samples[i].TS = fixedNow().Unix()
		}
		data2, err := samplebatch.Encode(samples)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		if _, err := samplebatch.Decode(data2, samplebatch.Limits{Now: fixedNow}); err != nil && !errors.Is(err, samplebatch.ErrInvalid) {
			t.Fatalf("decode: %v", err)
		} else if err != nil {
			t.Fatalf("imported profile does not decode: %v", err)
		}
	})
}

func BenchmarkImport(b *testing.B) {
	data, err := os.ReadFile("testdata/cpu.pb.gz")
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		samples, err := Parse(data, ImportOptions{Labels: samplebatch.Labels{Service: "b"}})
		if err != nil {
			b.Fatal(err)
		}
		enc, err := samplebatch.Encode(samples)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := samplebatch.Decode(enc, samplebatch.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestImportRefusesNonCPU(t *testing.T) {
	fn := &profile.Function{ID: 1, Name: "main.alloc"}
	loc := &profile.Location{ID: 1, Line: []profile.Line{{Function: fn}}}
	for name, types := range map[string][]*profile.ValueType{
		"heap":      {{Type: "alloc_objects", Unit: "count"}, {Type: "alloc_space", Unit: "bytes"}, {Type: "inuse_objects", Unit: "count"}, {Type: "inuse_space", Unit: "bytes"}},
		"goroutine": {{Type: "goroutine", Unit: "count"}},
		"mutex":     {{Type: "contentions", Unit: "count"}, {Type: "delay", Unit: "nanoseconds"}},
	} {
		t.Run(name, func(t *testing.T) {
			vals := make([]int64, len(types))
			for i := range vals {
				vals[i] = 1000
			}
			p := &profile.Profile{SampleType: types, Function: []*profile.Function{fn}, Location: []*profile.Location{loc},
				Sample: []*profile.Sample{{Location: []*profile.Location{loc}, Value: vals}}}
			_, err := Import(p, ImportOptions{Labels: samplebatch.Labels{Service: "s"}})
			if !errors.Is(err, ErrNotCPU) || !strings.Contains(err.Error(), types[len(types)-1].Type) {
				t.Fatalf("err = %v, want ErrNotCPU naming the sample types", err)
			}
		})
	}
}

func TestImportSampleType(t *testing.T) {
	fn := &profile.Function{ID: 1, Name: "main.alloc"}
	loc := &profile.Location{ID: 1, Line: []profile.Line{{Function: fn}}}
	heap := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "alloc_objects", Unit: "count"}, {Type: "alloc_space", Unit: "bytes"}, {Type: "inuse_objects", Unit: "count"}, {Type: "inuse_space", Unit: "bytes"}},
		PeriodType: &profile.ValueType{Type: "space", Unit: "bytes"}, Period: 512 * 1024, TimeNanos: fixedNow().UnixNano(),
		Function: []*profile.Function{fn}, Location: []*profile.Location{loc},
		Sample: []*profile.Sample{{Location: []*profile.Location{loc}, Value: []int64{3, 3 << 20, 1, 1 << 20}}},
	}
	for _, tc := range []struct {
		name       string
		prof       *profile.Profile
		sampleType string
		profType   string
		value      int64
		period     int64
		err        error
	}{
		{"alloc_space", heap, "alloc_space/bytes", "alloc_space/bytes", 3 << 20, 1, nil},
		{"inuse_objects", heap, "inuse_objects/count", "inuse_objects/count", 1, 1, nil},
		{"not in profile", heap, "delay/nanoseconds", "", 0, 0, ErrSampleType},
		{"cpu of a heap profile", heap, "cpu/nanoseconds", "", 0, 0, ErrSampleType},
		{"cpu profile as cpu/nanoseconds", cpuProfile(), "cpu/nanoseconds", samplebatch.ProfileCPU, 5, 10_000_000, nil},
		{"cpu profile as samples/count", cpuProfile(), "samples/count", samplebatch.ProfileCPU, 5, 10_000_000, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := ImportOptions{Labels: samplebatch.Labels{Service: "s"}, SampleType: tc.sampleType, Now: fixedNow}
			got, err := Import(tc.prof, opt)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), "alloc_space/bytes") {
					t.Fatalf("err = %v, want %v naming the profile's types", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if opt.ProfileType() != tc.profType || got[0].Value != tc.value || got[0].PeriodNS != tc.period {
				t.Fatalf("profile type %q, first row %+v; want %q, value %d, period %d", opt.ProfileType(), got[0], tc.profType, tc.value, tc.period)
			}
			data, err := samplebatch.EncodeProfile(opt.ProfileType(), got)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := samplebatch.Decode(data, samplebatch.Limits{Now: fixedNow}); err != nil {
				t.Fatalf("imported rows do not decode: %v", err)
			}
		})
	}
}

// TestExportProfileType exports stored heap stacks as a pprof profile of that one
// sample type, which imports back to the same values.
func TestExportProfileType(t *testing.T) {
	p := &model.Profile{ProfileType: "alloc_space/bytes", PeriodNS: 1, Total: 5 << 20,
		Stacks: []model.StackCount{{Frames: []string{"main", "alloc"}, Value: 4 << 20}, {Frames: []string{"main"}, Value: 1 << 20}}}
	var buf bytes.Buffer
	if err := WritePprof(&buf, p, fixedNow(), time.Minute); err != nil {
		t.Fatal(err)
	}
	back, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.SampleType) != 1 || back.SampleType[0].Type != "alloc_space" || back.SampleType[0].Unit != "bytes" {
		t.Fatalf("sample types %v, want alloc_space/bytes only", back.SampleType)
	}
	got, err := Import(back, ImportOptions{Labels: samplebatch.Labels{Service: "s"}, SampleType: "alloc_space/bytes", Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Value != 4<<20 || got[1].Value != 1<<20 {
		t.Fatalf("re-imported %+v", got)
	}
}
