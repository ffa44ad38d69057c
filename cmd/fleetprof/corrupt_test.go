package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// TestEmptyMergeResultCovered recreates what a disk filling during a merge
// left behind: a merged samples part whose every file is empty, while its
// source parts are still on disk (outdated, not yet removed). At the next
// start the engine sets the merged part aside and serves its sources: the
// part is reported as covered, nothing counts as missing, and the stored
// totals are exact.
func TestEmptyMergeResultCovered(t *testing.T) {
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
	uri := "embedded:" + dataDir
	agg := newAggProc(t, bin, uri)
	agg.start(t)
	start := time.Now()
	f := startFleet(t, agg.grpc, 2)
	var victim string
	waitFor(t, "a merged samples part with its sources on disk", func() bool {
		victim = mergedPartWithSources(t, dataDir, "samples")
		return victim != ""
	})
	f.finish(t)
	agg.stop(t)
	// The merged part found may be merged again before the stop; empty the
	// one that still has its sources.
	if victim = mergedPartWithSources(t, dataDir, "samples"); victim == "" {
		t.Fatal("no merged part with its sources on disk after the stop")
	}
	files, err := os.ReadDir(victim)
	if err != nil {
		t.Fatal(err)
	}
	for _, fe := range files {
		if err := os.Truncate(filepath.Join(victim, fe.Name()), 0); err != nil {
			t.Fatal(err)
		}
	}
	agg.start(t)
	var st struct {
		DetachedParts []struct {
			Table, Name, Reason string
			Covered             bool
		} `json:"detached_parts"`
	}
	getJSONInto(t, agg.http, "/api/v1/storage", &st)
	agg.stop(t)
	if len(st.DetachedParts) != 1 || !st.DetachedParts[0].Covered {
		t.Fatalf("emptied %s: detached parts %+v, want it alone, covered", victim, st.DetachedParts)
	}
	samples, rollup := storedTotals(t, uri, start, partsStrict)
	if samples != f.sent || rollup != f.sent {
		t.Fatalf("stored samples %d, rollup total %d, sent %d", samples, rollup, f.sent)
	}
	t.Logf("emptied %s; reported %+v; %d samples exact", filepath.Base(victim), st.DetachedParts, samples)
}

// mergedPartWithSources returns the directory of an active-looking merged
// part (level > 0) of table all of whose blocks are in other, smaller part
// directories on disk (its sources, outdated but not yet removed), or "".
func mergedPartWithSources(t *testing.T, dataDir, table string) string {
	t.Helper()
	tdir, err := filepath.EvalSymlinks(filepath.Join(dataDir, "data", "fleetprof", table))
	if err != nil {
		return ""
	}
	entries, err := os.ReadDir(tdir)
	if err != nil {
		return ""
	}
	type part struct {
		dir, partition string
		lo, hi, level  int
	}
	var parts []part
	for _, e := range entries {
		var p part
		f := strings.Split(e.Name(), "_")
		if !e.IsDir() || len(f) != 4 {
			continue
		}
		if _, err := fmt.Sscanf(f[1]+" "+f[2]+" "+f[3], "%d %d %d", &p.lo, &p.hi, &p.level); err != nil {
			continue
		}
		p.dir, p.partition = filepath.Join(tdir, e.Name()), f[0]
		parts = append(parts, p)
	}
	for _, m := range parts {
		if m.level == 0 || slices.ContainsFunc(parts, func(o part) bool {
			return o.partition == m.partition && o.level > m.level && o.lo <= m.lo && o.hi >= m.hi
		}) {
			continue // not merged, or merged again: not the part served
		}
		next := m.lo
		for next <= m.hi {
			found := false
			for _, s := range parts {
				if s.partition == m.partition && s.level < m.level && s.lo == next && s.hi <= m.hi {
					next, found = s.hi+1, true
					break
				}
			}
			if !found {
				break
			}
		}
		if next > m.hi {
			return m.dir
		}
	}
	return ""
}
