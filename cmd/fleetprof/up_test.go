package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestUpProfilesThisHost runs the real binary the way a newcomer does (`fleetprof up`),
// with a C program of known call chain running on the host, and waits until
// `fleetprof query top` shows that program's functions, symbolized.
func TestUpProfilesThisHost(t *testing.T) {
	testenv.Root(t, "fleetprof up profiles the host with eBPF")
	testenv.LookPath(t, "gcc", "gcc")
	if !chdbInstalled() {
		testenv.Skip(t, testenv.MissingTool, "chDB library not installed: run scripts/fetch-chdb.sh (or make setup)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "fleetprof")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	chain := filepath.Join(dir, "upchain")
	if out, err := exec.Command("gcc", "-O1", "-fno-omit-frame-pointer", "-o", chain, "../../agent/unwind/testdata/chain.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	work := exec.CommandContext(ctx, chain, "180000")
	if err := work.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = work.Process.Kill(); _ = work.Wait() })

	httpAddr := freeAddr(t)
	var upLog bytes.Buffer
	up := exec.CommandContext(ctx, bin, "up", "--data", filepath.Join(dir, "data"), "--grpc", freeAddr(t),
		"--http", httpAddr, "--agent-metrics", freeAddr(t), "--hz", "99", "--flush-interval", "2s")
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

	start := time.Now()
	var top model.Top
	for {
		if ctx.Err() != nil {
			t.Fatalf("upchain's functions never showed up in query top; last result: %+v", top)
		}
		time.Sleep(2 * time.Second)
		out, err := exec.CommandContext(ctx, bin, "query", "top", "--http", "http://"+httpAddr, "--json",
			"--filter", "comm=upchain", "--limit", "50").Output()
		if err != nil {
			continue // not listening yet
		}
		if err := json.Unmarshal(out, &top); err != nil {
			t.Fatalf("query top --json: %v\n%s", err, out)
		}
		incl := map[string]int64{}
		for _, f := range top.Functions {
			incl[f.Function] = f.Inclusive
		}
		// Frame pointers carry every sample of c through b and a up to main.
		if top.Total >= 20 && incl["c"] > 0 && incl["b"] >= incl["c"] && incl["a"] >= incl["b"] && incl["main"] >= incl["a"] {
			if float64(incl["main"]) < 0.9*float64(top.Total) {
				t.Errorf("main is in %d of %d samples of upchain, want ≥ 90%%", incl["main"], top.Total)
			}
			t.Logf("upchain visible %s after start: %d samples, c=%d b=%d a=%d main=%d",
				time.Since(start).Round(time.Second), top.Total, incl["c"], incl["b"], incl["a"], incl["main"])
			return
		}
	}
}

// chdbInstalled looks where the chDB binding looks (it may not be imported here).
func chdbInstalled() bool {
	home, _ := os.UserHomeDir()
	for _, p := range []string{os.Getenv("FLEETPROF_CHDB_LIB"), "/usr/local/lib/libchdb.so", filepath.Join(home, ".local/lib/libchdb.so"), "/usr/lib/libchdb.so"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

func TestUpRejectsBadFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"up", "--hz", "-5", "--data", t.TempDir()}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2; stderr: %s", code, errb.String())
	}
	if code := run([]string{"up", "extra-arg"}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
}
