package ship

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
)

// DefaultClientAttempts is how often Client.Write tries one batch before giving up.
const DefaultClientAttempts = 5

// ErrRejected marks a batch the aggregator REJECTED: resending it cannot help.
var ErrRejected = errors.New("batch rejected")

// Client sends batches without a spool, for one-shot senders (import, simulate):
// the same dial options (TLS, custom CA, bearer token), status rules and backoff
// as the Shipper, with failures retried up to Attempts times and then returned.
type Client struct {
	cfg      Config
	attempts int
	conn     *grpc.ClientConn
	client   ingestv1.IngestServiceClient
	st       *stream
}

// NewClient prepares a connection to cfg.Addr; the spool fields of cfg are
// ignored. attempts ≤ 0 means DefaultClientAttempts.
func NewClient(cfg Config, attempts int) (*Client, error) {
	cfg.SpoolDir, cfg.AgentID = "-", "client" // not used without a spool
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid ingest client config: %w", err)
	}
	if attempts <= 0 {
		attempts = DefaultClientAttempts
	}
	opts, err := dialOptions(cfg)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(cfg.Addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("create grpc client for %s: %w", cfg.Addr, err)
	}
	return &Client{cfg: cfg, attempts: attempts, conn: conn, client: ingestv1.NewIngestServiceClient(conn)}, nil
}

// Write delivers one batch and returns the aggregator's ACKED or DUPLICATE answer.
// REJECTED is an error wrapping ErrRejected; FAILED and stream errors are retried
// with backoff, on a new stream, up to the client's attempts.
func (c *Client) Write(ctx context.Context, id string, data []byte) (*ingestv1.WriteResponse, error) {
	var last error
	for attempt := 1; attempt <= c.attempts; attempt++ {
		if c.st == nil {
			sctx, cancel := context.WithCancel(ctx)
			rpc, err := c.client.Write(sctx)
			if err != nil {
				cancel()
				return nil, fmt.Errorf("open write stream to %s: %w", c.cfg.Addr, err)
			}
			c.st = &stream{cancel: cancel, rpc: rpc}
		}
		resp, err := deliverOn(c.st, id, data)
		if err == nil {
			switch resp.GetStatus() {
			case ingestv1.WriteResponse_STATUS_ACKED, ingestv1.WriteResponse_STATUS_DUPLICATE:
				return resp, nil
			case ingestv1.WriteResponse_STATUS_REJECTED:
				return resp, fmt.Errorf("%w: batch %s: %s", ErrRejected, id, resp.GetError())
			default:
				err = fmt.Errorf("batch %s: aggregator answered %v: %s", id, resp.GetStatus(), resp.GetError())
			}
		}
		last = err
		c.st.cancel()
		c.st = nil
		if permanent(err) || attempt == c.attempts {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("batch %s: %w (last error: %w)", id, ctx.Err(), last)
		case <-c.cfg.Clock.After(backoff(attempt, c.cfg.MinBackoff, c.cfg.MaxBackoff, c.cfg.Rand)):
		}
	}
	return nil, fmt.Errorf("batch %s: gave up after %d attempts: %w", id, c.attempts, last)
}

// permanent reports stream errors a retry cannot fix (credentials).
func permanent(err error) bool {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied:
		return true
	}
	return false
}

// Close ends the open stream and the connection.
func (c *Client) Close() error {
	if c.st != nil {
		_ = c.st.rpc.CloseSend()
		c.st.cancel()
		c.st = nil
	}
	if err := c.conn.Close(); err != nil {
		return fmt.Errorf("close grpc connection: %w", err)
	}
	return nil
}
