package unwind

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Cache files: one per build id, named BUILDID.rows, in Config.CacheDir;
// format and eviction in doc.go ("Disk cache").
const (
	cacheMagic  = "FPUNWIND"
	cacheHeader = 20
	// cacheVersion changes whenever Build's output for the same file could
	// change (the row format or the compiler): older files are ignored and
	// replaced.
	cacheVersion = 1
	cacheSuffix  = ".rows"
)

// errCacheCorrupt means a cache file is truncated, of another version or
// fails its checksum.
var errCacheCorrupt = errors.New("corrupt unwind cache file")

// diskCache keeps compiled tables across restarts. Its bound is
// Config.CacheMaxBytes: after a write pushes the directory over it, the
// files least recently used (modification time, renewed on every hit) are
// removed. Safe for concurrent use (the loader's two build lanes).
type diskCache struct {
	dir      string
	maxBytes int64

	mu        sync.Mutex // guards the fields below and the directory
	size      int64      // bytes of the files in dir, scanned at open
	scanned   bool
	evictions uint64 // files removed to stay within maxBytes
}

func (c *diskCache) path(buildID string) string {
	return filepath.Join(c.dir, buildID+cacheSuffix)
}

// get returns the cached rows of buildID; ok is false when there are none
// or the file is corrupt (then it is removed, err says why).
func (c *diskCache) get(buildID string) (rows []Row, ok bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.scan(); err != nil {
		return nil, false, err
	}
	p := c.path(buildID)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err == nil {
		rows, err = decodeCache(b)
	}
	if err != nil {
		if rerr := os.Remove(p); rerr == nil {
			c.size -= int64(len(b))
		}
		return nil, false, err
	}
	now := time.Now()
	_ = os.Chtimes(p, now, now) // recency for eviction; a failure only ages it
	return rows, true, nil
}

// put stores rows for buildID (written to a temporary file and renamed, so
// a crash leaves no partial file under the final name) and evicts down to
// the bound.
func (c *diskCache) put(buildID string, rows []Row) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.scan(); err != nil {
		return err
	}
	b := encodeCache(rows)
	if int64(len(b)) > c.maxBytes {
		return nil // never fits: not cached
	}
	tmp, err := os.CreateTemp(c.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("create unwind cache file: %w", err)
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write unwind cache file: %w", err)
	}
	p := c.path(buildID)
	var old int64
	if st, err := os.Stat(p); err == nil {
		old = st.Size()
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("rename unwind cache file: %w", err)
	}
	c.size += int64(len(b)) - old
	return c.evict(p)
}

// counters returns the bytes in the cache and the files evicted so far.
func (c *diskCache) counters() (size int64, evictions uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size, c.evictions
}

// scan creates the directory and sums its files once.
func (c *diskCache) scan() error {
	if c.scanned {
		return nil
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("create unwind cache dir: %w", err)
	}
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("read unwind cache dir: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			_ = os.Remove(filepath.Join(c.dir, e.Name())) // left by a crash
			continue
		}
		if info, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), cacheSuffix) {
			c.size += info.Size()
		}
	}
	c.scanned = true
	return nil
}

// evict removes the least recently used files other than keep until the
// directory is within its bound.
func (c *diskCache) evict(keep string) error {
	if c.size <= c.maxBytes {
		return nil
	}
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("read unwind cache dir: %w", err)
	}
	type entry struct {
		path string
		size int64
		mod  time.Time
	}
	var es []entry
	for _, e := range ents {
		p := filepath.Join(c.dir, e.Name())
		if p == keep || !strings.HasSuffix(e.Name(), cacheSuffix) {
			continue
		}
		if info, err := e.Info(); err == nil {
			es = append(es, entry{p, info.Size(), info.ModTime()})
		}
	}
	slices.SortFunc(es, func(a, b entry) int { return a.mod.Compare(b.mod) })
	for _, e := range es {
		if c.size <= c.maxBytes {
			break
		}
		if err := os.Remove(e.path); err == nil {
			c.size -= e.size
			c.evictions++
		}
	}
	return nil
}

func encodeCache(rows []Row) []byte {
	b := make([]byte, cacheHeader, cacheHeader+RowSize*len(rows))
	copy(b, cacheMagic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], cacheVersion)
	le.PutUint32(b[12:], uint32(len(rows)))
	for _, r := range rows {
		b = r.AppendBinary(b)
	}
	le.PutUint32(b[16:], crc32.ChecksumIEEE(b[cacheHeader:]))
	return b
}

func decodeCache(b []byte) ([]Row, error) {
	le := binary.LittleEndian
	switch {
	case len(b) < cacheHeader || string(b[:8]) != cacheMagic:
		return nil, fmt.Errorf("%w: no header", errCacheCorrupt)
	case le.Uint32(b[8:]) != cacheVersion:
		return nil, fmt.Errorf("%w: version %d, want %d", errCacheCorrupt, le.Uint32(b[8:]), cacheVersion)
	case uint64(len(b)-cacheHeader) != uint64(le.Uint32(b[12:]))*RowSize:
		return nil, fmt.Errorf("%w: %d bytes for %d rows", errCacheCorrupt, len(b)-cacheHeader, le.Uint32(b[12:]))
	case crc32.ChecksumIEEE(b[cacheHeader:]) != le.Uint32(b[16:]):
		return nil, fmt.Errorf("%w: checksum mismatch", errCacheCorrupt)
	}
	rows := make([]Row, 0, le.Uint32(b[12:]))
	for p := b[cacheHeader:]; len(p) > 0; p = p[RowSize:] {
		r, err := DecodeRow(p)
		if err != nil {
			return nil, err
		}
		rows = append(rows, r)
	}
	return rows, nil
}
