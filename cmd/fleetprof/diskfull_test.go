package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/internal/testenv"
)

// diskFullTmpfsSize is the tmpfs the embedded store lives on: room for chDB's
// metadata and a few minutes of the campaign's batches.
const diskFullTmpfsSize = "256m"

// TestDiskFullExactlyOnce runs a real aggregator on embedded chDB whose data
// dir is a small tmpfs, fills the tmpfs while agents stream, then frees it:
// batches are answered FAILED and retried, the failure is logged, /readyz is
// unready while writes fail and ready after, queries keep working, and the
// stored samples and rollup equal what was sent.
func TestDiskFullExactlyOnce(t *testing.T) {
	if testing.Short() {
		testenv.Skip(t, testenv.Short, "disk-full campaign builds the binary")
	}
	testenv.Root(t, "mounts a tmpfs")
	mount := testenv.LookPath(t, "mount", "mount")
	if !chdbInstalled() {
		testenv.Skip(t, testenv.MissingTool, "chDB library not installed: run scripts/fetch-chdb.sh (or make setup)")
	}
	bin := filepath.Join(t.TempDir(), "fleetprof")
	ctx := context.Background()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.CommandContext(ctx, mount, "-t", "tmpfs", "-o", "size="+diskFullTmpfsSize, "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("umount %s: %v", mnt, err)
		}
	})
	uri := "embedded:" + filepath.Join(mnt, "data")
	agg := newAggProc(t, bin, uri)
	agg.start(t)
	t.Cleanup(func() {
		if agg.cmd.ProcessState == nil {
			agg.kill(t)
		}
	})
	start := time.Now()
	f := startFleet(t, agg.grpc, 4)
	waitFor(t, "first batches acked", func() bool { return f.stats().Acked >= 50 })

	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	failedBefore := f.stats().Failed
	waitFor(t, "/readyz unready", func() bool { return readyzCode(agg.http) == http.StatusServiceUnavailable })
	waitFor(t, "failed attempts", func() bool { return f.stats().Failed > failedBefore+20 })
	// A read can meet the engine mid-way through a failing write; it must
	// answer on one of a few tries, and the log says why one did not.
	code := 0
	for try := 0; try < diskFullQueryTries && code != http.StatusOK; try++ {
		if code = getCode(agg.http, "/api/v1/services"); code != http.StatusOK {
			t.Logf("query while the disk is full, try %d: %d", try+1, code)
			time.Sleep(time.Second)
		}
	}
	if code != http.StatusOK {
		log, _ := os.ReadFile(filepath.Join(agg.logDir, fmt.Sprintf("aggregator-%03d.log", agg.starts)))
		t.Fatalf("query while the disk is full = %d, want 200; aggregator log:\n%s", code, lastLines(string(log), 20))
	}
	failed := f.stats().Failed - failedBefore
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "/readyz ready again", func() bool { return readyzCode(agg.http) == http.StatusOK })
	st := f.finish(t)
	if code := getCode(agg.http, "/api/v1/services"); code != http.StatusOK {
		t.Fatalf("query after recovery = %d, want 200", code)
	}
	var status struct {
		DetachedParts []struct{ Table, Name, Reason string } `json:"detached_parts"`
	}
	getJSONInto(t, agg.http, "/api/v1/storage", &status)
	if len(status.DetachedParts) != 0 {
		t.Fatalf("broken parts after the disk filled: %+v", status.DetachedParts)
	}
	agg.stop(t)
	if agg.logsContain("storage write failed") == 0 || agg.logsContain("storage writes recovered") == 0 {
		t.Fatal("aggregator did not log the storage failure and its recovery")
	}
	if agg.logsContain("storage merges paused") == 0 || agg.logsContain("storage merges resumed") == 0 {
		t.Fatal("aggregator did not pause the engine's merges while the disk was full, or did not resume them")
	}
	// A merge running when the disk fills can be published with every file
	// empty (chDB 26.5 loses those write errors; pausing merges at the first
	// failed write comes a few ms too late for it). The next start sets it
	// aside and serves its source parts, still on disk: a covered part,
	// logged. An uncovered one (rows missing) fails make soak; make test logs
	// it.
	parts := partsReported
	if os.Getenv("FLEETPROF_SOAK") == "1" {
		parts = partsStrict
	}
	samples, rollup := storedTotals(t, uri, start, parts)
	t.Logf("%d batches, %d samples sent; %d failed attempts while full; agents: %d acked, %d duplicate; stored samples %d, rollup total %d",
		f.batches, f.sent, failed, st.Acked, st.Duplicate, samples, rollup)
	if samples != f.sent || rollup != f.sent {
		t.Fatalf("stored samples %d, rollup total %d, sent %d", samples, rollup, f.sent)
	}
}

// fill writes path until the filesystem is full.
func fill(t *testing.T, path string) {
	t.Helper()
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := fh.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
}

// waitFor polls cond until it holds; the bound only ends a hung test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func getCode(addr, path string) int {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func readyzCode(addr string) int { return getCode(addr, "/readyz") }

// diskFullQueryTries is how often the disk-full test asks before it fails.
const diskFullQueryTries = 5

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
