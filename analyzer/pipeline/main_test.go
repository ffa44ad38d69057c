package pipeline

import (
	"context"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/aggregator"
	"github.com/fleetprof/fleetprof/aggregator/pprofconv"
	"github.com/fleetprof/fleetprof/aggregator/storage"
	"github.com/fleetprof/fleetprof/aggregator/storage/storagetest"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

var update = flag.Bool("update", false, "rewrite golden files")

// One embedded chDB engine per test process: every test shares this store and uses
// its own service names.
var (
	store  *storage.Store
	shared *storagetest.Embedded
	aggURL string
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	flag.Parse()
	e, err := storagetest.OpenEmbedded()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer e.Close()
	shared = e
	if s := e.Store; s != nil {
		store = s
		srv, err := aggregator.New(aggregator.Config{}, s, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "aggregator:", err)
			return 1
		}
		ts := httptest.NewServer(srv.Handler())
		defer ts.Close()
		aggURL = ts.URL
	}
	return m.Run()
}

// needStore skips without chDB and returns the aggregator's URL.
func needStore(t *testing.T) string {
	t.Helper()
	shared.Require(t)
	return aggURL
}

// ingest stores samples as one batch.
func ingest(t *testing.T, id string, samples []samplebatch.Sample) {
	t.Helper()
	b, err := samplebatch.Encode(samples)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := samplebatch.Decode(b, samplebatch.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Ingest(context.Background(), id, batch); err != nil {
		t.Fatal(err)
	}
}

// ingestPprof imports a pprof file for service.
func ingestPprof(t *testing.T, path, service string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	samples, err := pprofconv.Parse(data, pprofconv.ImportOptions{Labels: samplebatch.Labels{Service: service, Version: "v1", Host: "ci"}})
	if err != nil {
		t.Fatal(err)
	}
	ingest(t, service+"-"+filepath.Base(path), samples)
}

// run runs a command in dir and fails the test on error.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// gitEnv fixes identity and dates so commit hashes are reproducible.
func gitEnv(author string, when time.Time) []string {
	name, email := splitAuthor(author)
	d := when.UTC().Format(time.RFC3339)
	return []string{"GIT_AUTHOR_NAME=" + name, "GIT_AUTHOR_EMAIL=" + email, "GIT_COMMITTER_NAME=" + name,
		"GIT_COMMITTER_EMAIL=" + email, "GIT_AUTHOR_DATE=" + d, "GIT_COMMITTER_DATE=" + d,
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file (go test -update to accept):\n--- got ---\n%s\n--- want ---\n%s", name, got, want)
	}
}
