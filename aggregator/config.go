package aggregator

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config configures the server.
type Config struct {
	GRPCAddr string // ingest; default 127.0.0.1:7071
	HTTPAddr string // query API, metrics, UI; default 127.0.0.1:7070
	// Storage is the store URI ("embedded:DIR" or "clickhouse://HOST:PORT/DB"). The
	// server does not open it (its caller does); it is here so one Config describes
	// a deployment. Default DefaultStorage.
	Storage string
	// Token, when set (or read from TokenFile), is required as "authorization:
	// Bearer <token>" on ingest calls.
	Token     string
	TokenFile string
	// ReadToken, when set (or read from ReadTokenFile, reread when it changes), is
	// required as a bearer token or login cookie on the HTTP API, UI and /metrics;
	// /healthz and /readyz stay open for probes. Separate from the ingest Token.
	ReadToken     string
	ReadTokenFile string
	// MetricsOpen leaves /metrics without the read token.
	MetricsOpen bool
	// TLSCert and TLSKey (PEM files) turn on TLS for both listeners.
	TLSCert, TLSKey string
	// MaxMessageBytes bounds one batch; bigger batches are REJECTED (the stream
	// goes on) up to oversizeReadFactor times this, beyond which gRPC ends the
	// stream with ResourceExhausted. Default 16 MiB.
	MaxMessageBytes int
	// ShutdownTimeout bounds graceful shutdown before connections are cut; default 10s.
	ShutdownTimeout time.Duration
	// UnreadyAfterWriteFailures is how many storage write failures in a row
	// make /readyz answer 503 (until a write succeeds); default 3.
	UnreadyAfterWriteFailures int
	// ResumeMergesFreeBytes: background merges, paused while writes fail
	// for lack of space, resume once a write succeeds and the data disk has
	// this much free (when the engine reports it); default 64 MiB.
	ResumeMergesFreeBytes int64
	// Group commit (stores that write several batches at once): batches
	// arriving on any streams are written together, at most MaxCommitBatches
	// batches and MaxCommitRows rows per write, waiting up to CommitInterval
	// for more while no write is running. Acks follow the write. Defaults 5ms,
	// 256 batches, 1,000,000 rows; MaxCommitBatches 1 writes every batch alone.
	CommitInterval   time.Duration
	MaxCommitBatches int
	MaxCommitRows    int
	// WALDir, when set, turns on the ingest write-ahead log (aggregator/wal):
	// a batch is acknowledged once it is fsynced there, and logged batches
	// are written to the store every WALFlushInterval (or once MaxCommitRows
	// rows wait) in groups of up to MaxCommitRows rows. Queries flush first.
	// At most WALMaxPendingBytes of acknowledged messages wait in memory;
	// past it a batch waits up to WALMaxWait for room, then is FAILED.
	// Defaults: off, DefaultWALFlushInterval, DefaultWALMaxPendingBytes,
	// DefaultWALMaxWait.
	WALDir             string
	WALFlushInterval   time.Duration
	WALMaxPendingBytes int
	WALMaxWait         time.Duration
	// StackCache is how many verified stacks ingest remembers across batches
	// (samplebatch.DecodeCached), so that a stack an agent sends again in every
	// batch is neither rebuilt nor re-hashed. Its frame slices are shared with
	// the decoded batches and the store's own cache. Default DefaultStackCache;
	// -1 turns it off.
	StackCache int
	// Pprof serves the Go runtime's profiles under /debug/pprof/ on the HTTP port
	// (off by default: they expose process internals).
	Pprof bool
	// QueryTimeout is the deadline of one HTTP query, including the wait for a query
	// slot; past it the answer is 504. Default 30s.
	QueryTimeout time.Duration
	// MaxConcurrentQueries bounds HTTP queries running against the store at once, so
	// queries cannot take every storage connection ingest needs; more wait for a slot
	// (until their deadline). Default 1.
	MaxConcurrentQueries int
}

// oversizeReadFactor is how far past MaxMessageBytes a message is still read, to
// answer it with a per-batch REJECTED; it bounds the memory one oversized message
// may hold.
const oversizeReadFactor = 4

// maxMessageBytesCap keeps MaxMessageBytes × oversizeReadFactor a sane allocation.
const maxMessageBytesCap = 256 << 20

// Defaults.
const (
	DefaultGRPCAddr        = "127.0.0.1:7071"
	DefaultHTTPAddr        = "127.0.0.1:7070"
	DefaultStorage         = "embedded:./fleetprof-data/clickhouse" // the store of `fleetprof up --data ./fleetprof-data`
	DefaultMaxMessageBytes = 16 << 20
	DefaultShutdownTimeout = 10 * time.Second

	DefaultCommitInterval   = 5 * time.Millisecond
	DefaultMaxCommitBatches = 256
	DefaultMaxCommitRows    = 1_000_000
	// DefaultStackCache holds the distinct stacks of a large fleet service
	// (BenchmarkIngestFleetSenders: 2,000 per agent batch).
	DefaultStackCache = 100_000
	// DefaultQueryTimeout is long enough for a day's flame graph of a large service.
	DefaultQueryTimeout = 30 * time.Second
	// DefaultMaxConcurrentQueries leaves the store's other connections and the
	// machine's other cores to ingest (BenchmarkIngestUnderHostileQueries: with 1
	// slot and reads at low thread priority, ingest keeps a median 1.1× of its
	// rate on embedded chDB; with 2 slots and no priority, 0.18–0.26×).
	DefaultMaxConcurrentQueries = 1
)

// WALDirFor is where the write-ahead log of an aggregator over storage
// lives by default: inside an embedded store's directory (so it sits on the
// same volume and goes with it), none for a ClickHouse server (turn it on
// with a local directory of the aggregator's own).
func WALDirFor(storage string) string {
	if dir, ok := strings.CutPrefix(storage, "embedded:"); ok {
		return filepath.Join(dir, "fleetprof-wal")
	}
	return ""
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.GRPCAddr == "" {
		c.GRPCAddr = DefaultGRPCAddr
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.Storage == "" {
		c.Storage = DefaultStorage
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = DefaultCommitInterval
	}
	if c.MaxCommitBatches == 0 {
		c.MaxCommitBatches = DefaultMaxCommitBatches
	}
	if c.MaxCommitRows == 0 {
		c.MaxCommitRows = DefaultMaxCommitRows
	}
	if c.UnreadyAfterWriteFailures == 0 {
		c.UnreadyAfterWriteFailures = DefaultUnreadyAfterWriteFailures
	}
	if c.ResumeMergesFreeBytes == 0 {
		c.ResumeMergesFreeBytes = DefaultResumeMergesFreeBytes
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.MaxConcurrentQueries == 0 {
		c.MaxConcurrentQueries = DefaultMaxConcurrentQueries
	}
	if c.WALFlushInterval == 0 {
		c.WALFlushInterval = DefaultWALFlushInterval
	}
	if c.WALMaxPendingBytes == 0 {
		c.WALMaxPendingBytes = DefaultWALMaxPendingBytes
	}
	if c.WALMaxWait == 0 {
		c.WALMaxWait = DefaultWALMaxWait
	}
	if c.StackCache == 0 {
		c.StackCache = DefaultStackCache
	}
	return c
}

// Validate reports the first invalid field of c (after defaults).
func (c Config) Validate() error {
	c = c.WithDefaults()
	for _, a := range []struct{ name, addr string }{{"grpc address", c.GRPCAddr}, {"http address", c.HTTPAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s %q: %w", a.name, a.addr, err)
		}
	}
	if !strings.HasPrefix(c.Storage, "embedded:") && !strings.HasPrefix(c.Storage, "clickhouse://") {
		return fmt.Errorf("storage %q: want embedded:DIR or clickhouse://HOST:PORT/DB", c.Storage)
	}
	if c.Token != "" && c.TokenFile != "" {
		return errors.New("token and token file are both set; use one")
	}
	if c.ReadToken != "" && c.ReadTokenFile != "" {
		return errors.New("read token and read token file are both set; use one")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls: cert and key must be set together")
	}
	if c.MaxMessageBytes > maxMessageBytesCap {
		return fmt.Errorf("max message bytes %d: must be at most %d", c.MaxMessageBytes, maxMessageBytesCap)
	}
	if c.MaxMessageBytes < 1024 {
		return fmt.Errorf("max message bytes %d: must be at least 1024", c.MaxMessageBytes)
	}
	if c.CommitInterval < 0 || c.CommitInterval > time.Second {
		return fmt.Errorf("commit interval %v: must be between 0 and 1s", c.CommitInterval)
	}
	if c.MaxCommitBatches < 1 || c.MaxCommitRows < 1 {
		return fmt.Errorf("max commit batches %d and rows %d: must be at least 1", c.MaxCommitBatches, c.MaxCommitRows)
	}
	if c.UnreadyAfterWriteFailures < 1 {
		return fmt.Errorf("unready after write failures %d: must be at least 1", c.UnreadyAfterWriteFailures)
	}
	if c.ResumeMergesFreeBytes < 0 {
		return fmt.Errorf("resume merges free bytes %d: must not be negative", c.ResumeMergesFreeBytes)
	}
	if c.ShutdownTimeout < 0 {
		return fmt.Errorf("shutdown timeout %v: must not be negative", c.ShutdownTimeout)
	}
	if c.QueryTimeout < 0 {
		return fmt.Errorf("query timeout %v: must not be negative", c.QueryTimeout)
	}
	if c.MaxConcurrentQueries < 1 {
		return fmt.Errorf("max concurrent queries %d: must be at least 1", c.MaxConcurrentQueries)
	}
	if c.WALFlushInterval < 0 || c.WALMaxPendingBytes < 0 || c.WALMaxWait < 0 {
		return fmt.Errorf("wal flush interval %v, max pending bytes %d, max wait %v: must not be negative", c.WALFlushInterval, c.WALMaxPendingBytes, c.WALMaxWait)
	}
	if c.StackCache < -1 {
		return fmt.Errorf("stack cache %d: must be at least 1, or -1 for none", c.StackCache)
	}
	return nil
}

// token returns the configured bearer token, reading TokenFile if set.
func (c Config) token() (string, error) {
	if c.TokenFile == "" {
		return c.Token, nil
	}
	b, err := os.ReadFile(c.TokenFile)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("token file %s is empty", c.TokenFile)
	}
	return t, nil
}
