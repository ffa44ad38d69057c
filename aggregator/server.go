package aggregator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/loop"
	"github.com/fleetprof/fleetprof/model"
	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
	"github.com/oklog/run"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Store is the storage boundary: what the server needs from aggregator/storage.Store.
type Store interface {
	Ingest(ctx context.Context, batchID string, b *samplebatch.Batch) (rows int, duplicate bool, err error)
	Services(ctx context.Context, from, to time.Time) ([]string, error)
	LabelKeys(ctx context.Context, sel model.Selection) ([]string, error)
	LabelValues(ctx context.Context, sel model.Selection, key string) ([]string, error)
	Profile(ctx context.Context, sel model.Selection) (*model.Profile, error)
	Top(ctx context.Context, sel model.Selection, limit int) (*model.Top, error)
	Flame(ctx context.Context, sel model.Selection) (*model.FlameNode, error)
	Diff(ctx context.Context, base, cmp model.Selection, movers int) (*model.Diff, error)
	FunctionSeries(ctx context.Context, sel model.Selection, function string, step time.Duration) ([]model.SeriesPoint, error)
	Versions(ctx context.Context, service string, from, to time.Time) ([]model.VersionSpan, error)
	Findings(ctx context.Context, q model.FindingsQuery) ([]model.FindingRecord, error)
	Ping(ctx context.Context) error
}

// Server is the aggregator: gRPC ingest plus the HTTP query API.
type Server struct {
	cfg    Config
	store  Store
	log    *slog.Logger
	token  string
	tls    *tls.Config
	ui     http.Handler
	actors []actor
	// analyzer, when set, runs periodically and serves POST /api/v1/analyze.
	analyzer *loop.Loop
	metrics  *metrics
	now      func() time.Time
	grpc     *grpc.Server
	ingest   *ingestService
	stacks   *samplebatch.StackCache // verified stacks for decode; nil: off
	handler  http.Handler
	writes   *writeHealth
	// querySlots is a semaphore of cfg.MaxConcurrentQueries HTTP queries.
	querySlots chan struct{}
	readAuth   *readAuth
}

type actor struct {
	execute   func() error
	interrupt func(error)
}

// Option customizes a Server.
type Option func(*Server)

// WithUI serves h at "/" (everything outside /api/, /metrics, /healthz, /readyz).
func WithUI(h http.Handler) Option { return func(s *Server) { s.ui = h } }

// WithActor adds an actor (e.g. the analyzer loop) that runs with the servers: Run
// starts execute, and calls interrupt when any actor stops.
func WithActor(execute func() error, interrupt func(error)) Option {
	return func(s *Server) { s.actors = append(s.actors, actor{execute, interrupt}) }
}

// WithClock sets the clock used for relative times and batch validation (tests).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// New builds a server over store. The logger receives server-level errors only
// (nil discards them).
func New(cfg Config, store Store, logger *slog.Logger, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("aggregator config: %w", err)
	}
	if store == nil {
		return nil, errors.New("aggregator: nil store")
	}
	cfg = cfg.WithDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tok, err := cfg.token()
	if err != nil {
		return nil, fmt.Errorf("aggregator config: %w", err)
	}
	s := &Server{cfg: cfg, store: store, log: logger, token: tok, now: time.Now,
		querySlots: make(chan struct{}, cfg.MaxConcurrentQueries)}
	if s.readAuth, err = newReadAuth(cfg.ReadToken, cfg.ReadTokenFile); err != nil {
		return nil, fmt.Errorf("aggregator config: %w", err)
	}
	for _, o := range opts {
		o(s)
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load tls key pair: %w", err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.StackCache > 0 {
		s.stacks = samplebatch.NewStackCache(cfg.StackCache)
	}
	s.metrics = newMetrics()
	s.writes = newWriteHealth(cfg, store, logger)
	s.metrics.reg.MustRegister(s.detachedPartsGauge())
	if s.analyzer != nil {
		s.metrics.reg.MustRegister(s.analyzer.Collector())
	}
	s.ingest = newIngestService(s)
	if cfg.WALDir != "" {
		ws, ok := store.(walStore)
		if !ok {
			return nil, errors.New("aggregator config: the store cannot take a write-ahead log")
		}
		if s.ingest.wal, err = openWAL(s, ws, cfg.WALDir); err != nil {
			return nil, fmt.Errorf("aggregator: %w", err)
		}
	}
	gopts := []grpc.ServerOption{
		// Messages up to oversizeReadFactor × the limit are read so that they get a
		// per-batch REJECTED naming the limit instead of a stream-ending
		// ResourceExhausted that makes a sender retry forever.
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes*oversizeReadFactor + 4096), // room for batch_id and framing
		grpc.UnaryInterceptor(s.unaryAuth),
		grpc.StreamInterceptor(s.streamAuth),
	}
	if s.tls != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(s.tls)))
	}
	s.grpc = grpc.NewServer(gopts...)
	ingestv1.RegisterIngestServiceServer(s.grpc, s.ingest)
	s.registerInteropGRPC()
	s.handler = s.routes()
	return s, nil
}

// Handler is the HTTP handler (API, metrics, health, UI), for embedding and tests.
func (s *Server) Handler() http.Handler { return s.handler }

// Run listens on the configured addresses and serves until ctx is done or an actor
// fails; it returns nil after a shutdown caused by ctx.
func (s *Server) Run(ctx context.Context) error {
	gl, err := new(net.ListenConfig).Listen(ctx, "tcp", s.cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen grpc: %w", err)
	}
	hl, err := new(net.ListenConfig).Listen(ctx, "tcp", s.cfg.HTTPAddr)
	if err != nil {
		gl.Close()
		return fmt.Errorf("listen http: %w", err)
	}
	return s.Serve(ctx, gl, hl)
}

// errStopped marks the shutdown that ctx caused, which is not a failure.
var errStopped = errors.New("stopped")

// Serve serves gRPC on gl and HTTP on hl (taking ownership of both) like Run.
func (s *Server) Serve(ctx context.Context, gl, hl net.Listener) error {
	var g run.Group
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g.Add(func() error {
		<-ctx.Done()
		return errStopped
	}, func(error) { cancel() })

	g.Add(func() error {
		if err := s.grpc.Serve(gl); err != nil {
			return fmt.Errorf("serve grpc: %w", err)
		}
		return nil
	}, func(error) { s.stopGRPC() })

	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         s.tls,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	g.Add(func() error {
		var err error
		if s.tls != nil {
			err = hs.ServeTLS(hl, "", "")
		} else {
			err = hs.Serve(hl)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	}, func(error) {
		sctx, scancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer scancel()
		if err := hs.Shutdown(sctx); err != nil {
			hs.Close()
		}
	})
	if w := s.ingest.wal; w != nil {
		wctx, wcancel := context.WithCancel(context.Background())
		g.Add(func() error { w.run(wctx); return nil }, func(error) { wcancel() })
	}
	for _, a := range s.actors {
		g.Add(a.execute, a.interrupt)
	}
	err := g.Run()
	if w := s.ingest.wal; w != nil {
		// Every stream has ended: write what was acknowledged.
		cctx, ccancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer ccancel()
		if cerr := w.close(cctx); cerr != nil {
			s.log.Warn("write-ahead log not fully written to the store; the next start replays it", "err", cerr)
		}
	}
	if err != nil && !errors.Is(err, errStopped) {
		return err
	}
	return nil
}

// flushForRead writes acknowledged batches still in the write-ahead log to
// the store before a read, so a query never misses an acknowledged batch.
// A failing store write is left to the log's own retries: the read goes on.
func (s *Server) flushForRead(ctx context.Context) {
	if w := s.ingest.wal; w != nil && w.hasPending() {
		if err := w.flush(ctx); err != nil {
			s.log.Warn("flush before read failed", "err", err)
		}
	}
}

// stopGRPC stops accepting, lets in-flight batches finish and be acked, then ends
// the remaining streams; after ShutdownTimeout connections are cut.
func (s *Server) stopGRPC() {
	s.ingest.drain()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(s.cfg.ShutdownTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.log.Warn("grpc graceful stop timed out; closing connections", "timeout", s.cfg.ShutdownTimeout)
		s.grpc.Stop()
		<-done
	}
}
