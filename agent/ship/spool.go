package ship

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

const (
	spoolExt    = ".batch"
	spoolTmpPfx = ".tmp-"
)

// entry is one spooled batch. Its file is <seq, 20 digits>-<batch id>.batch, so
// a directory listing sorted by name is oldest first.
type entry struct {
	seq  uint64
	id   string
	path string
	size int64
}

// spool is the bounded on-disk queue of batches not yet acknowledged.
type spool struct {
	dir string
	max int64

	mu       sync.Mutex
	entries  []entry // ascending seq
	bytes    int64
	dropped  uint64
	lastSeq  uint64
	inflight uint64 // seq being sent (0: none); never dropped by the bound
}

// openSpool reads dir (creating it) so batches spooled by an earlier run are
// delivered, and removes temporary files of writes a crash interrupted.
func openSpool(dir string, maxBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create spool dir: %w", err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read spool dir: %w", err)
	}
	s := &spool{dir: dir, max: maxBytes}
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, spoolTmpPfx) {
			// Never renamed, so never reported as spooled: safe to delete.
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		e, ok := parseEntryName(name)
		if !ok || !de.Type().IsRegular() {
			continue
		}
		info, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("stat spooled batch: %w", err)
		}
		e.path = filepath.Join(dir, name)
		e.size = info.Size()
		s.entries = append(s.entries, e)
		s.bytes += e.size
		s.lastSeq = max(s.lastSeq, e.seq)
	}
	slices.SortFunc(s.entries, func(a, b entry) int { return cmpUint(a.seq, b.seq) })
	return s, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func entryName(seq uint64, id string) string {
	return fmt.Sprintf("%020d-%s%s", seq, id, spoolExt)
}

func parseEntryName(name string) (entry, bool) {
	base, ok := strings.CutSuffix(name, spoolExt)
	if !ok {
		return entry{}, false
	}
	num, id, ok := strings.Cut(base, "-")
	if !ok || id == "" {
		return entry{}, false
	}
	seq, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return entry{}, false
	}
	return entry{seq: seq, id: id}, true
}

// nextSeq returns a sequence number above every one used before, also by
// earlier runs: the wall clock in nanoseconds unless that went backwards.
func (s *spool) nextSeq(nowNanos int64) uint64 {
	seq := max(s.lastSeq+1, uint64(max(nowNanos, 0)))
	s.lastSeq = seq
	return seq
}

// put writes data durably (write, fsync, rename, fsync dir) and then enforces
// the byte bound by dropping the oldest batches. It returns the new entry and
// how many batches were dropped.
func (s *spool) put(agentID string, data []byte, nowNanos int64) (entry, int, error) {
	if int64(len(data)) > s.max {
		return entry{}, 0, fmt.Errorf("batch of %d bytes exceeds spool bound of %d bytes", len(data), s.max)
	}
	s.mu.Lock()
	seq := s.nextSeq(nowNanos)
	s.mu.Unlock()
	id := agentID + "-" + strconv.FormatUint(seq, 10)
	name := entryName(seq, id)
	path := filepath.Join(s.dir, name)
	if err := writeFileSync(s.dir, spoolTmpPfx+name, path, data); err != nil {
		return entry{}, 0, err
	}
	e := entry{seq: seq, id: id, path: path, size: int64(len(data))}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = append(s.entries, e)
	s.bytes += e.size
	dropped := 0
	for i := 0; s.bytes > s.max && i < len(s.entries); {
		old := s.entries[i]
		if old.seq == s.inflight || old.seq == e.seq {
			i++
			continue
		}
		if err := os.Remove(old.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return e, dropped, fmt.Errorf("drop oldest spooled batch: %w", err)
		}
		s.entries = slices.Delete(s.entries, i, i+1)
		s.bytes -= old.size
		s.dropped++
		dropped++
	}
	return e, dropped, nil
}

func writeFileSync(dir, tmpName, path string, data []byte) error {
	tmp := filepath.Join(dir, tmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool batch: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("spool batch: %w", err)
	}
	// The rename is durable only once the directory is synced.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync spool dir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync spool dir: %w", err)
	}
	return nil
}

// oldest returns the oldest batch and marks it in flight.
func (s *spool) oldest() (entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.entries) == 0 {
		s.inflight = 0
		return entry{}, false
	}
	s.inflight = s.entries[0].seq
	return s.entries[0], true
}

// remove deletes a delivered (or rejected) batch.
func (s *spool) remove(e entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight == e.seq {
		s.inflight = 0
	}
	i := slices.IndexFunc(s.entries, func(x entry) bool { return x.seq == e.seq })
	if i < 0 {
		return nil
	}
	if err := os.Remove(e.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove delivered batch: %w", err)
	}
	s.entries = slices.Delete(s.entries, i, i+1)
	s.bytes -= e.size
	return nil
}

func (s *spool) stats() (batches int, bytes int64, dropped uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries), s.bytes, s.dropped
}
