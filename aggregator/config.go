package aggregator

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Config configures the server.
type Config struct {
	GRPCAddr string // ingest; default 127.0.0.1:7071
	HTTPAddr string // query API, metrics, UI; default 127.0.0.1:7070
	// Storage is the store URI ("embedded:DIR" or "clickhouse://HOST:PORT/DB"). The
	// server does not open it (its caller does); it is here so one Config describes
	// a deployment. Default embedded:./fleetprof-data.
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
	// MaxMessageBytes bounds one WriteRequest; default 16 MiB.
	MaxMessageBytes int
	// ShutdownTimeout bounds graceful shutdown before connections are cut; default 10s.
	ShutdownTimeout time.Duration
	// QueryTimeout is the deadline of one HTTP query, including the wait for a query
	// slot; past it the answer is 504. Default 30s.
	QueryTimeout time.Duration
	// MaxConcurrentQueries bounds HTTP queries running against the store at once, so
	// queries cannot take every storage connection ingest needs; more wait for a slot
	// (until their deadline). Default 1.
	MaxConcurrentQueries int
}

// Defaults.
const (
	DefaultGRPCAddr        = "127.0.0.1:7071"
	DefaultHTTPAddr        = "127.0.0.1:7070"
	DefaultStorage         = "embedded:./fleetprof-data"
	DefaultMaxMessageBytes = 16 << 20
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultQueryTimeout is long enough for a day's flame graph of a large service.
	DefaultQueryTimeout = 30 * time.Second
	// DefaultMaxConcurrentQueries leaves the store's other connections and the
	// machine's other cores to ingest: with 2 query slots hostile queries cut ingest
	// to 0.18–0.26× on embedded chDB, with 1 to 0.41–0.66× (BenchmarkIngestUnderHostileQueries).
	DefaultMaxConcurrentQueries = 1
)

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
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.MaxConcurrentQueries == 0 {
		c.MaxConcurrentQueries = DefaultMaxConcurrentQueries
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
	if c.MaxMessageBytes < 1024 {
		return fmt.Errorf("max message bytes %d: must be at least 1024", c.MaxMessageBytes)
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
