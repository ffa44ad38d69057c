package aggregator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetprof/fleetprof/aggregator/storage"
	"github.com/fleetprof/fleetprof/aggregator/wal"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// Write-ahead log defaults (Config.WAL*).
const (
	// DefaultWALFlushInterval is how long acknowledged batches may wait in
	// the log before they are written to the store. Queries flush first, so
	// they never miss an acknowledged batch.
	DefaultWALFlushInterval = time.Second
	// DefaultWALMaxPendingBytes bounds the received messages held in memory
	// between their ack and their store write; past it new batches wait
	// (back-pressure) up to DefaultWALMaxWait.
	DefaultWALMaxPendingBytes = 256 << 20
	// DefaultWALMaxWait is how long a batch waits for room before it is
	// answered FAILED (resent later by its sender).
	DefaultWALMaxWait = 10 * time.Second
)

// errWALFull answers a batch that found no room while the store lags.
var errWALFull = errors.New("write-ahead log full: the store is behind; resend later")

// walStore is a Store the log can commit to: grouped writes and the batch-id
// lookup that answers a retried batch DUPLICATE before it is logged.
type walStore interface {
	batchStore
	KnownBatches(ctx context.Context, ids []string) (map[string]bool, error)
}

// walIngest acknowledges a batch once it is in the write-ahead log and
// writes logged batches to the store in large groups, so the store's fixed
// cost per write (the staged commit's statements) is paid per group of
// hundreds of batches instead of per few. The store's batch-id check at
// commit keeps replays after a crash exactly once.
type walIngest struct {
	st       walStore
	log      *wal.Log
	interval time.Duration
	maxRows  int
	maxBytes int
	maxWait  time.Duration
	health   *writeHealth
	logger   *slog.Logger
	m        *walMetrics

	// rot excludes appends (read side) while the flusher rotates and takes
	// the pending list (write side): every batch not taken is in a segment
	// the flush does not remove.
	rot sync.RWMutex

	mu      sync.Mutex
	pending []walEntry
	rows    int
	bytes   int             // of pending and in-flight entries
	ids     map[string]bool // pending or being committed
	room    chan struct{}   // closed (and replaced) when bytes fall

	flushMu sync.Mutex
	kick    chan struct{}

	// Batch-id lookups of concurrent ingests share one store query.
	ckMu    sync.Mutex
	ckQueue []idCheck
	ckBusy  bool
}

type idCheck struct {
	id   string
	done chan idResult
}

type idResult struct {
	known bool
	err   error
}

type walEntry struct {
	id    string
	batch *samplebatch.Batch
	bytes int
}

type walMetrics struct {
	pendingBytes prometheus.Gauge
	flushes      *prometheus.CounterVec
	replayed     prometheus.Counter
	replayBad    prometheus.Counter
	tornBytes    prometheus.Counter
}

func newWALMetrics(reg *prometheus.Registry) *walMetrics {
	m := &walMetrics{
		pendingBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fleetprof_wal_pending_bytes",
			Help: "Acknowledged batch bytes in the write-ahead log not yet written to the store.",
		}),
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetprof_wal_flushes_total",
			Help: "Writes of logged batches to the store, by outcome (ok, failed).",
		}, []string{"outcome"}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fleetprof_wal_replayed_batches_total",
			Help: "Batches found in the write-ahead log at start (written to the store unless already there).",
		}),
		replayBad: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fleetprof_wal_replay_undecodable_total",
			Help: "Logged batches that no longer decode at start (dropped; expected 0).",
		}),
		tornBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fleetprof_wal_torn_bytes_total",
			Help: "Bytes cut off the log at start after its last valid record (an append a crash interrupted, never acknowledged).",
		}),
	}
	reg.MustRegister(m.pendingBytes, m.flushes, m.replayed, m.replayBad, m.tornBytes)
	return m
}

// openWAL opens the log in dir and queues what it holds for the store.
func openWAL(s *Server, st walStore, dir string) (*walIngest, error) {
	l, recs, rs, err := wal.Open(dir)
	if err != nil {
		return nil, err
	}
	w := &walIngest{st: st, log: l, interval: s.cfg.WALFlushInterval, maxRows: s.cfg.MaxCommitRows,
		maxBytes: s.cfg.WALMaxPendingBytes, maxWait: s.cfg.WALMaxWait, health: s.writes, logger: s.log,
		m: newWALMetrics(s.metrics.reg), ids: map[string]bool{}, room: make(chan struct{}), kick: make(chan struct{}, 1)}
	w.m.tornBytes.Add(float64(rs.TornBytes))
	for _, r := range recs {
		b, err := s.decode(r.Data)
		if err != nil {
			w.m.replayBad.Inc()
			s.log.Error("logged batch does not decode; dropped", "batch_id", r.ID, "err", err)
			continue
		}
		w.ids[r.ID] = true // not shared yet: no lock
		w.bytes += len(r.Data)
		w.add(walEntry{id: r.ID, batch: b, bytes: len(r.Data)})
		w.m.replayed.Inc()
	}
	if rs.Records > 0 || rs.TornBytes > 0 {
		s.log.Info("write-ahead log replayed", "batches", rs.Records, "segments", rs.Segments, "torn_bytes", rs.TornBytes)
	}
	return w, nil
}

// add queues e, whose id and bytes are already counted (reserve, or the
// replay); mu not held.
func (w *walIngest) add(e walEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = append(w.pending, e)
	w.rows += len(e.batch.Rows)
	w.m.pendingBytes.Set(float64(w.bytes))
	if w.rows >= w.maxRows {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// ingest logs one decoded batch (data is its message as received) and
// reports it stored; a batch id already logged or stored is a duplicate.
func (w *walIngest) ingest(ctx context.Context, id string, data []byte, b *samplebatch.Batch) (int, bool, error) {
	w.mu.Lock()
	dup := w.ids[id]
	w.mu.Unlock()
	if dup {
		return 0, true, nil
	}
	if known, err := w.stored(ctx, id); err != nil || known {
		return 0, known, err
	}
	if err := w.reserve(ctx, id, len(data)); err != nil {
		if errors.Is(err, errDuplicate) {
			return 0, true, nil
		}
		return 0, false, err
	}
	w.rot.RLock()
	defer w.rot.RUnlock()
	if _, err := w.log.Append(id, data); err != nil {
		w.release(id, len(data))
		return 0, false, err
	}
	w.add(walEntry{id: id, batch: b, bytes: len(data)})
	return len(b.Rows), false, nil
}

var errDuplicate = errors.New("duplicate")

// stored says whether id is a committed batch id. While one lookup runs,
// the ids of other ingests queue and the caller that finds none running
// looks them all up in one query.
func (w *walIngest) stored(ctx context.Context, id string) (bool, error) {
	c := idCheck{id: id, done: make(chan idResult, 1)}
	w.ckMu.Lock()
	w.ckQueue = append(w.ckQueue, c)
	lead := !w.ckBusy
	w.ckBusy = true
	w.ckMu.Unlock()
	if lead {
		// The query serves other streams: one client going away must not cancel it.
		qctx := context.WithoutCancel(ctx)
		for {
			w.ckMu.Lock()
			q := w.ckQueue
			w.ckQueue = nil
			if len(q) == 0 {
				w.ckBusy = false
				w.ckMu.Unlock()
				break
			}
			w.ckMu.Unlock()
			ids := make([]string, len(q))
			for i, c := range q {
				ids[i] = c.id
			}
			known, err := w.st.KnownBatches(qctx, ids)
			for _, c := range q {
				c.done <- idResult{known: known[c.id], err: err}
			}
		}
	}
	select {
	case r := <-c.done:
		return r.known, r.err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// reserve claims id and n bytes of room, waiting while the log is full.
func (w *walIngest) reserve(ctx context.Context, id string, n int) error {
	deadline := time.NewTimer(w.maxWait)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		if w.ids[id] {
			w.mu.Unlock()
			return errDuplicate
		}
		if w.bytes == 0 || w.bytes+n <= w.maxBytes {
			w.ids[id] = true
			w.bytes += n
			w.mu.Unlock()
			return nil
		}
		room := w.room
		w.mu.Unlock()
		select {
		case w.kick <- struct{}{}:
		default:
		}
		select {
		case <-room:
		case <-deadline.C:
			return errWALFull
		case <-ctx.Done():
			return fmt.Errorf("wait for log room: %w", ctx.Err())
		}
	}
}

// release gives back a reservation whose append failed.
func (w *walIngest) release(id string, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.ids, id)
	w.bytes -= n
	w.freed()
}

// freed wakes batches waiting for room (mu held).
func (w *walIngest) freed() {
	close(w.room)
	w.room = make(chan struct{})
	w.m.pendingBytes.Set(float64(w.bytes))
}

// hasPending says whether acknowledged batches wait for the store.
func (w *walIngest) hasPending() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending) > 0
}

// flush writes every batch logged before the call to the store (in groups
// of at most MaxCommitRows rows) and removes the log segments that held
// them. On an error the batches stay queued and in the log.
func (w *walIngest) flush(ctx context.Context) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.rot.Lock()
	cut, err := w.log.Rotate()
	w.mu.Lock()
	group := w.pending
	w.pending = nil
	w.mu.Unlock()
	w.rot.Unlock()
	if err != nil {
		w.requeue(group)
		return err
	}
	if len(group) == 0 {
		return nil
	}
	for done := 0; done < len(group); {
		n, rows := 0, 0
		for done+n < len(group) && (n == 0 || rows+len(group[done+n].batch.Rows) <= w.maxRows) {
			rows += len(group[done+n].batch.Rows)
			n++
		}
		items := make([]storage.IngestItem, n)
		for i, e := range group[done : done+n] {
			items[i] = storage.IngestItem{ID: e.id, Batch: e.batch}
		}
		if _, err := w.st.IngestBatches(ctx, items); err != nil {
			w.requeue(group[done:])
			w.m.flushes.WithLabelValues("failed").Inc()
			return fmt.Errorf("write logged batches: %w", err)
		}
		w.committed(group[done : done+n])
		done += n
	}
	w.m.flushes.WithLabelValues("ok").Inc()
	return w.log.Remove(cut)
}

// requeue puts batches whose write failed back at the head of the queue.
func (w *walIngest) requeue(es []walEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = append(es, w.pending...)
}

// committed forgets stored batches (the store's recent-id cache and
// ingested_batches answer for them from now on).
func (w *walIngest) committed(es []walEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range es {
		delete(w.ids, e.id)
		w.rows -= len(e.batch.Rows)
		w.bytes -= e.bytes
	}
	w.freed()
}

// run flushes every interval, or sooner once MaxCommitRows rows wait,
// until ctx is done. Store health follows the flushes: the acks no longer
// do.
func (w *walIngest) run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.kick:
		}
		w.flushReport(ctx)
	}
}

// flushReport flushes and records the outcome in the write health.
func (w *walIngest) flushReport(ctx context.Context) {
	if !w.hasPending() {
		return
	}
	if err := w.flush(ctx); err != nil {
		if logNow, n := w.health.failed(ctx, time.Now(), err); logNow {
			w.logger.Error("storage write failed", "err", err, "failures", n)
		}
		return
	}
	if n := w.health.succeeded(ctx); n > 0 {
		w.logger.Info("storage writes recovered", "failures", n)
	}
}

// close writes what is left (bounded by ctx) and closes the log; batches
// not written stay in it for the next start.
func (w *walIngest) close(ctx context.Context) error {
	var err error
	if w.hasPending() {
		err = w.flush(ctx)
	}
	return errors.Join(err, w.log.Close())
}
