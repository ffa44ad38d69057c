package storagetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/fleetprof/fleetprof/aggregator/storage"
	"github.com/fleetprof/fleetprof/internal/testenv"
)

// Embedded is an embedded store in a temporary directory, shared by a test binary.
type Embedded struct {
	// Store is nil when the chDB library is not installed.
	Store *storage.Store
	skip  string
	dir   string
}

// OpenEmbedded opens an embedded store in a new temporary directory. A missing chDB
// library is not an error: Store stays nil and Require skips.
func OpenEmbedded() (*Embedded, error) {
	dir, err := os.MkdirTemp("", "fleetprof-test-store-")
	if err != nil {
		return nil, fmt.Errorf("embedded test store: %w", err)
	}
	e := &Embedded{dir: dir}
	st, err := storage.Open(context.Background(), storage.Config{URI: "embedded:" + dir})
	switch {
	case errors.Is(err, storage.ErrEngineNotInstalled):
		e.skip = "chDB library not installed (run scripts/fetch-chdb.sh or make setup): " + err.Error()
	case err != nil:
		os.RemoveAll(dir)
		return nil, fmt.Errorf("open embedded test store: %w", err)
	default:
		e.Store = st
	}
	return e, nil
}

// Require returns the store, or skips tb when chDB is not installed.
func (e *Embedded) Require(tb testing.TB) *storage.Store {
	tb.Helper()
	if e.Store == nil {
		testenv.Skip(tb, testenv.MissingTool, "%s", e.skip)
	}
	return e.Store
}

// Close closes the store and removes its directory.
func (e *Embedded) Close() {
	if e.Store != nil {
		e.Store.Close()
	}
	os.RemoveAll(e.dir)
}
