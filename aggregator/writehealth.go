package aggregator

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
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

// writeHealth tracks consecutive storage write failures: /readyz reports
// unready from the threshold on, until a write succeeds again.
type writeHealth struct {
	threshold int

	mu          sync.Mutex
	consecutive int
	lastLog     time.Time
	unlogged    int // failures since the last log line
}

// failed records a failed write; it returns whether to log now and how many
// failures the line stands for.
func (h *writeHealth) failed(now time.Time) (logNow bool, count int) {
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
// consecutive failures it ends.
func (h *writeHealth) succeeded() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.consecutive
	h.consecutive = 0
	return n
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
		Help: "Data parts the storage engine set aside (e.g. broken at start): their rows are missing from queries. -1 = unknown.",
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
		return float64(len(parts))
	})
}
