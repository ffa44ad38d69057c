package samplebatch

import "sync"

// IDCache remembers a value per stack id, bounded to about n ids in two
// generations: when the current one is full the older is dropped, which
// approximates an LRU at map speed. Safe for concurrent use. The values it
// holds and returns are shared: callers must not modify them.
type IDCache[V any] struct {
	mu        sync.Mutex
	cap       int
	cur, prev map[uint64]V
}

// StackCache remembers the frames of stacks by id (DecodeCached).
type StackCache = IDCache[[]string]

// NewIDCache returns a cache of about n ids (at least 2).
func NewIDCache[V any](n int) *IDCache[V] {
	return &IDCache[V]{cap: max(n/2, 1), cur: map[uint64]V{}, prev: map[uint64]V{}}
}

// NewStackCache returns a cache of the frames of about n stacks (at least 2).
func NewStackCache(n int) *StackCache { return NewIDCache[[]string](n) }

// Get returns the value of stack id, if remembered.
func (c *IDCache[V]) Get(id uint64) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[id]; ok {
		return v, true
	}
	if v, ok := c.prev[id]; ok {
		c.putLocked(id, v)
		return v, true
	}
	var zero V
	return zero, false
}

// Has reports whether stack id is remembered.
func (c *IDCache[V]) Has(id uint64) bool {
	_, ok := c.Get(id)
	return ok
}

// Put remembers the value of stack id.
func (c *IDCache[V]) Put(id uint64, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(id, v)
}

func (c *IDCache[V]) putLocked(id uint64, v V) {
	if len(c.cur) >= c.cap {
		c.prev, c.cur = c.cur, make(map[uint64]V, c.cap)
	}
	c.cur[id] = v
}
