package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/internal/testenv"
)

// TestTruncatedPartReported stores batches with a real aggregator on
// embedded chDB, stops it, truncates a column file of a samples part and
// starts it again: the part the engine sets aside is logged and listed by
// /api/v1/storage and the fleetprof_storage_detached_parts metric, never
// silently lost.
func TestTruncatedPartReported(t *testing.T) {
	if testing.Short() {
		testenv.Skip(t, testenv.Short, "builds the binary")
	}
	if !chdbInstalled() {
		testenv.Skip(t, testenv.MissingTool, "chDB library not installed: run scripts/fetch-chdb.sh (or make setup)")
	}
	bin := filepath.Join(t.TempDir(), "fleetprof")
	if out, err := exec.CommandContext(context.Background(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	agg := newAggProc(t, bin, "embedded:"+dataDir)
	agg.start(t)
	f := startFleet(t, agg.grpc, 2)
	waitFor(t, "batches acked", func() bool { return f.stats().Acked >= 20 })
	f.finish(t)
	agg.stop(t)

	victim := truncateOnePart(t, dataDir, "samples")
	agg.start(t)
	defer agg.stop(t)
	var st struct {
		DetachedParts []struct{ Table, Name, Reason string } `json:"detached_parts"`
	}
	getJSONInto(t, agg.http, "/api/v1/storage", &st)
	if len(st.DetachedParts) == 0 {
		t.Fatalf("truncated %s: /api/v1/storage lists no detached part", victim)
	}
	if agg.logsContain("storage part detached") == 0 {
		t.Fatalf("truncated %s: no log line at start", victim)
	}
	if code := getCode(agg.http, "/api/v1/services"); code != http.StatusOK {
		t.Fatalf("query after start on a damaged dir = %d", code)
	}
	t.Logf("truncated %s; reported %+v", victim, st.DetachedParts)
}

// truncateOnePart cuts the largest column file of one active part of table
// in half. data/<db>/<table> is the table's directory (a symlink into store/
// for Atomic databases).
func truncateOnePart(t *testing.T, dataDir, table string) string {
	t.Helper()
	tdir, err := filepath.EvalSymlinks(filepath.Join(dataDir, "data", "fleetprof", table))
	if err != nil {
		t.Fatal(err)
	}
	var best string
	var bestSize int64
	parts, err := os.ReadDir(tdir)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range parts {
		if !part.IsDir() || part.Name() == "detached" {
			continue
		}
		files, err := os.ReadDir(filepath.Join(tdir, part.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			info, err := f.Info()
			if err == nil && strings.HasSuffix(f.Name(), ".bin") && info.Size() > bestSize {
				best, bestSize = filepath.Join(tdir, part.Name(), f.Name()), info.Size()
			}
		}
	}
	if best == "" {
		t.Fatalf("no part file of %s under %s", table, tdir)
	}
	if err := os.Truncate(best, bestSize/2); err != nil {
		t.Fatal(err)
	}
	return best
}

func getJSONInto(t *testing.T, addr, path string, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(fmt.Errorf("GET %s: %w", path, err))
	}
}

// TestCorruptMetadataNamed starts the aggregator on a data dir whose table
// metadata is garbage: it refuses to start with a message naming the data
// dir and the engine's complaint, not the hint to install libchdb.so.
func TestCorruptMetadataNamed(t *testing.T) {
	if testing.Short() {
		testenv.Skip(t, testenv.Short, "builds the binary")
	}
	if !chdbInstalled() {
		testenv.Skip(t, testenv.MissingTool, "chDB library not installed: run scripts/fetch-chdb.sh (or make setup)")
	}
	bin := filepath.Join(t.TempDir(), "fleetprof")
	ctx := context.Background()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	agg := newAggProc(t, bin, "embedded:"+dataDir)
	agg.start(t)
	agg.stop(t)
	meta := filepath.Join(dataDir, "metadata", "fleetprof", "samples.sql")
	if err := os.WriteFile(meta, []byte("ATTACH TABLE _ UUID 'garbage' (\x00\x01"), 0o600); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(cctx, bin, "aggregator", "--storage", "embedded:"+dataDir, "--grpc", agg.grpc, "--http", agg.http).CombinedOutput()
	if err == nil {
		t.Fatalf("aggregator started on corrupt metadata:\n%s", out)
	}
	msg := string(out)
	if strings.Contains(msg, "install libchdb") || !strings.Contains(msg, dataDir) || !strings.Contains(msg, "samples") {
		t.Fatalf("start on corrupt metadata: want a message naming %s and the samples table, no install hint; got:\n%s", dataDir, msg)
	}
	t.Logf("message: %s", strings.TrimSpace(msg))
}
