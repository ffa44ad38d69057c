package agent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/agent/labels"
	"github.com/fleetprof/fleetprof/agent/sampler"
	"github.com/fleetprof/fleetprof/agent/ship"
	"github.com/fleetprof/fleetprof/agent/unwind"
)

// Defaults of Config.
const (
	DefaultAggregator    = "127.0.0.1:7071"
	DefaultHz            = 19
	DefaultFlushInterval = 10 * time.Second
	DefaultSpoolDir      = "/var/lib/fleetprof/spool"
	DefaultSpoolMaxBytes = ship.DefaultSpoolMaxBytes
	DefaultMetricsAddr   = "127.0.0.1:7072"
	// MetricsOff as MetricsAddr disables the metrics server.
	MetricsOff = "off"
	// DefaultMaxRowsPerBatch keeps one batch well within the aggregator's
	// limits (1M rows, 16 MiB) on hosts with many CPUs.
	DefaultMaxRowsPerBatch = 50_000
	// DefaultMaxFrameNameBytes keeps frame names readable and well under the
	// aggregator's stored-name limit (1 KiB), which a demangled C++ template
	// instantiation (std::sort over std::string: 1,360 bytes) exceeds.
	DefaultMaxFrameNameBytes = 512
	// DefaultMaxBatchBytes is half the aggregator's default message limit
	// (16 MiB), leaving room for a smaller limit set there.
	DefaultMaxBatchBytes = 8 << 20
	// DefaultMemoryLimit is the agent's soft Go memory limit: the symbol
	// tables of every binary running on the host stay resident, and
	// parsing a big binary briefly needs tens of MB more, which a
	// default GC would let grow into double the live heap.
	DefaultMemoryLimit = 96 << 20
	// DefaultExecRefreshDelays: after exec a process's maps are read again
	// this long later, because the dynamic loader maps libc and the other
	// libraries only after the exec event (the walker's own refresh request
	// is rate-limited to one per 200 ms, longer than many processes live).
	DefaultExecRefreshDelays = "5ms,50ms"
	// DefaultForkReadDelay: a fork child is read this long after its fork
	// unless it exec'd meanwhile (then it is read once, as the new image).
	// A shell's children exec within a millisecond; reading each first as
	// a copy of the shell doubled the agent's per-exec work.
	DefaultForkReadDelay = 10 * time.Millisecond
	// DefaultGCPercent is GOGC for the agent process.
	DefaultGCPercent = 50
)

// Kubernetes modes.
const (
	KubeAuto = "auto" // list pods when running in a cluster
	KubeOn   = "on"   // list pods; fail if not possible
	KubeOff  = "off"
)

// minFrameNameBytes is the smallest MaxFrameNameBytes: room for a short qualified
// name plus ShortenName's hash marker.
const minFrameNameBytes = 64

// minBatchBytes is the smallest MaxBatchBytes: a batch of one row with its Arrow
// schema must fit.
const minBatchBytes = 16 << 10

// Config configures the agent. Zero fields mean the defaults.
type Config struct {
	// Aggregator is the ingest gRPC address (default 127.0.0.1:7071).
	Aggregator string
	// Hz is the sampling frequency per CPU (default 19).
	Hz int
	// FlushInterval is how often samples are drained and shipped; it is also
	// the time bucket of a batch (default 10 s).
	FlushInterval time.Duration
	// Token or TokenFile (read at New) is the bearer token for the aggregator.
	Token, TokenFile string
	TLS              ship.TLSConfig
	// SpoolDir holds batches until acknowledged (default /var/lib/fleetprof/spool).
	SpoolDir      string
	SpoolMaxBytes int64 // default 256 MiB
	// NodeName is the host label and the agent id (default $NODE_NAME, then
	// the hostname).
	NodeName string
	// MetricsAddr serves /metrics (default 127.0.0.1:7072; "off" disables).
	MetricsAddr string
	// Pprof serves the Go runtime's profiles under /debug/pprof/ on
	// MetricsAddr, so the agent itself can be profiled (off by default: the
	// endpoints reveal the command line and cost CPU while profiling).
	Pprof bool
	// Labels are the service/version rules; Labels.Kube is set by the agent.
	Labels labels.Config
	// Kube is "auto" (default), "on" or "off"; KubeConfig's Node defaults to
	// NodeName.
	Kube       string
	KubeConfig labels.KubeConfig
	// MaxRowsPerBatch splits large flushes (default 50,000).
	MaxRowsPerBatch int
	// MaxFrameNameBytes is the longest frame name shipped; longer names are
	// shortened deterministically (samplebatch.ShortenName: template and
	// parameter lists elided, else prefix, hash marker and suffix). Default 512.
	MaxFrameNameBytes int
	// MaxBatchBytes is the largest encoded batch spooled; bigger ones are
	// split, and a single row still bigger is dropped and counted. Keep it at
	// or below the aggregator's max-message-bytes. Default 8 MiB.
	MaxBatchBytes int
	// MemoryLimit and GCPercent are applied to the whole process by Open
	// (debug.SetMemoryLimit, debug.SetGCPercent) unless GOMEMLIMIT or GOGC
	// is set in the environment (defaults 96 MiB and 50; -1 leaves the
	// runtime's setting alone). The limit is soft: a bigger live heap is
	// not an error, the GC just runs more often.
	MemoryLimit int64
	GCPercent   int
	// ExecRefreshDelays are when, after exec, a process's maps are read
	// again (default 5 ms and 50 ms; see DefaultExecRefreshDelays).
	ExecRefreshDelays []time.Duration
	// ForkReadDelay is how long a fork child waits before it is read
	// (default DefaultForkReadDelay; negative: at once). Its samples
	// meanwhile are walked once the walker asks for its maps.
	ForkReadDelay time.Duration
	// Unwind bounds the unwind tables compiled from .eh_frame (default
	// 32 MiB of rows, least recently used evicted; 8192 files). Its
	// CacheDir defaults to "unwind" next to SpoolDir
	// (/var/lib/fleetprof/unwind), unwind.CacheOff disables the cache.
	Unwind unwind.Config
	// Ship overrides shipper settings other than those above (tests: backoff,
	// clock). Addr, AgentID, Token, TLS and spool fields are set from Config.
	Ship ship.Config
}

// WithDefaults returns c with zero fields filled in.
func (c Config) WithDefaults() Config {
	if c.Aggregator == "" {
		c.Aggregator = DefaultAggregator
	}
	if c.Hz == 0 {
		c.Hz = DefaultHz
	}
	c.Unwind = c.Unwind.WithDefaults()
	if c.ForkReadDelay == 0 {
		c.ForkReadDelay = DefaultForkReadDelay
	}
	if c.ExecRefreshDelays == nil {
		for _, f := range strings.Split(DefaultExecRefreshDelays, ",") {
			d, _ := time.ParseDuration(f) // a constant that parses
			c.ExecRefreshDelays = append(c.ExecRefreshDelays, d)
		}
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.SpoolDir == "" {
		c.SpoolDir = DefaultSpoolDir
	}
	if c.Unwind.CacheDir == "" {
		c.Unwind.CacheDir = filepath.Join(filepath.Dir(c.SpoolDir), "unwind")
	}
	if c.SpoolMaxBytes == 0 {
		c.SpoolMaxBytes = DefaultSpoolMaxBytes
	}
	if c.NodeName == "" {
		c.NodeName = os.Getenv("NODE_NAME")
	}
	if c.NodeName == "" {
		c.NodeName, _ = os.Hostname()
	}
	if c.MetricsAddr == "" {
		c.MetricsAddr = DefaultMetricsAddr
	}
	if c.Kube == "" {
		c.Kube = KubeAuto
	}
	if c.KubeConfig.Node == "" {
		c.KubeConfig.Node = c.NodeName
	}
	if c.MaxRowsPerBatch == 0 {
		c.MaxRowsPerBatch = DefaultMaxRowsPerBatch
	}
	if c.MaxFrameNameBytes == 0 {
		c.MaxFrameNameBytes = DefaultMaxFrameNameBytes
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MemoryLimit == 0 {
		c.MemoryLimit = DefaultMemoryLimit
	}
	if c.GCPercent == 0 {
		c.GCPercent = DefaultGCPercent
	}
	return c
}

// Validate reports the first invalid field. Call it on WithDefaults' result.
func (c Config) Validate() error {
	if err := c.Unwind.Validate(); err != nil {
		return fmt.Errorf("unwind: %w", err)
	}
	if c.ForkReadDelay > c.FlushInterval {
		return fmt.Errorf("fork read delay %v above the flush interval %v", c.ForkReadDelay, c.FlushInterval)
	}
	for _, d := range c.ExecRefreshDelays {
		if d <= 0 || d > c.FlushInterval {
			return fmt.Errorf("exec refresh delay %v out of range (0, flush interval %v]", d, c.FlushInterval)
		}
	}
	switch {
	case c.Aggregator == "":
		return errors.New("aggregator address is empty")
	case c.Hz < 1 || c.Hz > sampler.MaxHz:
		return fmt.Errorf("hz %d out of range [1, %d]", c.Hz, sampler.MaxHz)
	case c.FlushInterval < time.Second:
		return fmt.Errorf("flush interval %v is below 1s (batch timestamps are in seconds)", c.FlushInterval)
	case c.Token != "" && c.TokenFile != "":
		return errors.New("both token and token file are set")
	case c.SpoolDir == "":
		return errors.New("spool dir is empty")
	case c.SpoolMaxBytes <= 0:
		return fmt.Errorf("spool max bytes %d must be positive", c.SpoolMaxBytes)
	case c.NodeName == "":
		return errors.New("node name is empty (set NODE_NAME)")
	case c.Kube != KubeAuto && c.Kube != KubeOn && c.Kube != KubeOff:
		return fmt.Errorf("kubernetes mode %q (want auto, on or off)", c.Kube)
	case c.MaxRowsPerBatch < 1:
		return fmt.Errorf("max rows per batch %d must be positive", c.MaxRowsPerBatch)
	case c.MaxFrameNameBytes < minFrameNameBytes:
		return fmt.Errorf("max frame name bytes %d is below %d", c.MaxFrameNameBytes, minFrameNameBytes)
	case c.MaxBatchBytes < minBatchBytes:
		return fmt.Errorf("max batch bytes %d is below %d", c.MaxBatchBytes, minBatchBytes)
	case c.MemoryLimit < -1:
		return fmt.Errorf("memory limit %d must be positive or -1", c.MemoryLimit)
	case c.GCPercent < -1:
		return fmt.Errorf("gc percent %d must be positive or -1", c.GCPercent)
	}
	if c.Pprof && c.MetricsAddr == MetricsOff {
		return errors.New("pprof is served on the metrics address: it cannot be off")
	}
	if c.MetricsAddr != MetricsOff {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("metrics address %q: %w", c.MetricsAddr, err)
		}
	}
	if _, _, err := net.SplitHostPort(c.Aggregator); err != nil {
		return fmt.Errorf("aggregator address %q: %w", c.Aggregator, err)
	}
	return nil
}

// periodNS is the sampling period, the weight of one sample.
func (c Config) periodNS() int64 { return int64(time.Second) / int64(c.Hz) }
