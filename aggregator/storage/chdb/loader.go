package chdb

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"
)

// EnvLib names the environment variable that points at libchdb.so.
const EnvLib = "FLEETPROF_CHDB_LIB"

// ErrLibraryNotFound is wrapped by Open when no libchdb.so can be found.
var ErrLibraryNotFound = errors.New("libchdb.so not found")

// The library is loaded at most once per process and never unloaded.
var lib struct {
	mu   sync.Mutex
	path string // resolved path of the loaded library, "" until loaded
}

// libCandidates lists where to look, in order. An explicit path or the
// environment variable is authoritative: pointing at a missing file is a
// configuration error, not a reason to silently pick another copy.
func libCandidates(explicit string) []string {
	if explicit != "" {
		return []string{explicit}
	}
	if env := os.Getenv(EnvLib); env != "" {
		return []string{env}
	}
	c := []string{"/usr/local/lib/libchdb.so"}
	if home, err := os.UserHomeDir(); err == nil {
		c = append(c, filepath.Join(home, ".local/lib/libchdb.so"))
	}
	return append(c, "/usr/lib/libchdb.so")
}

// findLib returns the first candidate that is a regular file.
func findLib(explicit string) (string, error) {
	cands := libCandidates(explicit)
	for _, p := range cands {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("chdb: %w (looked in %s): run scripts/fetch-chdb.sh (or make setup)",
		ErrLibraryNotFound, strings.Join(cands, ", "))
}

// loadLib dlopens libchdb.so once. Loading a second, different file in the
// same process is refused: symbols of the first one are already in use.
func loadLib(explicit string) (string, error) {
	path, err := findLib(explicit)
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("chdb: resolve library path: %w", err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	lib.mu.Lock()
	defer lib.mu.Unlock()
	if lib.path != "" {
		if lib.path != abs {
			return "", fmt.Errorf("chdb: library already loaded from %s, cannot also load %s", lib.path, abs)
		}
		return abs, nil
	}
	cpath := C.CString(abs)
	defer C.free(unsafe.Pointer(cpath))
	var buf [512]C.char
	if C.fp_chdb_load(cpath, &buf[0], C.size_t(len(buf))) != 0 {
		return "", fmt.Errorf("chdb: load %s: %s", abs, C.GoString(&buf[0]))
	}
	lib.path = abs
	return abs, nil
}

// signalHandlers reports the handler address installed for signals 1..64;
// tests use it to prove chDB left Go's handlers in place.
func signalHandlers() [64]uintptr {
	var out [64]C.uintptr_t
	C.fp_signal_handlers(&out[0])
	var r [64]uintptr
	for i, v := range out {
		r[i] = uintptr(v)
	}
	return r
}
