package aggregator

import (
	"sync"
	"time"
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
