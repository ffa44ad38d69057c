package aggregator

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetprof/fleetprof/aggregator/storage"
)

// DefaultUnreadyAfterWriteFailures is Config.UnreadyAfterWriteFailures' default.
const DefaultUnreadyAfterWriteFailures = 3

// storageErrorLogInterval rate-limits the storage error log line: a full disk
// fails every batch of every agent, and one line per interval (with the count
// of failures it stands for) is enough to see it.
const storageErrorLogInterval = 10 * time.Second

// DefaultResumeMergesFreeBytes is Config.ResumeMergesFreeBytes' default.
const DefaultResumeMergesFreeBytes = 64 << 20

// mergeControlTimeout bounds one pause or resume of the engine's merges.
const mergeControlTimeout = 5 * time.Second

// writeHealth tracks consecutive storage write failures: /readyz reports
// unready from the threshold on, until a write succeeds again. It also
// pauses the engine's background merges while writes fail for lack of
// space (storage.Store.PauseMerges says why).
type writeHealth struct {
	threshold int
	// merges is nil when the store cannot pause merges.
	merges     mergeController
	resumeFree uint64
	log        *slog.Logger

	mu          sync.Mutex
	consecutive int
	lastLog     time.Time
	unlogged    int // failures since the last log line

	mergeMu      sync.Mutex // serializes pausing and resuming
	mergesPaused atomic.Bool
}

// mergeController is a Store whose background merges can be paused
// (storage.Store).
type mergeController interface {
	PauseMerges(ctx context.Context) error
	ResumeMerges(ctx context.Context) error
	FreeSpace(ctx context.Context) (uint64, error)
}

func newWriteHealth(cfg Config, store Store, log *slog.Logger) *writeHealth {
	h := &writeHealth{threshold: cfg.UnreadyAfterWriteFailures, resumeFree: uint64(cfg.ResumeMergesFreeBytes), log: log}
	h.merges, _ = store.(mergeController)
	return h
}

// failed records a failed write (err): it returns whether to log now and how
// many failures the line stands for. A write that failed for lack of space
// pauses merges first.
func (h *writeHealth) failed(ctx context.Context, now time.Time, err error) (logNow bool, count int) {
	if storage.NoSpace(err) && !h.mergesPaused.Load() {
		h.pauseMerges(ctx)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.consecutive++
	h.unlogged++
	if now.Sub(h.lastLog) < storageErrorLogInterval {
		return false, 0
	}
	h.lastLog, count, h.unlogged = now, h.unlogged, 0
	return true, count
}

// succeeded records a stored (or duplicate) batch; it returns how many
// consecutive failures it ends. Paused merges resume once there is room.
func (h *writeHealth) succeeded(ctx context.Context) int {
	if h.mergesPaused.Load() {
		h.resumeMerges(ctx)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.consecutive
	h.consecutive = 0
	return n
}

func (h *writeHealth) pauseMerges(ctx context.Context) {
	if h.merges == nil {
		return
	}
	h.mergeMu.Lock()
	defer h.mergeMu.Unlock()
	if h.mergesPaused.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mergeControlTimeout)
	defer cancel()
	if err := h.merges.PauseMerges(ctx); err != nil {
		// The next failure tries again.
		h.log.Error("pause storage merges while the disk is full", "err", err)
		return
	}
	h.mergesPaused.Store(true)
	h.log.Warn("storage merges paused: the data disk is full")
}

// resumeMerges restarts merges when the data disk has resumeFree bytes free
// (or the engine cannot tell).
func (h *writeHealth) resumeMerges(ctx context.Context) {
	h.mergeMu.Lock()
	defer h.mergeMu.Unlock()
	if !h.mergesPaused.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mergeControlTimeout)
	defer cancel()
	free, err := h.merges.FreeSpace(ctx)
	switch {
	case errors.Is(err, errors.ErrUnsupported):
	case err != nil:
		h.log.Error("check free space before resuming storage merges", "err", err)
		return
	case free < h.resumeFree:
		return
	}
	if err := h.merges.ResumeMerges(ctx); err != nil {
		h.log.Error("resume storage merges", "err", err)
		return
	}
	h.mergesPaused.Store(false)
	h.log.Info("storage merges resumed", "free_bytes", free)
}

// unready says whether writes are failing, and how many failed in a row.
func (h *writeHealth) unready() (bool, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.consecutive >= h.threshold, h.consecutive
}

// detachedLister is a Store that reports parts the engine set aside
// (storage.Store.DetachedParts).
type detachedLister interface {
	DetachedParts(ctx context.Context) ([]storage.DetachedPart, error)
}

// detachedPartsTimeout bounds the system-table lookup behind /metrics.
const detachedPartsTimeout = 2 * time.Second

// storageStatus is GET /api/v1/storage: write health and the detached parts
// (rows the engine does not serve, e.g. a part found truncated at start).
func (s *Server) storageStatus(r *http.Request, _ url.Values, _ time.Time) (any, error) {
	bad, n := s.writes.unready()
	out := map[string]any{"writes_failing": bad, "consecutive_write_failures": n}
	dl, ok := s.store.(detachedLister)
	if !ok {
		return out, nil
	}
	parts, err := dl.DetachedParts(r.Context())
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		out["detached_parts_supported"] = false
	case err != nil:
		return nil, err
	default:
		out["detached_parts_supported"] = true
		out["detached_parts"] = parts
	}
	return out, nil
}

// detachedPartsGauge exports the number of detached parts (-1 when the
// engine cannot list them or the lookup fails).
func (s *Server) detachedPartsGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fleetprof_storage_detached_parts",
		Help: "Data parts the storage engine set aside (e.g. broken at start) whose rows are missing from queries (not covered by active parts). -1 = unknown.",
	}, func() float64 {
		dl, ok := s.store.(detachedLister)
		if !ok {
			return -1
		}
		ctx, cancel := context.WithTimeout(context.Background(), detachedPartsTimeout)
		defer cancel()
		parts, err := dl.DetachedParts(ctx)
		if err != nil {
			return -1
		}
		return float64(len(storage.Uncovered(parts)))
	})
}
