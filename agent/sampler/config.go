package sampler

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/fleetprof/fleetprof/agent/unwind"
)

// Defaults and limits of Config.
const (
	DefaultHz            = 19
	DefaultDrainInterval = 10 * time.Second
	DefaultEventRingSize = 256 << 10
	DefaultEventBuffer   = 1024
	// DefaultUnwindRows is the unwind_rows array size (16 bytes each).
	DefaultUnwindRows = unwind.DefaultMaxRowBytes / unwind.RowSize
	// DefaultUnwindFiles is the number of unwind_files entries (file ids).
	DefaultUnwindFiles = unwind.DefaultMaxFiles
	// DefaultUnwindProcs is the number of processes pid_maps holds
	// (allocated on use, ~6 KiB each).
	DefaultUnwindProcs = 16384
	// maxUnwindRows is the walker's binary-search depth (ROW_SEARCH_STEPS).
	maxUnwindRows = 1 << 24
	// maxUnwindFiles is MAX_FILES in bpf/native.bpf.h.
	maxUnwindFiles = 65536

	// MaxHz is the kernel's default perf_event_max_sample_rate order of
	// magnitude; beyond a few kHz the sampler itself dominates CPU time.
	MaxHz = 10000

	minStackMapEntries     = 16384
	maxDefaultStackEntries = 1 << 16 // ~67 MB of kernel memory
	maxStackMapEntries     = 1 << 18 // ~270 MB of stack slots; more is a mistake
	minCountMapEntries     = 4096
	maxCountMapEntries     = 1 << 22
)

// Config configures a Sampler. The zero value of every field means "default";
// WithDefaults fills them in.
type Config struct {
	// Hz is the sampling frequency per CPU (default 19).
	Hz int
	// DrainInterval is how often the caller intends to call Drain. It only
	// sizes the default maps: the kernel keeps one interval's worth of data.
	DrainInterval time.Duration
	// StackMapEntries is the size of the stack-trace map. Two different
	// stacks hashing to the same bucket lose the second one (EEXIST,
	// counted as a stack collision): with n distinct stacks per drain
	// interval about n/(2 × entries) of them are lost, so size it well
	// above n, or drain more often. Each entry costs ~1 KiB of kernel
	// memory, twice (double buffering). Default: CPUs × Hz ×
	// (DrainInterval + 1 s), within [16384, 65536], rounded up to a power
	// of two (the kernel's bucket count).
	StackMapEntries int
	// CountMapEntries is the number of distinct (thread, comm, stacks)
	// keys the kernel can hold between drains. Default: CPUs × Hz ×
	// (DrainInterval + 1 s), i.e. every sample distinct, within
	// [4096, 4194304].
	CountMapEntries int
	// SampleIdle also records samples of the idle task (pid 0); they are
	// skipped and counted in Stats.IdleSkipped by default.
	SampleIdle bool
	// EventRingSize is the process-event ring buffer size in bytes: a power
	// of two and a multiple of the page size (default 256 KiB).
	EventRingSize int
	// EventBuffer is the capacity of the Events channel (default 1024).
	// When the reader falls behind, the kernel ring fills and further
	// events are counted as DropEventsLost.
	EventBuffer int
	// UnwindRows, UnwindFiles and UnwindProcs size the unwind-table maps
	// (unwind_rows, unwind_files, pid_maps); agent/unwind.Loader fills them.
	UnwindRows, UnwindFiles, UnwindProcs int
	// FramePointersOnly walks user stacks by frame pointers only (the
	// baseline for measuring table-driven unwinding).
	FramePointersOnly bool
}

// WithDefaults returns c with zero fields set to their defaults, sized for
// the online CPUs of this host.
func (c Config) WithDefaults() Config {
	n := runtime.NumCPU()
	if cpus, err := onlineCPUs(); err == nil {
		n = len(cpus)
	}
	return c.withDefaults(n)
}

func (c Config) withDefaults(ncpu int) Config {
	if c.Hz == 0 {
		c.Hz = DefaultHz
	}
	if c.DrainInterval == 0 {
		c.DrainInterval = DefaultDrainInterval
	}
	perDrain := int64(ncpu) * int64(c.Hz) * int64(c.DrainInterval/time.Second+1)
	if c.StackMapEntries == 0 {
		c.StackMapEntries = int(nextPow2(clamp(perDrain, minStackMapEntries, maxDefaultStackEntries)))
	}
	if c.CountMapEntries == 0 {
		c.CountMapEntries = int(clamp(perDrain, minCountMapEntries, maxCountMapEntries))
	}
	if c.EventRingSize == 0 {
		c.EventRingSize = DefaultEventRingSize
	}
	if c.EventBuffer == 0 {
		c.EventBuffer = DefaultEventBuffer
	}
	if c.UnwindRows == 0 {
		c.UnwindRows = DefaultUnwindRows
	}
	if c.UnwindFiles == 0 {
		c.UnwindFiles = DefaultUnwindFiles
	}
	if c.UnwindProcs == 0 {
		c.UnwindProcs = DefaultUnwindProcs
	}
	return c
}

// Validate reports the first invalid field. Call it on WithDefaults' result.
func (c Config) Validate() error {
	switch {
	case c.Hz < 1 || c.Hz > MaxHz:
		return fmt.Errorf("hz %d out of range [1, %d]", c.Hz, MaxHz)
	case c.DrainInterval <= 0:
		return fmt.Errorf("drain interval %v must be positive", c.DrainInterval)
	case c.StackMapEntries < 1 || c.StackMapEntries > maxStackMapEntries:
		return fmt.Errorf("stack map entries %d out of range [1, %d]", c.StackMapEntries, maxStackMapEntries)
	case c.CountMapEntries < 1 || c.CountMapEntries > maxCountMapEntries:
		return fmt.Errorf("count map entries %d out of range [1, %d]", c.CountMapEntries, maxCountMapEntries)
	case c.EventRingSize < os.Getpagesize() || c.EventRingSize&(c.EventRingSize-1) != 0:
		return fmt.Errorf("event ring size %d must be a power of two of at least one page (%d)", c.EventRingSize, os.Getpagesize())
	case c.UnwindRows < 1 || c.UnwindRows > maxUnwindRows:
		return fmt.Errorf("unwind rows %d out of range [1, %d]", c.UnwindRows, maxUnwindRows)
	case c.UnwindFiles < 1 || c.UnwindFiles > maxUnwindFiles:
		return fmt.Errorf("unwind files %d out of range [1, %d]", c.UnwindFiles, maxUnwindFiles)
	case c.UnwindProcs < 1:
		return fmt.Errorf("unwind procs %d must be positive", c.UnwindProcs)
	case c.EventBuffer < 0:
		return fmt.Errorf("event buffer %d must not be negative", c.EventBuffer)
	}
	return nil
}

func clamp(v, lo, hi int64) int64 {
	return min(max(v, lo), hi)
}

func nextPow2(v int64) int64 {
	p := int64(1)
	for p < v {
		p <<= 1
	}
	return p
}
