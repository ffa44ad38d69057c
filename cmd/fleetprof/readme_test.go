package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/simulate"
	"github.com/fleetprof/fleetprof/internal/testenv"
)

// readmeSession returns the commands of README.md's first-session block.
func readmeSession(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "A first session on one machine")
	if !ok {
		t.Fatal(`README.md has no "A first session on one machine" section`)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	if !ok {
		t.Fatal("first session has no ```sh block")
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("first session block is not closed")
	}
	var cmds []string
	for line := range strings.Lines(block) {
		if line = strings.TrimSpace(line); line != "" {
			cmds = append(cmds, line)
		}
	}
	return cmds
}

// TestReadmeFirstSession runs README.md's first session verbatim, in a fresh
// directory, against `fleetprof up --no-agent` standing in for its first line
// (`make up` builds bin/fleetprof and runs `fleetprof up`): every command must
// succeed, and analyze must report the regression the simulated release injected.
func TestReadmeFirstSession(t *testing.T) {
	if !chdbInstalled() {
		testenv.Skip(t, testenv.MissingTool, "chDB library not installed: run scripts/fetch-chdb.sh (or make setup)")
	}
	goBin := testenv.LookPath(t, "go", "go")
	cmds := readmeSession(t)
	if len(cmds) < 3 || !strings.HasPrefix(cmds[0], "make up") {
		t.Fatalf("first session must start with make up, got %q", cmds)
	}
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mk), "BIN ?= bin/fleetprof") && !strings.Contains(string(mk), "BIN := bin/fleetprof") || !strings.Contains(string(mk), "./$(BIN) up") {
		t.Fatal("Makefile's up target no longer runs bin/fleetprof up; update this test")
	}
	work := t.TempDir()
	bin := buildFleetprof(t)
	if err := os.MkdirAll(filepath.Join(work, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(work, "bin", "fleetprof")); err != nil {
		t.Fatal(err)
	}
	// Repository files the session names, as in a checkout.
	for _, f := range []string{"aggregator/pprofconv/testdata/cpu.pb.gz"} {
		data, err := os.ReadFile(filepath.Join("../..", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(work, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	startUpIn(ctx, t, bin, work)

	var analyzeOut string
	var simulateCmd string
	for _, c := range cmds[1:] {
		cmd := exec.CommandContext(ctx, "sh", "-c", c)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(goBin)+":"+os.Getenv("PATH"))
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", c, err, out.String(), errb.String())
		}
		t.Logf("$ %s\n%s%s", c, out.String(), errb.String())
		if strings.Contains(c, "fleetprof analyze") {
			analyzeOut = out.String()
		}
		if strings.Contains(c, "fleetprof simulate") {
			simulateCmd = c
		}
	}
	if simulateCmd == "" || analyzeOut == "" {
		t.Fatal("the first session must simulate a fleet and analyze it")
	}
	// The ground truth of that same fleet (same flags, files instead of the up).
	args := strings.Fields(strings.SplitN(simulateCmd, "#", 2)[0])[1:]
	truth := filepath.Join(t.TempDir(), "truth.json")
	if out, err := exec.CommandContext(ctx, bin, append(args, "--out", t.TempDir(), "--truth", truth)...).CombinedOutput(); err != nil {
		t.Fatalf("simulate for the truth: %v\n%s", err, out)
	}
	tr, err := simulate.ReadTruth(truth)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range tr.Regressions {
		if !strings.Contains(analyzeOut, r.Function) {
			t.Errorf("analyze does not report the injected regression in %s:\n%s", r.Function, analyzeOut)
		}
	}
}

// startUpIn runs `fleetprof up --no-agent` in dir with its default data directory
// (so the session's commands find it) on free ports.
func startUpIn(ctx context.Context, t *testing.T, bin, dir string) {
	t.Helper()
	var upLog bytes.Buffer
	up := exec.CommandContext(ctx, bin, "up", "--no-agent", "--http", freeAddr(t), "--grpc", freeAddr(t))
	up.Dir = dir
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
		if st := runningUp(filepath.Join(dir, defaultDataDir)); st != nil && get(ctx, "http://"+st.HTTP+"/readyz") != "" {
			return
		}
		if ctx.Err() != nil {
			t.Fatal("fleetprof up never started")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
