package symbolize

import (
	"errors"
	"fmt"
	"time"
)

// Config configures a Symbolizer. The zero value is usable: New fills in
// defaults.
type Config struct {
	// ProcRoot is where procfs is mounted. Default "/proc".
	ProcRoot string
	// DebugDirs are searched for separate debug files by build id
	// (<dir>/.build-id/xx/rest.debug). Default ["/usr/lib/debug"].
	DebugDirs []string
	// MaxFiles bounds the number of parsed objects kept in the cache beyond
	// those referenced by tracked processes. Default 32: exited binaries (a build host runs thousands) are rarely seen again.
	MaxFiles int
	// MaxDWARFBytes skips inline expansion for objects whose .debug_info is
	// larger, because parsing it costs time and memory. Default 64 MiB.
	MaxDWARFBytes int64
	// ExitGrace is how long an exited process stays resolvable, for samples
	// that arrive after its exit event. Default 10s.
	ExitGrace time.Duration
	// MinRefresh is the minimum time between re-reads of a live process's
	// maps when an address falls outside every known mapping (dlopen).
	// Default 1s.
	MinRefresh time.Duration
	// NoKernel disables kernel symbolization (all kernel frames unknown).
	NoKernel bool
}

const (
	defaultProcRoot      = "/proc"
	defaultDebugDir      = "/usr/lib/debug"
	defaultMaxFiles      = 32
	defaultMaxDWARFBytes = 64 << 20
	defaultExitGrace     = 10 * time.Second
	defaultMinRefresh    = time.Second
)

func (c *Config) setDefaults() {
	if c.ProcRoot == "" {
		c.ProcRoot = defaultProcRoot
	}
	if c.DebugDirs == nil {
		c.DebugDirs = []string{defaultDebugDir}
	}
	if c.MaxFiles == 0 {
		c.MaxFiles = defaultMaxFiles
	}
	if c.MaxDWARFBytes == 0 {
		c.MaxDWARFBytes = defaultMaxDWARFBytes
	}
	if c.ExitGrace == 0 {
		c.ExitGrace = defaultExitGrace
	}
	if c.MinRefresh == 0 {
		c.MinRefresh = defaultMinRefresh
	}
}

// Validate reports every invalid field. Zero values are valid: they mean
// the default.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxFiles < 0 {
		errs = append(errs, fmt.Errorf("max files %d is negative", c.MaxFiles))
	}
	if c.MaxDWARFBytes < 0 {
		errs = append(errs, fmt.Errorf("max dwarf bytes %d is negative", c.MaxDWARFBytes))
	}
	if c.ExitGrace < 0 {
		errs = append(errs, fmt.Errorf("exit grace %v is negative", c.ExitGrace))
	}
	if c.MinRefresh < 0 {
		errs = append(errs, fmt.Errorf("min refresh %v is negative", c.MinRefresh))
	}
	for i, d := range c.DebugDirs {
		if d == "" {
			errs = append(errs, fmt.Errorf("debug dir %d is empty", i))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("symbolize config: %w", errors.Join(errs...))
	}
	return nil
}
