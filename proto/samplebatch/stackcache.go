package samplebatch

import "sync"

// StackCache remembers the frames of stacks by id, bounded to about n stacks
// in two generations: when the current one is full the older is dropped,
// which approximates an LRU at map speed. Safe for concurrent use. The frame
// slices it holds and returns are shared: callers must not modify them.
type StackCache struct {
	mu        sync.Mutex
	cap       int
	cur, prev map[uint64][]string
}

// NewStackCache returns a cache of about n stacks (at least 2).
func NewStackCache(n int) *StackCache {
	return &StackCache{cap: max(n/2, 1), cur: map[uint64][]string{}, prev: map[uint64][]string{}}
}

// Get returns the frames of stack id, if remembered.
func (c *StackCache) Get(id uint64) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.cur[id]; ok {
		return f, true
	}
	if f, ok := c.prev[id]; ok {
		c.putLocked(id, f)
		return f, true
	}
	return nil, false
}

// Has reports whether stack id is remembered.
func (c *StackCache) Has(id uint64) bool {
	_, ok := c.Get(id)
	return ok
}

// Put remembers the frames of stack id.
func (c *StackCache) Put(id uint64, frames []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(id, frames)
}

func (c *StackCache) putLocked(id uint64, frames []string) {
	if len(c.cur) >= c.cap {
		c.prev, c.cur = c.cur, make(map[uint64][]string, c.cap)
	}
	c.cur[id] = frames
}
