package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/fleetprof/fleetprof/aggregator/storage"
)

// One data directory for every command: `up` keeps its store, spool, ingest token,
// address file and (in repos/) the services' git checkouts for root cause there; `aggregator` and `analyze` default to its store; `import`,
// `simulate`, `query`, `analyze` and `pipeline` find a running `up` through it.
const (
	defaultDataDir = "./fleetprof-data"
	// tokenFileName holds up's ingest token (mode 0600).
	tokenFileName = "token"
	// upStateName holds where a running up listens (removed when it stops).
	upStateName = "up.json"
	// upRepoDir is the default directory of up's per-service git checkouts.
	upRepoDir = "repos"
)

// embeddedURI is the embedded store inside a data directory.
func embeddedURI(dataDir string) string {
	return "embedded:" + filepath.Join(dataDir, "clickhouse")
}

// upState is what a running `fleetprof up` tells local clients.
type upState struct {
	PID  int    `json:"pid"`
	HTTP string `json:"http"` // dialable, e.g. 127.0.0.1:7070
	GRPC string `json:"grpc"`
	// RepoDir holds the per-service git checkouts its analyzer uses for root cause
	// (RepoDir/SERVICE).
	RepoDir string `json:"repo_dir,omitempty"`
}

// writeUpState writes the token file (0600) and the state file into dir; the
// returned func removes the state file (the token stays valid for a restart).
func writeUpState(dir string, st upState, token string) (func(), error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	tokPath := filepath.Join(dir, tokenFileName)
	if err := os.WriteFile(tokPath, []byte(token+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write token file: %w", err)
	}
	if err := os.Chmod(tokPath, 0o600); err != nil { // an older file keeps its mode on WriteFile
		return nil, fmt.Errorf("token file: %w", err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode up state: %w", err)
	}
	statePath := filepath.Join(dir, upStateName)
	if err := os.WriteFile(statePath, append(b, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("write up state: %w", err)
	}
	return func() { _ = os.Remove(statePath) }, nil
}

// runningUp returns the state of the `up` running with data dir dir, or nil when
// none is (no state file, or its process is gone).
func runningUp(dir string) *upState {
	b, err := fs.ReadFile(os.DirFS(dir), upStateName)
	if err != nil {
		return nil
	}
	var st upState
	if json.Unmarshal(b, &st) != nil || st.PID <= 0 || !processAlive(st.PID) {
		return nil
	}
	return &st
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// localToken returns up's ingest token from dir when the client talks to that up
// (addr is its gRPC or HTTP address, or empty), "" otherwise.
func localToken(dir, addr string) string {
	st := runningUp(dir)
	if st == nil {
		return ""
	}
	if addr != "" {
		a := strings.TrimPrefix(strings.TrimPrefix(addr, "http://"), "https://")
		a = strings.TrimSuffix(a, "/")
		if dialAddr(a) != st.GRPC && dialAddr(a) != st.HTTP {
			return ""
		}
	}
	tok, err := readTokenFile(filepath.Join(dir, tokenFileName))
	if err != nil {
		return ""
	}
	return tok
}

// resolveToken picks the bearer token: --token, else --token-file, else the token
// of a local `up` that addr points at.
func resolveToken(token, tokenFile, dataDir, addr string) (string, error) {
	switch {
	case token != "":
		return token, nil
	case tokenFile != "":
		return readTokenFile(tokenFile)
	}
	return localToken(dataDir, addr), nil
}

func readTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path) //nolint:gosec // --token-file or the user's --data directory
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return t, nil
}

// errDataDirLocked: another process (usually a running up or aggregator) holds the
// embedded store.
var errDataDirLocked = errors.New("data directory in use by another process")

// openStore opens the store, turning chDB's "Cannot lock file …/status" into an
// error naming the process that holds the directory (instead of the libchdb hint).
func openStore(ctx context.Context, cfg storage.Config) (*storage.Store, error) {
	if dir, ok := strings.CutPrefix(cfg.URI, "embedded:"); ok {
		dir, _, _ = strings.Cut(dir, "?")
		if statusLocked(dir) {
			return nil, fmt.Errorf("%w: %s is locked by %s; while it runs, go through it (fleetprof analyze --aggregator URL, the default when it is fleetprof up) or stop it first",
				errDataDirLocked, dir, lockHolder(dir))
		}
	}
	st, err := storage.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open storage: %w", err)
	}
	return st, nil
}

// statusLocked reports whether a ClickHouse engine holds dir: it keeps an
// exclusive flock on dir/status while it runs.
func statusLocked(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "status"))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// lockHolder names the process in ClickHouse's status file ("PID: N" line).
func lockHolder(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return "another process"
	}
	for line := range strings.Lines(string(b)) {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "PID:")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			break
		}
		name := "process"
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && len(comm) > 0 {
			name = strings.Join(strings.Fields(strings.ReplaceAll(string(comm), "\x00", " ")), " ")
		}
		return fmt.Sprintf("PID %d (%s)", pid, name)
	}
	return "another process"
}

// localHTTP is addr, or the HTTP address of the up running with data dir dataDir
// when the user did not give one (set false).
func localHTTP(addr string, set bool, dataDir string) string {
	if set {
		return addr
	}
	if st := runningUp(dataDir); st != nil {
		return "http://" + st.HTTP
	}
	return addr
}

// localGRPC is like localHTTP for the ingest address, with dataDir.
func localGRPC(addr string, set bool, dataDir string) string {
	if set {
		return addr
	}
	if st := runningUp(dataDir); st != nil {
		return st.GRPC
	}
	return addr
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
