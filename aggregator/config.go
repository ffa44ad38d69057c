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
	// TLSCert and TLSKey (PEM files) turn on TLS for both listeners.
	TLSCert, TLSKey string
	// MaxMessageBytes bounds one batch; bigger batches are REJECTED (the stream
	// goes on) up to oversizeReadFactor times this, beyond which gRPC ends the
	// stream with ResourceExhausted. Default 16 MiB.
	MaxMessageBytes int
	// ShutdownTimeout bounds graceful shutdown before connections are cut; default 10s.
	ShutdownTimeout time.Duration
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
	DefaultStorage         = "embedded:./fleetprof-data"
	DefaultMaxMessageBytes = 16 << 20
	DefaultShutdownTimeout = 10 * time.Second
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
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls: cert and key must be set together")
	}
	if c.MaxMessageBytes > maxMessageBytesCap {
		return fmt.Errorf("max message bytes %d: must be at most %d", c.MaxMessageBytes, maxMessageBytesCap)
	}
	if c.MaxMessageBytes < 1024 {
		return fmt.Errorf("max message bytes %d: must be at least 1024", c.MaxMessageBytes)
	}
	if c.ShutdownTimeout < 0 {
		return fmt.Errorf("shutdown timeout %v: must not be negative", c.ShutdownTimeout)
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
