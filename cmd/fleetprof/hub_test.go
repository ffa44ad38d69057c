package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/opportunity"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
)

// buildFleetprof builds the binary once per test.
func buildFleetprof(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fleetprof")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startUp runs `fleetprof up --no-agent` on free ports with data in dir and waits
// until it answers; it returns the HTTP and gRPC addresses.
func startUp(ctx context.Context, t *testing.T, bin, dir string, extra ...string) (httpAddr, grpcAddr string, up *exec.Cmd) {
	t.Helper()
	return startUpWith(ctx, t, bin, dir, append([]string{"--no-agent"}, extra...)...)
}

// startUpWith is startUp with the agent unless args say --no-agent.
func startUpWith(ctx context.Context, t *testing.T, bin, dir string, extra ...string) (httpAddr, grpcAddr string, up *exec.Cmd) {
	t.Helper()
	httpAddr, grpcAddr = freeAddr(t), freeAddr(t)
	var upLog bytes.Buffer
	args := append([]string{"up", "--data", dir, "--grpc", grpcAddr, "--http", httpAddr}, extra...)
	up = exec.CommandContext(ctx, bin, args...)
	up.Stdout, up.Stderr = &upLog, &upLog
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = up.Process.Signal(os.Interrupt)
		_ = up.Wait()
		if t.Failed() {
			t.Logf("fleetprof up output:\n%s", upLog.String())
		}
	})
	for {
		if ctx.Err() != nil {
			t.Fatalf("fleetprof up never answered on %s", httpAddr)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if _, err := os.Stat(filepath.Join(dir, upStateName)); err == nil {
					return httpAddr, grpcAddr, up
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// runBin runs the fleetprof binary and returns its stdout and stderr.
func runBin(ctx context.Context, bin string, args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	c := exec.CommandContext(ctx, bin, args...)
	c.Stdout, c.Stderr = &out, &errb
	err = c.Run()
	return out.String(), errb.String(), err
}

// TestUpHubNoTokenFlags: `up --no-agent`, then import, simulate, analyze and
// pipeline run on the same host with no token flags: the clients find up's token
// and address in the data dir, and analyze goes through the running up instead of
// failing on the locked store.
func TestUpHubNoTokenFlags(t *testing.T) {
	if !chdbInstalled() {
		testenv.Skip(t, testenv.MissingTool, "chDB library not installed: run scripts/fetch-chdb.sh (or make setup)")
	}
	bin := buildFleetprof(t)
	dir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	httpAddr, grpcAddr, up := startUp(ctx, t, bin, dir, "--analyze-interval", "0")

	fi, err := os.Stat(filepath.Join(dir, tokenFileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	cli := func(args ...string) (string, string, error) { return runBin(ctx, bin, args...) }
	if out, errs, err := cli("import", "../../aggregator/pprofconv/testdata/cpu.pb.gz", "--service", "api", "--version", "v2",
		"--grpc", grpcAddr, "--data", dir); err != nil {
		t.Fatalf("import: %v\n%s%s", err, out, errs)
	}
	if out, errs, err := cli("simulate", "--grpc", grpcAddr, "--data", dir, "--hosts", "2", "--services", "1",
		"--duration", "3h", "--regressions", "random:1"); err != nil {
		t.Fatalf("simulate: %v\n%s%s", err, out, errs)
	}
	out, errs, err := cli("analyze", "--data", dir, "--dry-run")
	if err != nil {
		t.Fatalf("analyze: %v\n%s%s", err, out, errs)
	}
	if !strings.Contains(errs, "analyzing through the fleetprof up") || !strings.Contains(out, "SERVICE") {
		t.Errorf("analyze did not go through up or printed no table:\nstdout:\n%s\nstderr:\n%s", out, errs)
	}
	// Explicitly through the aggregator URL, the token still found in the data dir.
	out, errs, err = cli("analyze", "--aggregator", "http://"+httpAddr, "--data", dir, "--kind", "opportunity", "--dry-run", "--json")
	if err != nil || !strings.Contains(out, `"schema": "fleetprof.findings/v1"`) {
		t.Errorf("analyze --aggregator: %v\nstdout:\n%s\nstderr:\n%s", err, out, errs)
	}
	// The pipeline finds the up through --data alone (no --aggregator, no token) and
	// ranks the opportunities of the imported and simulated profiles.
	out, errs, err = cli("pipeline", "run", "--data", dir, "--kind", "opportunity", "--out", t.TempDir())
	if err != nil {
		t.Fatalf("pipeline run: %v\nstdout:\n%s\nstderr:\n%s", err, out, errs)
	}
	n := 0
	for line := range strings.Lines(out) {
		var sum pipelineSummary
		if err := json.Unmarshal([]byte(line), &sum); err != nil {
			t.Fatalf("pipeline summary %q: %v", line, err)
		}
		if sum.Kind != "opportunity" || sum.Function == "" || sum.Finding == "" {
			t.Errorf("pipeline summary %+v: want an opportunity with its function", sum)
		}
		n++
	}
	if n == 0 {
		t.Errorf("pipeline run resolved nothing:\n%s", errs)
	}
	// Without the token the server refuses, and the error says where the token is.
	_, errs, err = cli("analyze", "--aggregator", "http://"+httpAddr, "--data", t.TempDir(), "--dry-run")
	if err == nil || !strings.Contains(errs, "401") || !strings.Contains(errs, "--token-file") {
		t.Errorf("analyze without token: %v\n%s", err, errs)
	}
	// Offline analysis of the live store: the lock names up, not the chDB library.
	_, errs, err = cli("analyze", "--storage", embeddedURI(dir))
	if err == nil {
		t.Fatal("analyze --storage on a live up's store succeeded; want the lock error")
	}
	if !strings.Contains(errs, "locked by PID "+strconv.Itoa(up.Process.Pid)) || strings.Contains(errs, "libchdb") {
		t.Errorf("lock error does not name up (PID %d) or mentions libchdb:\n%s", up.Process.Pid, errs)
	}
}

// TestUpOpportunityEvidence: the opportunities a real `up` (agent on, profiling
// this host for a few seconds) reports all have the minimum evidence
// (opportunity.EvidenceMinSamples samples, EvidenceMinSavingCores cores saved);
// the same store ranked offline without minimums shows which candidates it held back.
func TestUpOpportunityEvidence(t *testing.T) {
	testenv.Root(t, "fleetprof up profiles the host with eBPF")
	if !chdbInstalled() {
		testenv.Skip(t, testenv.MissingTool, "chDB library not installed: run scripts/fetch-chdb.sh (or make setup)")
	}
	bin := buildFleetprof(t)
	dir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	httpAddr, _, up := startUpWith(ctx, t, bin, dir, "--analyze-interval", "0", "--agent-metrics", freeAddr(t),
		"--hz", "99", "--flush-interval", "2s")
	cli := func(args ...string) (string, error) {
		out, errs, err := runBin(ctx, bin, args...)
		if err != nil {
			return out, fmt.Errorf("%v: %w\n%s", args, err, errs)
		}
		return out, nil
	}
	// A few seconds of this host's samples.
	const minHostSamples = 200
	start := time.Now()
	for {
		if ctx.Err() != nil {
			t.Fatalf("fewer than %d samples of this host arrived", minHostSamples)
		}
		time.Sleep(2 * time.Second)
		out, err := cli("query", "top", "--http", "http://"+httpAddr, "--json", "--limit", "1")
		var top model.Top
		if err == nil && json.Unmarshal([]byte(out), &top) == nil && top.Total >= minHostSamples && time.Since(start) > 8*time.Second {
			t.Logf("%d samples of this host after %s", top.Total, time.Since(start).Round(time.Second))
			break
		}
	}
	out, err := cli("analyze", "--data", dir, "--kind", "opportunity", "--dry-run", "--json")
	if err != nil {
		t.Fatal(err)
	}
	reported := decodeFindings(t, out)
	type key struct{ service, function, pattern string }
	keyOf := func(f findings.Finding) key { return key{f.Service, f.Function, f.Opportunity.Pattern} }
	shown := map[key]bool{}
	for _, f := range reported {
		shown[keyOf(f)] = true
		if n := opportunitySamples(f); n < opportunity.EvidenceMinSamples || f.Opportunity.EstimatedSavingCores < opportunity.EvidenceMinSavingCores {
			t.Errorf("reported %s %s (%s): %d samples, %.4f cores saved; want at least %d and %g",
				f.Service, f.Function, f.Opportunity.Pattern, n, f.Opportunity.EstimatedSavingCores,
				opportunity.EvidenceMinSamples, opportunity.EvidenceMinSavingCores)
		}
	}
	// Offline over the same store, every candidate: those under the minimum were
	// held back.
	_ = up.Process.Signal(os.Interrupt)
	_ = up.Wait()
	out, err = cli("analyze", "--storage", embeddedURI(dir), "--kind", "opportunity", "--dry-run", "--json",
		"--opportunity-min-samples", "0", "--opportunity-min-saving-cores", "0")
	if err != nil {
		t.Fatal(err)
	}
	all := decodeFindings(t, out)
	if len(all) == 0 {
		t.Fatal("no opportunity candidates at all in this host's profile")
	}
	under := 0
	for _, f := range all {
		if opportunitySamples(f) >= opportunity.EvidenceMinSamples && f.Opportunity.EstimatedSavingCores >= opportunity.EvidenceMinSavingCores {
			continue
		}
		under++
		if shown[keyOf(f)] {
			t.Errorf("%s %s (%s) was reported with %d samples, %.4f cores saved (under the minimum)",
				f.Service, f.Function, f.Opportunity.Pattern, opportunitySamples(f), f.Opportunity.EstimatedSavingCores)
		}
	}
	t.Logf("this host: %d opportunities reported, %d candidates, %d of them under the evidence minimum", len(reported), len(all), under)
}

func decodeFindings(t *testing.T, doc string) []findings.Finding {
	t.Helper()
	d, err := findings.Decode(strings.NewReader(doc))
	if err != nil {
		t.Fatalf("findings: %v\n%s", err, doc)
	}
	for _, f := range d.Findings {
		if f.Kind != findings.KindOpportunity || f.Opportunity == nil {
			t.Fatalf("finding %s: kind %s without opportunity", f.ID, f.Kind)
		}
	}
	return d.Findings
}

// opportunitySamples is the number of samples an opportunity's share rests on.
func opportunitySamples(f findings.Finding) int64 {
	return int64(math.Round(f.Before.Value * f.Before.Samples))
}
