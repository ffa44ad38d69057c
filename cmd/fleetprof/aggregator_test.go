package main

import "testing"

func TestRedactURI(t *testing.T) {
	for in, want := range map[string]string{
		"embedded:./data":                       "embedded:./data",
		"clickhouse://u:pw@h:9000/db":           "clickhouse://***@h:9000/db",
		"clickhouse://127.0.0.1:9000/fleetprof": "clickhouse://127.0.0.1:9000/fleetprof",
	} {
		if got := redactURI(in); got != want {
			t.Errorf("redactURI(%q) = %q, want %q", in, got, want)
		}
	}
}
