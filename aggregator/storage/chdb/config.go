package chdb

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// DefaultConns is the default number of pooled connections.
const DefaultConns = 2

// maxConns bounds Config.Conns; each connection is a full ClickHouse
// session, and the engine's own thread pools do the parallel work.
const maxConns = 64

// Config configures the embedded engine.
type Config struct {
	// Path is the data directory. It is created if missing. One engine and
	// one path per process.
	Path string
	// LibPath is an explicit libchdb.so. Empty means $FLEETPROF_CHDB_LIB,
	// then /usr/local/lib, $HOME/.local/lib and /usr/lib.
	LibPath string
	// Conns is the number of connections in the pool (default 2). Queries
	// on different connections run in parallel; each connection runs one
	// statement at a time.
	Conns int
	// Settings are ClickHouse query-level settings applied to every pooled
	// connection (e.g. "max_threads": "2").
	Settings map[string]string
}

// withDefaults returns cfg with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.Conns == 0 {
		c.Conns = DefaultConns
	}
	return c
}

// Validate reports what is wrong with the configuration, if anything.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Path == "" {
		return errors.New("chdb: config: Path is empty")
	}
	if strings.ContainsRune(c.Path, 0) {
		return errors.New("chdb: config: Path contains a NUL byte")
	}
	if c.Conns < 1 || c.Conns > maxConns {
		return fmt.Errorf("chdb: config: Conns %d out of range [1, %d]", c.Conns, maxConns)
	}
	for k, v := range c.Settings {
		if k == "" || strings.ContainsAny(k, "= \t\n\x00") || strings.ContainsRune(v, 0) {
			return fmt.Errorf("chdb: config: bad setting %q", k)
		}
	}
	return nil
}

// args builds chdb_connect's argv.
func (c Config) args(path string) []string {
	a := []string{"fleetprof", "--path=" + path}
	keys := make([]string, 0, len(c.Settings))
	for k := range c.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		a = append(a, "--"+k+"="+c.Settings[k])
	}
	return a
}
