package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/storage"
	"github.com/fleetprof/fleetprof/analyzer/defense"
	"github.com/fleetprof/fleetprof/analyzer/findings"
)

func TestParseAnalyzeFlags(t *testing.T) {
	vm := filepath.Join(t.TempDir(), "versions.txt")
	if err := os.WriteFile(vm, []byte("v1 abc123\nv2 def456\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		usage bool
		check func(*testing.T, *analyzeOptions)
	}{
		{"defaults", nil, false, func(t *testing.T, o *analyzeOptions) {
			if o.cfg.Window != 6*time.Hour || !o.cfg.Store || o.json || o.storage != storage.DefaultURI {
				t.Errorf("defaults %+v", o)
			}
		}},
		{"all", []string{"--storage", "embedded:/tmp/x", "--service", "a", "--service", "b", "--window", "3h",
			"--repo", "a=/src/a", "--version-map", "a=" + vm, "--json", "--dry-run", "--now", "2026-01-06T00:00:00Z"}, false,
			func(t *testing.T, o *analyzeOptions) {
				if len(o.cfg.Services) != 2 || o.cfg.Window != 3*time.Hour || o.cfg.Repos["a"] != "/src/a" ||
					o.cfg.VersionMaps["a"]["v2"] != "def456" || !o.json || o.cfg.Store ||
					!o.cfg.Now().Equal(time.Date(2026, 1, 6, 0, 0, 0, 0, time.UTC)) {
					t.Errorf("parsed %+v", o.cfg)
				}
			}},
		{"bad repo", []string{"--repo", "nopath"}, true, nil},
		{"bad window", []string{"--window", "0s"}, true, nil},
		{"bad now", []string{"--now", "yesterday"}, true, nil},
		{"bad storage", []string{"--storage", "mysql://x"}, true, nil},
		{"missing version map", []string{"--version-map", "a=/does/not/exist"}, true, nil},
		{"extra args", []string{"x"}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseAnalyzeFlags(tt.args)
			var u usageError
			if tt.usage {
				if !errors.As(err, &u) {
					t.Fatalf("error %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}

// emptyStore is a store without samples.
type emptyStore struct{}

func (emptyStore) Services(context.Context, time.Time, time.Time) ([]string, error) { return nil, nil }
func (emptyStore) Rollup(context.Context, storage.RollupQuery) ([]storage.RollupRow, error) {
	return nil, nil
}
func (emptyStore) Versions(context.Context, string, time.Time, time.Time) ([]storage.VersionSpan, error) {
	return nil, nil
}
func (emptyStore) Profile(context.Context, storage.Selection) (*storage.Profile, error) {
	return &storage.Profile{}, nil
}
func (emptyStore) PutFindings(context.Context, []storage.FindingRecord) error { return nil }

func TestAnalyzeOnceEmpty(t *testing.T) {
	for _, js := range []bool{false, true} {
		o, err := parseAnalyzeFlags([]string{"--now", "2026-01-06T00:00:00Z"})
		if err != nil {
			t.Fatal(err)
		}
		o.json = js
		var out bytes.Buffer
		if err := analyzeOnce(context.Background(), emptyStore{}, o, &out, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
		want := "no regressions"
		if js {
			want = `"findings": []`
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("json=%v: output %q lacks %q", js, out.String(), want)
		}
	}
}

func TestPrintFindings(t *testing.T) {
	rep := &defense.Report{Findings: []findings.Finding{{
		Kind: findings.KindRegression, Service: "billing", Function: "billing/ledger.(*Engine).Encode",
		Before: findings.Share{Value: 0.038}, After: findings.Share{Value: 0.046}, RelativeChange: 0.22,
		EstimatedCores: 0.3, ChangeTime: time.Date(2026, 1, 5, 12, 20, 0, 0, time.UTC),
		VersionBefore: "v1", VersionAfter: "v2",
		RootCauses: []findings.RootCause{{PR: 105, Title: "Speed up Encode", Confidence: 0.61}},
	}}}
	var out bytes.Buffer
	if err := printFindings(&out, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"billing/ledger.(*Engine).Encode", "2026-01-05 12:20", "3.800% → 4.600%", "+22.0%", "v1→v2", "#105 Speed up Encode (61%)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
