package chdb

import (
	"fmt"
	"os"
	"testing"

	"github.com/fleetprof/fleetprof/internal/testenv"
)

// One engine per process and ~1 s to start it: every test shares testDB.
var (
	testDB *DB
	// skipReason is set when libchdb.so is absent.
	skipReason string
	// handlersBefore are the signal handlers before chDB was loaded.
	handlersBefore [64]uintptr
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	handlersBefore = signalHandlers()
	if _, err := findLib(""); err != nil {
		skipReason = fmt.Sprintf("chDB library missing, install it with scripts/fetch-chdb.sh: %v", err)
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "fleetprof-chdb-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testDB, err = Open(Config{Path: dir, Settings: map[string]string{"max_threads": "2"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if err := testDB.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return code
}

// needDB skips when the chDB library is not installed.
func needDB(tb testing.TB) *DB {
	tb.Helper()
	if testDB == nil {
		testenv.Skip(tb, testenv.MissingTool, "%s", skipReason)
	}
	return testDB
}
