package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/simulate"
	"github.com/fleetprof/fleetprof/internal/testenv"
)

// TestAggregatorAnalyzerLoop runs `fleetprof aggregator` with its analyzer loop on,
// feeds it a simulated fleet with one injected regression and waits for the finding
// at /api/v1/findings: it must appear within two loop runs after the data is in,
// with the injected function and the pull request that introduced it.
func TestAggregatorAnalyzerLoop(t *testing.T) {
	if !chdbInstalled() {
		testenv.Skip(t, testenv.MissingTool, "chDB library not installed: run scripts/fetch-chdb.sh (or make setup)")
	}
	testenv.LookPath(t, "git", "git")
	bin := buildFleetprof(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	sim := []string{"simulate", "--services", "1", "--hosts", "12", "--functions", "20", "--releases", "1",
		"--regressions", "random:1", "--seed", "3"}
	// The repositories and ground truth first (the aggregator needs the repository
	// at start), then the same fleet (same seed and start) over gRPC.
	truthPath := filepath.Join(dir, "truth.json")
	if out, err := exec.CommandContext(ctx, bin, append(sim, "--repo", filepath.Join(dir, "repos"), "--truth", truthPath,
		"--out", filepath.Join(dir, "out"))...).CombinedOutput(); err != nil {
		t.Fatalf("simulate: %v\n%s", err, out)
	}
	tr, err := simulate.ReadTruth(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Regressions) != 1 || len(tr.Services) != 1 {
		t.Fatalf("truth has %d regressions, %d services; want 1 and 1", len(tr.Regressions), len(tr.Services))
	}
	want := tr.Regressions[0]
	svc := tr.Services[0]

	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	var aggLog bytes.Buffer
	agg := exec.CommandContext(ctx, bin, "aggregator", "--storage", "embedded:"+filepath.Join(dir, "store"),
		"--grpc", grpcAddr, "--http", httpAddr, "--token", "s3cret",
		"--analyze-interval", "20s", "--analyze-window", "12h", "--analyze-history", "11h",
		"--repo", svc.Name+"="+filepath.Join(dir, "repos", svc.Repo))
	agg.Stdout, agg.Stderr = &aggLog, &aggLog
	if err := agg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = agg.Process.Signal(os.Interrupt)
		_ = agg.Wait()
		if t.Failed() {
			t.Logf("aggregator output:\n%s", aggLog.String())
		}
	})
	base := "http://" + httpAddr
	for get(ctx, base+"/readyz") == "" {
		if ctx.Err() != nil {
			t.Fatal("aggregator never became ready")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out, err := exec.CommandContext(ctx, bin, append(sim, "--grpc", grpcAddr, "--token", "s3cret",
		"--start", tr.Start.Format(time.RFC3339))...).CombinedOutput(); err != nil {
		t.Fatalf("simulate --grpc: %v\n%s", err, out)
	}
	// Runs that may have started before the data was complete do not count.
	startRuns := analyzerRuns(ctx, base) + 1
	for {
		if ctx.Err() != nil {
			t.Fatal("finding never appeared")
		}
		runs := analyzerRuns(ctx, base)
		body := get(ctx, base+"/api/v1/findings?kind=regression&from=now-72h")
		var page struct {
			Findings []struct {
				Body json.RawMessage `json:"body"`
			} `json:"findings"`
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatalf("findings: %v: %s", err, body)
		}
		for _, r := range page.Findings {
			var f findings.Finding
			if err := json.Unmarshal(r.Body, &f); err != nil {
				t.Fatal(err)
			}
			if f.Function != want.Function {
				continue
			}
			if len(f.RootCauses) == 0 || want.Change == nil || f.RootCauses[0].PR != want.Change.PR {
				t.Fatalf("finding for %s has root causes %+v, want PR #%d first", f.Function, f.RootCauses, want.Change.PR)
			}
			t.Logf("found %s (PR #%d) after %d loop runs following ingest", f.Function, want.Change.PR, runs-startRuns+1)
			return
		}
		if runs >= startRuns+2 {
			t.Fatalf("no finding for %s after two loop runs following ingest (%d stored: %s)", want.Function, len(page.Findings), body)
		}
		time.Sleep(time.Second)
	}
}

// get returns the body of a 200 answer, "" otherwise.
func get(ctx context.Context, url string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(b)
}

// analyzerRuns reads the completed loop runs from /metrics.
func analyzerRuns(ctx context.Context, base string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(get(ctx, base+"/metrics")))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "fleetprof_analyzer_runs_total{") {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		n += int(v)
	}
	return n
}
