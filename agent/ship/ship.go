package ship

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
)

// Defaults of Config.
const (
	DefaultSpoolMaxBytes = 256 << 20
	DefaultMinBackoff    = 200 * time.Millisecond
	DefaultMaxBackoff    = 30 * time.Second
)

// TLSConfig configures transport security. With every field zero the
// connection is plaintext (development on one machine).
type TLSConfig struct {
	// Enabled turns TLS on with the system roots; setting any other field
	// also turns it on.
	Enabled bool
	// CAFile is a PEM bundle of CAs trusted for the aggregator's certificate.
	CAFile string
	// ServerName overrides the name checked in the certificate.
	ServerName string
	// InsecureSkipVerify accepts any certificate (testing only).
	InsecureSkipVerify bool
}

func (t TLSConfig) on() bool {
	return t.Enabled || t.CAFile != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// Config configures a Shipper.
type Config struct {
	// Addr is the aggregator's gRPC address, host:port.
	Addr string
	// AgentID prefixes batch ids; it must be unique in the fleet (node name).
	// Characters other than [A-Za-z0-9._] are replaced by '_'.
	AgentID string
	// Token is sent as "authorization: Bearer <token>" when not empty.
	Token string
	TLS   TLSConfig
	// SpoolDir holds batches until they are acknowledged. Required.
	SpoolDir string
	// SpoolMaxBytes bounds the spool; the oldest batches are dropped beyond it
	// (default 256 MiB).
	SpoolMaxBytes int64
	// MinBackoff and MaxBackoff bound the exponential retry delay
	// (defaults 200 ms and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// Clock defaults to the wall clock; Rand (uniform in [0,1)) to math/rand.
	Clock Clock
	Rand  func() float64
	// DialOptions are appended to the shipper's own (tests: a bufconn dialer).
	DialOptions []grpc.DialOption
}

func (c Config) withDefaults() Config {
	if c.SpoolMaxBytes == 0 {
		c.SpoolMaxBytes = DefaultSpoolMaxBytes
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Clock == nil {
		c.Clock = RealClock
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	c.AgentID = unsafeIDChars.ReplaceAllString(c.AgentID, "_")
	return c
}

var unsafeIDChars = regexp.MustCompile(`[^A-Za-z0-9._]`)

// Validate reports the first invalid field (after defaults).
func (c Config) Validate() error {
	switch {
	case c.Addr == "":
		return errors.New("aggregator address is empty")
	case c.AgentID == "":
		return errors.New("agent id is empty")
	case c.SpoolDir == "":
		return errors.New("spool dir is empty")
	case c.SpoolMaxBytes < 0:
		return fmt.Errorf("spool max bytes %d is negative", c.SpoolMaxBytes)
	case c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff:
		return fmt.Errorf("backoff range [%v, %v] is invalid", c.MinBackoff, c.MaxBackoff)
	}
	return nil
}

// Stats are cumulative counters since New, plus spool gauges.
type Stats struct {
	Spooled      uint64 // batches accepted by Send
	Sent         uint64 // send attempts
	Acked        uint64 // batches stored (ACKED)
	Duplicate    uint64 // batches the aggregator already had (DUPLICATE), delivered
	Rejected     uint64 // batches dropped because the aggregator rejected them
	TooLarge     uint64 // batches dropped after maxExhaustedAttempts ResourceExhausted stream errors in a row
	Failed       uint64 // failed attempts (stream errors and FAILED), retried
	SpoolDropped uint64 // batches dropped to keep the spool within its bound
	SpoolBatches int    // batches waiting in the spool
	SpoolBytes   int64  // bytes waiting in the spool
	LastError    string // most recent failure or rejection, for logs
}

// Shipper spools and delivers batches. Send and Stats are safe for concurrent
// use; Run delivers and must be called once.
type Shipper struct {
	cfg    Config
	conn   *grpc.ClientConn
	client ingestv1.IngestServiceClient
	spool  *spool
	wake   chan struct{}

	spooled, sent, acked, duplicate, rejected, tooLarge, failed atomic.Uint64

	mu      sync.Mutex
	lastErr string
}

// New opens the spool (re-reading batches of earlier runs) and prepares the
// connection; nothing is dialed until Run.
func New(cfg Config) (*Shipper, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid shipper config: %w", err)
	}
	opts, err := dialOptions(cfg)
	if err != nil {
		return nil, err
	}
	sp, err := openSpool(cfg.SpoolDir, cfg.SpoolMaxBytes)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(cfg.Addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("create grpc client for %s: %w", cfg.Addr, err)
	}
	return &Shipper{
		cfg:    cfg,
		conn:   conn,
		client: ingestv1.NewIngestServiceClient(conn),
		spool:  sp,
		wake:   make(chan struct{}, 1),
	}, nil
}

func dialOptions(cfg Config) ([]grpc.DialOption, error) {
	var opts []grpc.DialOption
	if cfg.TLS.on() {
		tc := &tls.Config{ServerName: cfg.TLS.ServerName, InsecureSkipVerify: cfg.TLS.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // only with the explicit --tls-insecure-skip-verify flag
		if cfg.TLS.CAFile != "" {
			pem, err := os.ReadFile(cfg.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("read tls ca file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls ca file %s: no PEM certificates", cfg.TLS.CAFile)
			}
			tc.RootCAs = pool
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if cfg.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: cfg.Token, secure: cfg.TLS.on()}))
	}
	return append(opts, cfg.DialOptions...), nil
}

// bearer sends the token on every call. Plaintext is allowed so a
// development setup on one machine can use a token without certificates.
type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }

// Send spools one encoded batch (an Arrow IPC stream) durably and returns its
// batch id. Once Send returns nil the batch survives a restart.
func (s *Shipper) Send(data []byte) (string, error) {
	e, _, err := s.spool.put(s.cfg.AgentID, data, s.cfg.Clock.Now().UnixNano())
	if err != nil {
		return "", err
	}
	s.spooled.Add(1)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return e.id, nil
}

// Stats returns a snapshot of the counters.
func (s *Shipper) Stats() Stats {
	n, b, d := s.spool.stats()
	s.mu.Lock()
	last := s.lastErr
	s.mu.Unlock()
	return Stats{
		Spooled:      s.spooled.Load(),
		Sent:         s.sent.Load(),
		Acked:        s.acked.Load(),
		Duplicate:    s.duplicate.Load(),
		Rejected:     s.rejected.Load(),
		TooLarge:     s.tooLarge.Load(),
		Failed:       s.failed.Load(),
		SpoolDropped: d,
		SpoolBatches: n,
		SpoolBytes:   b,
		LastError:    last,
	}
}

func (s *Shipper) setErr(err error) {
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
}

// Close releases the connection. Call it after Run returned.
func (s *Shipper) Close() error {
	if err := s.conn.Close(); err != nil {
		return fmt.Errorf("close grpc connection: %w", err)
	}
	return nil
}

// maxExhaustedAttempts is how many ResourceExhausted stream errors in a row the
// head batch may cause before it is dropped and counted: one could be transient
// pressure, repeated ones mean the message can never be read.
const maxExhaustedAttempts = 3

// stream is one open Write stream.
type stream struct {
	cancel context.CancelFunc
	rpc    grpc.BidiStreamingClient[ingestv1.WriteRequest, ingestv1.WriteResponse]
}

// Run delivers spooled batches, oldest first, until ctx is done. It returns
// nil on cancellation; undelivered batches stay in the spool.
func (s *Shipper) Run(ctx context.Context) error {
	var st *stream
	defer func() {
		if st != nil {
			st.cancel()
		}
	}()
	attempt, exhausted := 0, 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		e, ok := s.spool.oldest()
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-s.wake:
				continue
			}
		}
		data, err := os.ReadFile(e.path)
		if err != nil {
			// Dropped by the bound meanwhile, or unreadable: either way it
			// cannot be delivered; forget it rather than loop forever.
			if rerr := s.spool.remove(e); rerr != nil {
				s.setErr(rerr)
			}
			continue
		}
		if st == nil {
			st, err = s.open(ctx)
		}
		var resp *ingestv1.WriteResponse
		if err == nil {
			resp, err = s.deliver(st, e.id, data)
		}
		if err == nil {
			switch resp.GetStatus() {
			case ingestv1.WriteResponse_STATUS_ACKED:
				s.acked.Add(1)
			case ingestv1.WriteResponse_STATUS_DUPLICATE:
				s.duplicate.Add(1)
			case ingestv1.WriteResponse_STATUS_REJECTED:
				s.rejected.Add(1)
				s.setErr(fmt.Errorf("batch %s rejected: %s", e.id, resp.GetError()))
			default:
				err = fmt.Errorf("batch %s: aggregator answered %v: %s", e.id, resp.GetStatus(), resp.GetError())
			}
		}
		if err == nil {
			attempt, exhausted = 0, 0
			if rerr := s.spool.remove(e); rerr != nil {
				s.setErr(rerr)
			}
			continue
		}
		s.failed.Add(1)
		s.setErr(err)
		if status.Code(err) == codes.ResourceExhausted {
			exhausted++
		} else {
			exhausted = 0
		}
		if exhausted >= maxExhaustedAttempts {
			// The aggregator cannot read this message (over its gRPC limit, or an
			// older aggregator without per-batch size rejection): dropping it
			// unblocks every batch behind it.
			exhausted = 0
			s.tooLarge.Add(1)
			s.setErr(fmt.Errorf("batch %s (%d bytes) dropped: %w", e.id, len(data), err))
			if rerr := s.spool.remove(e); rerr != nil {
				s.setErr(rerr)
			}
		}
		if st != nil {
			st.cancel()
			st = nil
		}
		attempt++
		select {
		case <-ctx.Done():
			return nil
		case <-s.cfg.Clock.After(backoff(attempt, s.cfg.MinBackoff, s.cfg.MaxBackoff, s.cfg.Rand)):
		}
	}
}

func (s *Shipper) open(ctx context.Context) (*stream, error) {
	sctx, cancel := context.WithCancel(ctx)
	rpc, err := s.client.Write(sctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open write stream to %s: %w", s.cfg.Addr, err)
	}
	return &stream{cancel: cancel, rpc: rpc}, nil
}

// deliver sends one batch and waits for its answer (one batch in flight keeps
// the order and the exactly-once bookkeeping simple; a batch is sent every
// few seconds, so pipelining would gain nothing but drain speed).
func (s *Shipper) deliver(st *stream, id string, data []byte) (*ingestv1.WriteResponse, error) {
	s.sent.Add(1)
	return deliverOn(st, id, data)
}

// deliverOn sends one batch on st and waits for its answer.
func deliverOn(st *stream, id string, data []byte) (*ingestv1.WriteResponse, error) {
	if err := st.rpc.Send(&ingestv1.WriteRequest{BatchId: id, ArrowIpc: data}); err != nil {
		_, rerr := st.rpc.Recv() // the stream's real error
		return nil, fmt.Errorf("send batch %s: %w", id, errors.Join(err, rerr))
	}
	resp, err := st.rpc.Recv()
	if err != nil {
		return nil, fmt.Errorf("receive ack of batch %s: %w", id, err)
	}
	if resp.GetBatchId() != id {
		return nil, fmt.Errorf("ack for batch %q while waiting for %q", resp.GetBatchId(), id)
	}
	return resp, nil
}
