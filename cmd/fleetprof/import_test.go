package main

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/fleetprof/fleetprof/aggregator/pprofconv"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
	"github.com/google/pprof/profile"
)

func TestImportLabels(t *testing.T) {
	for _, tc := range []struct {
		name string
		kvs  []string
		want samplebatch.Labels
		err  bool
	}{
		{"none", nil, samplebatch.Labels{Service: "s", Version: "v"}, false},
		{"built-in and extra", []string{"region=eu", "host=h1", "pid=42", "az=a"},
			samplebatch.Labels{Service: "s", Version: "v", Host: "h1", PID: 42,
				Extra: []samplebatch.Label{{Key: "az", Value: "a"}, {Key: "region", Value: "eu"}}}, false},
		{"value with equals", []string{"q=a=b"}, samplebatch.Labels{Service: "s", Version: "v",
			Extra: []samplebatch.Label{{Key: "q", Value: "a=b"}}}, false},
		{"no value", []string{"region"}, samplebatch.Labels{}, true},
		{"service via labels", []string{"service=x"}, samplebatch.Labels{}, true},
		{"bad pid", []string{"pid=abc"}, samplebatch.Labels{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := importLabels("s", "v", tc.kvs)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if !tc.err && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("labels = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestImportBatchIDStable(t *testing.T) {
	l := samplebatch.Labels{Service: "s", Version: "v1"}
	prof := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"}, Period: 10_000_000, TimeNanos: 1_700_000_000e9,
	}
	fn := &profile.Function{ID: 1, Name: "main.work"}
	loc := &profile.Location{ID: 1, Line: []profile.Line{{Function: fn}}}
	prof.Function, prof.Location = []*profile.Function{fn}, []*profile.Location{loc}
	prof.Sample = []*profile.Sample{{Location: []*profile.Location{loc}, Value: []int64{3, 30_000_000}}}
	var gz, raw bytes.Buffer
	if err := prof.Write(&gz); err != nil {
		t.Fatal(err)
	}
	if err := prof.WriteUncompressed(&raw); err != nil {
		t.Fatal(err)
	}
	id := func(data []byte, l samplebatch.Labels) string {
		s, err := pprofconv.Parse(data, pprofconv.ImportOptions{Labels: l})
		if err != nil {
			t.Fatal(err)
		}
		return importBatchID(s, l, samplebatch.ProfileCPU)
	}
	a := id(gz.Bytes(), l)
	if b := id(raw.Bytes(), l); a != b {
		t.Fatalf("gzipped and raw copies of one profile: ids %s and %s", a, b)
	}
	l2 := l
	l2.Version = "v2"
	prof.Sample[0].Value = []int64{4, 40_000_000}
	var other bytes.Buffer
	if err := prof.Write(&other); err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]string{
		"other samples": id(other.Bytes(), l),
		"other version": id(gz.Bytes(), l2),
	} {
		if o == a {
			t.Errorf("%s: same id %s", name, a)
		}
	}
}
