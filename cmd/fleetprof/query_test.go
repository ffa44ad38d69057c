package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/pprofconv"
	"github.com/fleetprof/fleetprof/aggregator/storage/clickhousetest"
	"github.com/fleetprof/fleetprof/model"
)

// startAggregator runs `fleetprof aggregator` in process on a real clickhouse-server
// and returns its gRPC and HTTP addresses once /readyz answers.
func startAggregator(t *testing.T, token string) (grpcAddr, httpAddr string) {
	t.Helper()
	return startAggregatorOn(t, "clickhouse://"+clickhousetest.Start(t)+"/clitest", token)
}

// startAggregatorOn is startAggregator on the store at storageURI.
func startAggregatorOn(t *testing.T, storageURI, token string) (grpcAddr, httpAddr string) {
	t.Helper()
	ports, err := clickhousetest.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	grpcAddr, httpAddr = fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runAggregator(ctx, []string{"--storage", storageURI,
			"--grpc", grpcAddr, "--http", httpAddr, "--token", token}, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("aggregator: %v", err)
		}
	})
	// Wait for readiness; the deadline only bounds a broken start, it asserts nothing.
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return grpcAddr, httpAddr
			}
		}
		select {
		case err := <-done:
			t.Fatalf("aggregator exited: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("aggregator not ready after 60s")
		}
	}
}

// writeProfile writes a pprof file with known stacks, stamped now.
func writeProfile(t *testing.T, dir, name string, stacks []model.StackCount) string {
	t.Helper()
	var buf bytes.Buffer
	p := &model.Profile{Stacks: stacks, PeriodNS: 10_000_000}
	if err := pprofconv.WritePprof(&buf, p, time.Now().Add(-2*time.Minute), time.Minute); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func cli(t *testing.T, run func(context.Context, []string, io.Writer) error, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, &out)
	return out.String(), err
}

func TestImportAndQueryCLI(t *testing.T) {
	grpcAddr, httpAddr := startAggregator(t, "tk")
	dir := t.TempDir()
	v1 := writeProfile(t, dir, "v1.pb.gz", []model.StackCount{
		{Frames: []string{"main", "serve", "parse"}, Value: 6},
		{Frames: []string{"main", "serve"}, Value: 4},
	})
	v2 := writeProfile(t, dir, "v2.pb.gz", []model.StackCount{
		{Frames: []string{"main", "serve", "parse"}, Value: 9},
		{Frames: []string{"main", "serve", "encode"}, Value: 1},
	})
	bad := filepath.Join(dir, "bad.pb.gz")
	os.WriteFile(bad, []byte("garbage"), 0o644)

	imp := func(args ...string) (string, error) {
		return cli(t, runImport, append(args, "--grpc", grpcAddr, "--token", "tk", "--service", "cli")...)
	}
	out, err := imp(v1, "--version", "v1", "--labels", "host=h1,region=eu")
	if err != nil || out != v1+": 2 rows stored\n" {
		t.Fatalf("import v1: %q %v", out, err)
	}
	out, err = imp(v1, "--version", "v1", "--labels", "host=h1,region=eu")
	if err != nil || out != v1+": duplicate (already imported)\n" {
		t.Fatalf("re-import v1: %q %v", out, err)
	}
	if out, err = imp(v2, "--version", "v2"); err != nil {
		t.Fatalf("import v2: %q %v", out, err)
	}
	if _, err = imp(bad, v1); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("import of a bad file: %v, want an error naming %s", err, bad)
	}
	if _, err := cli(t, runImport, v1, "--grpc", grpcAddr, "--token", "wrong", "--service", "cli", "--version", "x"); err == nil ||
		!strings.Contains(err.Error(), "Unauthenticated") {
		t.Fatalf("wrong token: %v", err)
	}

	q := func(args ...string) (string, error) {
		return cli(t, runQuery, append(args, "--http", httpAddr, "--service", "cli", "--from", "now-1h")...)
	}
	out, err = q("top", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var top model.Top
	if err := json.Unmarshal([]byte(out), &top); err != nil {
		t.Fatalf("top --json: %v\n%s", err, out)
	}
	if top.Total != 20 || top.Functions[0].Function != "parse" || top.Functions[0].Self != 15 {
		t.Fatalf("top = %+v, want 20 samples led by parse with 15", top)
	}
	out, err = q("top")
	if err != nil || !strings.Contains(out, "20 samples") || !strings.Contains(out, "75.00") {
		t.Fatalf("top table: %v\n%s", err, out)
	}
	out, err = q("top", "--filter", "region=eu")
	if err != nil || !strings.Contains(out, "10 samples") {
		t.Fatalf("top --filter region=eu: %v\n%s", err, out)
	}
	out, err = q("flame")
	if err != nil || !strings.Contains(out, "100.00%       20  root") || !strings.Contains(out, "      parse") {
		t.Fatalf("flame: %v\n%s", err, out)
	}
	out, err = q("diff", "--base-filter", "version=v1", "--cmp-filter", "version=v2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var d model.Diff
	if err := json.Unmarshal([]byte(out), &d); err != nil || d.BaseTotal != 10 || d.CmpTotal != 10 {
		t.Fatalf("diff: %v %+v", err, d)
	}
	if out, err = q("diff", "--base-filter", "version=v1", "--cmp-filter", "version=v2"); err != nil || !strings.Contains(out, "parse") {
		t.Fatalf("diff table: %v\n%s", err, out)
	}
	folded := filepath.Join(dir, "out.folded")
	if _, err := q("top", "--format", "folded", "-o", folded); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(folded); string(got) != "main;serve 4\nmain;serve;encode 1\nmain;serve;parse 15\n" {
		t.Fatalf("folded export = %q", got)
	}
	out, err = q("flame", "--format", "pprof")
	if err != nil || len(out) < 20 || out[0] != 0x1f {
		t.Fatalf("pprof export: %v, %d bytes", err, len(out))
	}
}

func TestQueryUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(context.Context, []string, io.Writer) error
		args []string
		want string
	}{
		{"no subcommand", runQuery, nil, "top|flame|diff"},
		{"unknown subcommand", runQuery, []string{"bottom"}, "unknown query"},
		{"bad from", runQuery, []string{"top", "--from", "yesterday"}, "--from"},
		{"bad filter", runQuery, []string{"top", "--filter", "novalue"}, "--filter"},
		{"bad base filter", runQuery, []string{"diff", "--base-filter", "x"}, "--base-filter"},
		{"bad format", runQuery, []string{"top", "--format", "svg"}, "--format"},
		{"from after to", runQuery, []string{"flame", "--from", "now", "--to", "now-1h"}, "not before"},
		{"import without files", runImport, []string{"--service", "x"}, "no pprof FILE"},
		{"import without service", runImport, []string{"f.pb.gz"}, "--service"},
		{"import bad label", runImport, []string{"f.pb.gz", "--service", "x", "--labels", "novalue"}, "--labels"},
		{"import bad sample type", runImport, []string{"f.pb.gz", "--service", "x", "--sample-type", "Heap"}, "--sample-type"},
		{"bad profile type", runQuery, []string{"top", "--profile-type", "alloc space"}, "--profile-type"},
		{"aggregator bad storage", runAggregator, []string{"--storage", "mysql://x"}, "storage"},
		{"aggregator extra args", runAggregator, []string{"now"}, "unexpected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cli(t, tc.run, tc.args...)
			var u usageError
			if !errors.As(err, &u) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a usage error containing %q", err, tc.want)
			}
		})
	}
}

// TestPrintTopLocation: a function with a known location shows it after its
// name; one without shows the name alone.
func TestPrintTopLocation(t *testing.T) {
	var buf bytes.Buffer
	err := printTop(&buf, &model.Top{Total: 4, Functions: []model.FunctionStat{
		{Function: "app.inner", Self: 3, Inclusive: 3, SelfPct: 75, InclusivePct: 75, File: "/srv/app.py", Line: 14},
		{Function: "main", Self: 1, Inclusive: 4, SelfPct: 25, InclusivePct: 100},
	}})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 || !strings.HasSuffix(lines[2], " app.inner  /srv/app.py:14") || !strings.HasSuffix(lines[3], " main") {
		t.Fatalf("top output:\n%s", buf.String())
	}
}
