package aggregator

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/storage"
	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// ingestService implements IngestService.Write.
type ingestService struct {
	ingestv1.UnimplementedIngestServiceServer
	s         *Server
	draining  chan struct{}
	drainOnce sync.Once
	commit    *groupCommit // nil when the store cannot write several batches at once
	wal       *walIngest   // nil unless Config.WALDir is set
}

func newIngestService(s *Server) *ingestService {
	is := &ingestService{s: s, draining: make(chan struct{})}
	if bs, ok := s.store.(batchStore); ok && s.cfg.MaxCommitBatches > 1 {
		is.commit = newGroupCommit(bs, s.cfg.CommitInterval, s.cfg.MaxCommitBatches, s.cfg.MaxCommitRows)
	}
	return is
}

// batchStore is a Store that writes several batches in one go
// (storage.Store.IngestBatches).
type batchStore interface {
	Store
	IngestBatches(ctx context.Context, items []storage.IngestItem) ([]storage.IngestResult, error)
}

// groupCommit merges batches that arrive on different streams while a write
// is in progress into one IngestBatches call: every ClickHouse insert costs a
// part and a fixed overhead, so many agents sending small batches get several
// times the rows/s of one insert per batch. There is no background goroutine:
// the caller that finds no write running leads, waits up to interval for
// more batches (less once maxBatches or maxRows are queued), writes what is
// queued, and hands the lead to the oldest waiting caller. Every batch is
// acknowledged only after the write holding it returned (the store's commit).
type groupCommit struct {
	st         batchStore
	interval   time.Duration
	maxBatches int
	maxRows    int
	full       chan struct{} // signalled when a group's bounds are queued

	mu          sync.Mutex
	pending     []*commitReq
	pendingRows int
	busy        bool
}

func newGroupCommit(st batchStore, interval time.Duration, maxBatches, maxRows int) *groupCommit {
	return &groupCommit{st: st, interval: interval, maxBatches: maxBatches, maxRows: maxRows, full: make(chan struct{}, 1)}
}

type commitReq struct {
	ctx   context.Context
	id    string
	batch *samplebatch.Batch
	done  chan commitResult // one lead signal and/or one result, never both at once
}

type commitResult struct {
	lead bool // this caller now leads; its result comes later
	rows int
	dup  bool
	err  error
}

// ingest is Store.Ingest through the group commit.
func (g *groupCommit) ingest(ctx context.Context, id string, b *samplebatch.Batch) (int, bool, error) {
	r := &commitReq{ctx: ctx, id: id, batch: b, done: make(chan commitResult, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, r)
	g.pendingRows += len(b.Rows)
	if len(g.pending) >= g.maxBatches || g.pendingRows >= g.maxRows {
		select {
		case g.full <- struct{}{}:
		default:
		}
	}
	if g.busy {
		g.mu.Unlock()
		// No ctx select: a queued batch is written by the leader either way,
		// and its answer must match what was stored.
		res := <-r.done
		if !res.lead {
			return res.rows, res.dup, res.err
		}
	} else {
		g.busy = true
		g.mu.Unlock()
	}
	g.lead()
	res := <-r.done
	return res.rows, res.dup, res.err
}

// lead writes the queued requests (which include the leader's own) and
// passes the lead on.
func (g *groupCommit) lead() {
	if g.interval > 0 {
		g.mu.Lock()
		full := len(g.pending) >= g.maxBatches || g.pendingRows >= g.maxRows
		g.mu.Unlock()
		if !full {
			t := time.NewTimer(g.interval)
			select {
			case <-t.C:
			case <-g.full:
			}
			t.Stop()
		}
	}
	g.mu.Lock()
	// A stale signal from a group already written must not cut the next wait short.
	select {
	case <-g.full:
	default:
	}
	n, rows := 0, 0
	for n < len(g.pending) && n < g.maxBatches {
		rows += len(g.pending[n].batch.Rows)
		if n > 0 && rows > g.maxRows {
			rows -= len(g.pending[n].batch.Rows)
			break
		}
		n++
	}
	group := slices.Clone(g.pending[:n])
	g.pending = slices.Delete(g.pending, 0, n)
	g.pendingRows -= rows
	g.mu.Unlock()

	g.write(group)

	g.mu.Lock()
	if len(g.pending) > 0 {
		g.pending[0].done <- commitResult{lead: true}
	} else {
		g.busy = false
	}
	g.mu.Unlock()
}

func (g *groupCommit) write(group []*commitReq) {
	if len(group) == 1 {
		r := group[0]
		rows, dup, err := g.st.Ingest(r.ctx, r.id, r.batch)
		r.done <- commitResult{rows: rows, dup: dup, err: err}
		return
	}
	items := make([]storage.IngestItem, len(group))
	for i, r := range group {
		items[i] = storage.IngestItem{ID: r.id, Batch: r.batch}
	}
	// The write serves several streams: one client going away must not cancel it.
	res, err := g.st.IngestBatches(context.WithoutCancel(group[0].ctx), items)
	if err != nil {
		// All or nothing failed: write one by one so each batch gets its own
		// answer (one bad batch must not fail the others).
		for _, r := range group {
			rows, dup, err := g.st.Ingest(r.ctx, r.id, r.batch)
			r.done <- commitResult{rows: rows, dup: dup, err: err}
		}
		return
	}
	for i, r := range group {
		r.done <- commitResult{rows: res[i].Rows, dup: res[i].Duplicate}
	}
}

// decode decodes a received (or logged) batch with the configured limits,
// taking stacks verified in earlier batches from the server's stack cache.
func (s *Server) decode(data []byte) (*samplebatch.Batch, error) {
	return samplebatch.DecodeCached(data, samplebatch.Limits{MaxBytes: s.cfg.MaxMessageBytes, Now: s.now}, s.stacks)
}

// drain makes every stream return after the batch it is storing, if any.
func (is *ingestService) drain() { is.drainOnce.Do(func() { close(is.draining) }) }

// errDraining ends streams during shutdown; unacked batches are resent by the agent.
var errDraining = status.Error(codes.Unavailable, "aggregator is shutting down; resend unacknowledged batches")

// decoded is a received request and the result of decoding it.
type decoded struct {
	req   *ingestv1.WriteRequest
	batch *samplebatch.Batch
	err   error
	start time.Time
}

// Write answers each request with exactly one response, in order. The receiving
// goroutine also decodes, so the next batch is decoded while this one is stored;
// it runs apart from the storing loop so a shutdown is noticed while a stream is idle.
func (is *ingestService) Write(stream ingestv1.IngestService_WriteServer) error {
	ctx := stream.Context()
	// One decoded batch may wait while another is stored: bounded memory per stream.
	reqs := make(chan decoded, 1)
	errc := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			d := decoded{req: req, start: time.Now()}
			if req.GetBatchId() != "" {
				d.batch, d.err = is.s.decode(req.GetArrowIpc())
			}
			select {
			case reqs <- d:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-is.draining:
			return errDraining
		default:
		}
		select {
		case <-is.draining:
			return errDraining
		case d := <-reqs:
			if err := stream.Send(is.write(ctx, d)); err != nil {
				return err
			}
		case err := <-errc:
			// Answer what was received before the client closed its side.
			for {
				select {
				case d := <-reqs:
					if serr := stream.Send(is.write(ctx, d)); serr != nil {
						return serr
					}
					continue
				default:
				}
				break
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// write stores one decoded batch. Bad batches are REJECTED, storage errors FAILED;
// neither ends the stream.
func (is *ingestService) write(ctx context.Context, d decoded) *ingestv1.WriteResponse {
	resp := &ingestv1.WriteResponse{BatchId: d.req.GetBatchId()}
	defer func() {
		is.s.metrics.observeBatch(resp.Status, resp.Rows, time.Since(d.start))
	}()
	if d.req.GetBatchId() == "" {
		resp.Status, resp.Error = ingestv1.WriteResponse_STATUS_REJECTED, "batch_id is empty"
		return resp
	}
	if d.err != nil {
		resp.Status, resp.Error = ingestv1.WriteResponse_STATUS_REJECTED, d.err.Error()
		return resp
	}
	var (
		rows int
		dup  bool
		err  error
	)
	switch {
	case is.wal != nil:
		rows, dup, err = is.wal.ingest(ctx, d.req.GetBatchId(), d.req.GetArrowIpc(), d.batch)
	case is.commit != nil:
		rows, dup, err = is.commit.ingest(ctx, d.req.GetBatchId(), d.batch)
	default:
		rows, dup, err = is.s.store.Ingest(ctx, d.req.GetBatchId(), d.batch)
	}
	switch {
	case errors.Is(err, samplebatch.ErrInvalid):
		resp.Status, resp.Error = ingestv1.WriteResponse_STATUS_REJECTED, err.Error()
		return resp
	case err != nil:
		resp.Status, resp.Error = ingestv1.WriteResponse_STATUS_FAILED, "store batch: "+err.Error()
		is.s.metrics.writeErrors.Inc()
		if logNow, n := is.s.writes.failed(ctx, time.Now(), err); logNow {
			is.s.log.Error("storage write failed", "err", err, "failures", n, "batch_id", d.req.GetBatchId())
		}
		return resp
	case dup:
		resp.Status = ingestv1.WriteResponse_STATUS_DUPLICATE
	default:
		resp.Status, resp.Rows = ingestv1.WriteResponse_STATUS_ACKED, int64(rows)
		is.s.metrics.shortened.Add(float64(d.batch.ShortenedNames))
	}
	if is.wal != nil {
		return resp // the log's flushes report the store's health
	}
	if n := is.s.writes.succeeded(ctx); n > 0 {
		is.s.log.Info("storage writes recovered", "failures", n)
	}
	return resp
}

// authorize checks the bearer token in ctx's metadata in constant time.
func (s *Server) authorize(ctx context.Context) error {
	if s.token == "" {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return status.Error(codes.Unauthenticated, `missing credentials: send metadata "authorization: Bearer <token>"`)
	}
	tok, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok {
		return status.Error(codes.Unauthenticated, `malformed authorization: want "Bearer <token>"`)
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) != 1 {
		return status.Error(codes.Unauthenticated, "invalid bearer token")
	}
	return nil
}

func (s *Server) unaryAuth(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.authorize(ctx); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) streamAuth(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.authorize(ss.Context()); err != nil {
		return err
	}
	return h(srv, ss)
}
