package aggregator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/fleetprof/fleetprof/aggregator/storage"
	"github.com/fleetprof/fleetprof/aggregator/storage/clickhousetest"
	"github.com/fleetprof/fleetprof/internal/testenv"
)

// One chDB engine and one clickhouse-server per test process; each test opens its
// own database on them.
var (
	embeddedDir, embeddedSkip string
	serverAddr, serverSkip    string
	dbSeq                     atomic.Int64
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "fleetprof-aggregator-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The anchor keeps the engine loaded between tests' stores.
	anchor, err := storage.Open(ctx, storage.Config{URI: "embedded:" + dir + "?database=anchor"})
	switch {
	case errors.Is(err, storage.ErrEngineNotInstalled):
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
	backends = append(backends,
		backend{"embedded", func(tb testing.TB) Store {
			return openStore(tb, embeddedSkip, func(db string) string { return "embedded:" + embeddedDir + "?database=" + db })
		}},
		backend{"server", func(tb testing.TB) Store {
			return openStore(tb, serverSkip, func(db string) string { return "clickhouse://" + serverAddr + "/" + db })
		}},
	)
	return m.Run()
}

// openStore opens a real store on a fresh database, or skips naming what is missing.
func openStore(tb testing.TB, skip string, uri func(db string) string) Store {
	tb.Helper()
	if skip != "" {
		testenv.Skip(tb, testenv.MissingTool, "%s", skip)
	}
	s, err := storage.Open(context.Background(), storage.Config{URI: uri(fmt.Sprintf("agg%d", dbSeq.Add(1)))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}
