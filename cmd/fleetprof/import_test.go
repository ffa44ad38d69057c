package main

import (
	"reflect"
	"testing"

	"github.com/fleetprof/fleetprof/proto/samplebatch"
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
	a, b := importBatchID([]byte("data"), l), importBatchID([]byte("data"), l)
	if a != b {
		t.Fatalf("same input, different ids %s %s", a, b)
	}
	l2 := l
	l2.Version = "v2"
	for name, other := range map[string]string{
		"other data":    importBatchID([]byte("datb"), l),
		"other version": importBatchID([]byte("data"), l2),
	} {
		if other == a {
			t.Errorf("%s: same id %s", name, a)
		}
	}
}
