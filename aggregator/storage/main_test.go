package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/fleetprof/fleetprof/aggregator/storage/chdb"
	"github.com/fleetprof/fleetprof/aggregator/storage/clickhousetest"
	"github.com/fleetprof/fleetprof/internal/testenv"
)

// One chDB engine and one clickhouse-server per test process; every test
// gets its own database on each.
var (
	embeddedDir  string
	embeddedSkip string
	serverAddr   string
	serverSkip   string
	dbSeq        atomic.Int64
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "fleetprof-storage-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The anchor keeps the engine running between tests' stores.
	anchor, err := Open(ctx, Config{URI: "embedded:" + dir + "?database=anchor"})
	switch {
	case errors.Is(err, chdb.ErrLibraryNotFound):
		embeddedSkip = "chDB library not installed (run scripts/fetch-chdb.sh or make setup): " + err.Error()
	case err != nil:
		fmt.Fprintln(os.Stderr, "open embedded store:", err)
		return 1
	default:
		embeddedDir = dir
		defer anchor.Close()
	}
	srv, err := clickhousetest.Launch(clickhousetest.Options{})
	switch {
	case errors.Is(err, clickhousetest.ErrNotInstalled):
		serverSkip = err.Error()
	case err != nil:
		fmt.Fprintln(os.Stderr, "start clickhouse-server:", err)
		return 1
	default:
		serverAddr = srv.Addr
		defer srv.Stop()
	}
	return m.Run()
}

type backendCase struct {
	name string
	uri  func(db string) string
	skip string
}

func backends() []backendCase {
	return []backendCase{
		{name: "embedded", uri: func(db string) string { return "embedded:" + embeddedDir + "?database=" + db }, skip: embeddedSkip},
		{name: "server", uri: func(db string) string { return "clickhouse://" + serverAddr + "/" + db }, skip: serverSkip},
	}
}

// eachBackend runs f against a fresh store (own database) on every backend.
func eachBackend(t *testing.T, cfg Config, f func(t *testing.T, s *Store)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			if b.skip != "" {
				testenv.Skip(t, testenv.MissingTool, "%s", b.skip)
			}
			c := cfg
			c.URI = b.uri(fmt.Sprintf("t%d", dbSeq.Add(1)))
			s, err := Open(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			f(t, s)
		})
	}
}
