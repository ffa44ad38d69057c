package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// MaxRecordBytes is the largest payload a record may hold (the id and an
// ingest message, which the aggregator bounds far below this).
const MaxRecordBytes = 1 << 30

const headerBytes = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt marks a record that cannot be decoded (short, bad checksum,
// impossible length).
var ErrCorrupt = errors.New("corrupt record")

// Record is one logged batch.
type Record struct {
	ID   string
	Data []byte
	// Segment is the segment the record is in (set by Append and Open).
	Segment uint64
}

// ReplayStats says what Open found.
type ReplayStats struct {
	Segments  int // segment files read
	Records   int // valid records returned
	TornBytes int // bytes after the last valid record of a segment, cut off
}

// Log is an open write-ahead log. Its methods are safe for concurrent use.
type Log struct {
	dir string

	mu      sync.Mutex
	f       *os.File
	seg     uint64
	written int64 // bytes appended to the current segment
	broken  error // a failed write: the next append starts a new segment

	syncMu sync.Mutex
	synced map[uint64]int64 // per segment, bytes known durable
}

// Open opens (creating it if needed) the log in dir, returns the valid
// records of its existing segments in order, and starts a new segment for
// appends.
func Open(dir string) (*Log, []Record, ReplayStats, error) {
	var st ReplayStats
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, st, fmt.Errorf("wal: %w", err)
	}
	segs, err := segments(dir)
	if err != nil {
		return nil, nil, st, err
	}
	var recs []Record
	for _, seg := range segs {
		b, err := os.ReadFile(segPath(dir, seg))
		if err != nil {
			return nil, nil, st, fmt.Errorf("wal: read segment %d: %w", seg, err)
		}
		st.Segments++
		for off := 0; off < len(b); {
			r, n, err := decodeRecord(b[off:])
			if err != nil {
				st.TornBytes += len(b) - off
				break
			}
			r.Segment = seg
			recs = append(recs, r)
			off += n
		}
	}
	st.Records = len(recs)
	l := &Log{dir: dir, synced: map[uint64]int64{}}
	next := uint64(1)
	if len(segs) > 0 {
		next = segs[len(segs)-1] + 1
	}
	if err := l.startSegment(next); err != nil {
		return nil, nil, st, err
	}
	return l, recs, st, nil
}

// segments lists dir's segment numbers in increasing order.
func segments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	var out []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".wal")
		if !ok || e.IsDir() {
			continue
		}
		n, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

func segPath(dir string, seg uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%016x.wal", seg))
}

// startSegment makes seg the current segment (mu held or not yet shared).
func (l *Log) startSegment(seg uint64) error {
	f, err := os.OpenFile(segPath(l.dir, seg), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("wal: new segment: %w", err)
	}
	if err := syncDir(l.dir); err != nil {
		f.Close()
		return err
	}
	if l.f != nil {
		l.f.Close()
	}
	l.f, l.seg, l.written, l.broken = f, seg, 0, nil
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("wal: sync dir: %w", err)
	}
	return nil
}

// Append writes r durably: when it returns nil, r survives a crash. It
// returns the segment r was written to. Appends that arrive while one
// fsync runs share the next one.
func (l *Log) Append(id string, data []byte) (uint64, error) {
	payload := encodePayload(id, data)
	if len(payload) > MaxRecordBytes {
		return 0, fmt.Errorf("wal: record of %d bytes over %d", len(payload), MaxRecordBytes)
	}
	rec := make([]byte, headerBytes, headerBytes+len(payload))
	binary.LittleEndian.PutUint32(rec[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(payload, castagnoli))
	rec = append(rec, payload...)

	l.mu.Lock()
	if l.broken != nil {
		// The failed write may have left part of a record: never append
		// after it, so replay loses nothing written later.
		if err := l.startSegment(l.seg + 1); err != nil {
			l.mu.Unlock()
			return 0, err
		}
	}
	f, seg := l.f, l.seg
	if _, err := f.Write(rec); err != nil {
		l.broken = err
		l.mu.Unlock()
		return 0, fmt.Errorf("wal: append: %w", err)
	}
	l.written += int64(len(rec))
	end := l.written
	l.mu.Unlock()
	return seg, l.sync(f, seg, end)
}

// sync makes f durable up to end, unless an fsync that covered end already ran.
func (l *Log) sync(f *os.File, seg uint64, end int64) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.synced[seg] >= end {
		return nil
	}
	l.mu.Lock()
	upTo := l.written
	if seg != l.seg { // rotated since: the old file's length is final
		upTo = end
	}
	l.mu.Unlock()
	if err := f.Sync(); err != nil {
		l.mu.Lock()
		if seg == l.seg {
			l.broken = err
		}
		l.mu.Unlock()
		return fmt.Errorf("wal: fsync: %w", err)
	}
	l.synced[seg] = max(l.synced[seg], upTo)
	return nil
}

// Rotate starts a new segment and returns its number: every record
// appended before Rotate is in a lower segment.
func (l *Log) Rotate() (uint64, error) {
	l.syncMu.Lock() // before mu, as in sync
	defer l.syncMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.written == 0 && l.broken == nil {
		return l.seg, nil
	}
	old, oldSeg := l.f, l.seg
	if l.broken == nil {
		if err := old.Sync(); err != nil {
			return 0, fmt.Errorf("wal: fsync: %w", err)
		}
		l.synced[oldSeg] = l.written // appends waiting on an fsync find it done
	}
	if err := l.startSegment(oldSeg + 1); err != nil {
		return 0, err
	}
	return l.seg, nil
}

// Remove deletes the segments below seg (all their records are committed).
func (l *Log) Remove(seg uint64) error {
	segs, err := segments(l.dir)
	if err != nil {
		return err
	}
	for _, s := range segs {
		if s >= seg {
			break
		}
		if err := os.Remove(segPath(l.dir, s)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("wal: remove segment %d: %w", s, err)
		}
		l.syncMu.Lock()
		delete(l.synced, s)
		l.syncMu.Unlock()
	}
	return syncDir(l.dir)
}

// Close closes the current segment; records stay for the next Open.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

func encodePayload(id string, data []byte) []byte {
	p := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(id)+len(data)), uint64(len(id)))
	p = append(p, id...)
	return append(p, data...)
}

// decodeRecord decodes the record at the start of b and returns its length.
func decodeRecord(b []byte) (Record, int, error) {
	if len(b) < headerBytes {
		return Record{}, 0, fmt.Errorf("%w: %d header bytes", ErrCorrupt, len(b))
	}
	n := binary.LittleEndian.Uint32(b)
	if n > MaxRecordBytes || int(n) > len(b)-headerBytes {
		return Record{}, 0, fmt.Errorf("%w: payload length %d, %d bytes left", ErrCorrupt, n, len(b)-headerBytes)
	}
	payload := b[headerBytes : headerBytes+int(n)]
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return Record{}, 0, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	idLen, k := binary.Uvarint(payload)
	if k <= 0 || idLen > uint64(len(payload)-k) {
		return Record{}, 0, fmt.Errorf("%w: id length", ErrCorrupt)
	}
	id := string(payload[k : k+int(idLen)])
	return Record{ID: id, Data: slices.Clone(payload[k+int(idLen):])}, headerBytes + int(n), nil
}
