package chdb

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/cdata"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ErrClosed is returned by calls on a closed DB.
var ErrClosed = errors.New("chdb: database is closed")

// StreamPlaceholder is replaced by the registered Arrow stream's name in the
// statement passed to InsertArrow.
const StreamPlaceholder = "%s"

// engine is the process-wide chDB instance: one per process, one data path.
type engine struct {
	path string
	lib  string
	// baseLimit is max_execution_time when a context has no deadline.
	baseLimit string
	refs      int
	n         int
	pool      chan *conn
	done      chan struct{} // closed once every connection is closed
}

// conn is one chDB connection. It is owned by whoever took it from the
// pool, which is what serializes statements on it.
type conn struct {
	h *C.fp_chdb_connection
	// limit is the max_execution_time currently set on the connection.
	limit string
}

var (
	engMu   sync.Mutex
	current *engine
	// streamSeq makes registered Arrow stream names unique per process.
	streamSeq atomic.Uint64
)

// DB is a handle on the process's embedded ClickHouse. Every Open returns a
// new handle on the same engine; the engine shuts down when the last handle
// is closed. A DB is safe for concurrent use.
type DB struct {
	eng    *engine
	closed atomic.Bool
}

// Open loads libchdb.so (once per process) and opens the engine on
// cfg.Path. Opening the same path again shares the running engine (its
// pool size and settings stay as first opened); opening a different path
// while a handle is open is an error, since chDB runs one data path per
// process.
func Open(cfg Config) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	libPath, err := loadLib(cfg.LibPath)
	if err != nil {
		return nil, err
	}
	path, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("chdb: resolve data path: %w", err)
	}
	engMu.Lock()
	defer engMu.Unlock()
	if current != nil {
		if current.path != path {
			return nil, fmt.Errorf("chdb: engine already open on %s, cannot also open %s (one data path per process)", current.path, path)
		}
		current.refs++
		return &DB{eng: current}, nil
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("chdb: create data dir: %w", err)
	}
	base := "0"
	if v, ok := cfg.Settings["max_execution_time"]; ok {
		base = v
	}
	eng := &engine{path: path, lib: libPath, baseLimit: base, refs: 1, n: cfg.Conns, pool: make(chan *conn, cfg.Conns), done: make(chan struct{})}
	args := cfg.args(path)
	for i := 0; i < cfg.Conns; i++ {
		c, err := connect(args, base)
		if err != nil {
			for len(eng.pool) > 0 {
				(<-eng.pool).close()
			}
			return nil, err
		}
		eng.pool <- c
	}
	current = eng
	return &DB{eng: eng}, nil
}

func connect(args []string, limit string) (*conn, error) {
	argv := make([]*C.char, len(args))
	for i, a := range args {
		argv[i] = C.CString(a)
	}
	defer func() {
		for _, p := range argv {
			C.free(unsafe.Pointer(p))
		}
	}()
	// argv lives in Go memory for the duration of the call only; chDB copies
	// its arguments.
	h := C.fp_chdb_connect(C.int(len(argv)), &argv[0])
	if h == nil {
		return nil, fmt.Errorf("chdb: connect %s failed (the engine printed its reason on stderr: damaged metadata or parts, a bad setting, or the path in use by another process)", strings.Join(args[1:], " "))
	}
	return &conn{h: h, limit: limit}, nil
}

func (c *conn) close() {
	C.fp_chdb_close(c.h)
	c.h = nil
}

// Path returns the absolute data directory of the engine.
func (d *DB) Path() string { return d.eng.path }

// LibPath returns the absolute path of the loaded libchdb.so.
func (d *DB) LibPath() string { return d.eng.lib }

// Close releases this handle. Closing the last handle waits for running
// statements and shuts the engine down. Close is idempotent.
func (d *DB) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	engMu.Lock()
	defer engMu.Unlock()
	e := d.eng
	e.refs--
	if e.refs > 0 {
		return nil
	}
	for i := 0; i < e.n; i++ {
		(<-e.pool).close()
	}
	close(e.done)
	current = nil
	return nil
}

// acquire takes a connection from the pool and sets its time limit from
// the context's deadline; the caller must release it.
func (d *DB) acquire(ctx context.Context) (*conn, error) {
	c, err := d.take(ctx)
	if err != nil {
		return nil, err
	}
	want := d.eng.baseLimit
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			d.release(c)
			return nil, fmt.Errorf("chdb: wait for connection: %w", context.DeadlineExceeded)
		}
		want = strconv.FormatFloat(max(left.Seconds(), 0.001), 'f', 3, 64)
	}
	if err := c.setLimit(want); err != nil {
		d.release(c)
		return nil, err
	}
	return c, nil
}

// setLimit makes the engine stop a statement at the caller's deadline
// (cgo calls cannot be interrupted). It costs one SET, only when the limit
// changes.
func (c *conn) setLimit(want string) error {
	if c.limit == want {
		return nil
	}
	if _, err := c.query("SET max_execution_time = "+want, "Null"); err != nil {
		return fmt.Errorf("chdb: set deadline: %w", err)
	}
	c.limit = want
	return nil
}

// deadlineErr marks an engine timeout caused by the context's deadline.
func deadlineErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); ok && strings.Contains(err.Error(), "TIMEOUT_EXCEEDED") {
		return fmt.Errorf("%w (%w)", err, context.DeadlineExceeded)
	}
	return err
}

// take waits for a free connection.
func (d *DB) take(ctx context.Context) (*conn, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("chdb: wait for connection: %w", err)
	}
	select {
	case c := <-d.eng.pool:
		return c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("chdb: wait for connection: %w", ctx.Err())
	case <-d.eng.done:
		return nil, ErrClosed
	}
}

func (d *DB) release(c *conn) { d.eng.pool <- c }

// Exec runs a statement whose output is not needed (DDL, INSERT ... SELECT).
//
// Contexts: cancellation is honored while waiting for a connection; a
// deadline also becomes the statement's max_execution_time, and an engine
// timeout then wraps context.DeadlineExceeded. A canceled context without a
// deadline does not stop a statement that has started.
func (d *DB) Exec(ctx context.Context, sql string) error {
	_, err := d.Query(ctx, sql, "Null")
	return err
}

// Query runs sql and returns its result in the given ClickHouse output
// format (e.g. "JSONEachRow", "TSV", "RowBinary"). The query text is passed
// with its length, so it may contain NUL bytes; do not append data after
// FORMAT in the text (chDB splits statements at a blank line), use
// InsertArrow instead.
func (d *DB) Query(ctx context.Context, sql, format string) ([]byte, error) {
	if err := checkSQL(sql); err != nil {
		return nil, err
	}
	if format == "" {
		return nil, errors.New("chdb: query: empty format")
	}
	c, err := d.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer d.release(c)
	out, err := c.query(sql, format)
	return out, deadlineErr(ctx, err)
}

func checkSQL(sql string) error {
	if strings.TrimSpace(sql) == "" {
		return errors.New("chdb: query: empty statement")
	}
	return nil
}

// cstr points C at the bytes of a Go string for the duration of one call.
func cstr(s string) *C.char { return (*C.char)(unsafe.Pointer(unsafe.StringData(s))) }

func (c *conn) query(sql, format string) ([]byte, error) {
	r := C.fp_chdb_query_n(c.h, cstr(sql), C.size_t(len(sql)), cstr(format), C.size_t(len(format)))
	if r == nil {
		return nil, errors.New("chdb: query: no result from engine")
	}
	defer C.fp_chdb_destroy_result(r)
	if err := resultError(r); err != nil {
		return nil, err
	}
	n := int(C.fp_chdb_result_length(r))
	out := make([]byte, n)
	if n > 0 {
		copy(out, unsafe.Slice((*byte)(unsafe.Pointer(C.fp_chdb_result_buffer(r))), n))
	}
	return out, nil
}

func resultError(r *C.fp_chdb_result) error {
	if e := C.fp_chdb_result_error(r); e != nil {
		if msg := strings.TrimSpace(C.GoString(e)); msg != "" {
			return fmt.Errorf("chdb: query: %s", msg)
		}
	}
	return nil
}

// QueryArrow runs sql and returns the result as Arrow record batches copied
// into memory from alloc (nil means memory.DefaultAllocator). The engine's
// own result is released before returning, because an unreleased result
// blocks its connection. The caller must Release the reader.
//
// Type mapping is chDB's default: LowCardinality columns arrive as their
// base type, String as utf8, DateTime as uint32 seconds.
func (d *DB) QueryArrow(ctx context.Context, sql string, alloc memory.Allocator) (array.RecordReader, error) {
	if err := checkSQL(sql); err != nil {
		return nil, err
	}
	if alloc == nil {
		alloc = memory.DefaultAllocator
	}
	c, err := d.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer d.release(c)
	rdr, err := c.queryArrow(sql, alloc)
	return rdr, deadlineErr(ctx, err)
}

func (c *conn) queryArrow(sql string, alloc memory.Allocator) (array.RecordReader, error) {
	stream := (*C.struct_ArrowArrayStream)(C.calloc(1, C.sizeof_struct_ArrowArrayStream))
	if stream == nil {
		return nil, errors.New("chdb: query arrow: out of memory")
	}
	defer C.free(unsafe.Pointer(stream))
	defer C.fp_arrow_stream_release(stream) // no-op once the importer moved it
	r := C.fp_chdb_query_arrow_n(c.h, cstr(sql), C.size_t(len(sql)), stream)
	if r == nil {
		return nil, errors.New("chdb: query: no result from engine")
	}
	defer C.fp_chdb_destroy_result(r)
	if err := resultError(r); err != nil {
		return nil, err
	}
	if stream.release == nil {
		return nil, errors.New("chdb: query arrow: engine returned no stream")
	}
	imp, err := cdata.ImportCRecordReader((*cdata.CArrowArrayStream)(unsafe.Pointer(stream)), nil)
	if err != nil {
		return nil, fmt.Errorf("chdb: import arrow stream: %w", err)
	}
	src, ok := imp.(array.RecordReader)
	if !ok {
		return nil, fmt.Errorf("chdb: import arrow stream: unexpected reader %T", imp)
	}
	defer src.Release()
	var recs []arrow.RecordBatch
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	for {
		rec, err := imp.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("chdb: read arrow stream: %w", err)
		}
		cp, err := copyRecord(rec, alloc)
		if err != nil {
			return nil, err
		}
		recs = append(recs, cp)
	}
	out, err := array.NewRecordReader(src.Schema(), recs)
	if err != nil {
		return nil, fmt.Errorf("chdb: query arrow: %w", err)
	}
	return out, nil
}

// copyRecord deep-copies rec into alloc so that nothing refers to engine
// memory once the engine's stream is released.
func copyRecord(rec arrow.RecordBatch, alloc memory.Allocator) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, 0, rec.NumCols())
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	for i, col := range rec.Columns() {
		cp, err := array.Concatenate([]arrow.Array{col}, alloc)
		if err != nil {
			return nil, fmt.Errorf("chdb: copy column %s: %w", rec.ColumnName(i), err)
		}
		cols = append(cols, cp)
	}
	return array.NewRecordBatch(rec.Schema(), cols, rec.NumRows()), nil
}

// InsertArrow streams rdr into the engine: it registers rdr under a unique
// name and runs stmt with the single %s replaced by that name, e.g.
//
//	INSERT INTO samples (a, b) SELECT a, b FROM arrowstream(%s)
//
// The reader is consumed but not released (the caller keeps its reference).
// Dictionary-encoded string columns, also inside lists, are accepted as
// String or LowCardinality(String) targets.
func (d *DB) InsertArrow(ctx context.Context, stmt string, rdr array.RecordReader) error {
	if strings.Count(stmt, StreamPlaceholder) != 1 {
		return fmt.Errorf("chdb: insert arrow: statement must contain exactly one %s placeholder for the stream name", StreamPlaceholder)
	}
	if rdr == nil {
		return errors.New("chdb: insert arrow: nil reader")
	}
	c, err := d.acquire(ctx)
	if err != nil {
		return err
	}
	defer d.release(c)
	return deadlineErr(ctx, c.insertArrow(stmt, rdr))
}

func (c *conn) insertArrow(stmt string, rdr array.RecordReader) error {
	stream := (*C.struct_ArrowArrayStream)(C.calloc(1, C.sizeof_struct_ArrowArrayStream))
	if stream == nil {
		return errors.New("chdb: insert arrow: out of memory")
	}
	defer C.free(unsafe.Pointer(stream))
	cdata.ExportRecordReader(rdr, (*cdata.CArrowArrayStream)(unsafe.Pointer(stream)))
	// chDB does not own a stream registered with chdb_arrow_scan.
	defer C.fp_arrow_stream_release(stream)

	name := fmt.Sprintf("fleetprof_arrow_%d_%d", os.Getpid(), streamSeq.Add(1))
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if C.fp_chdb_arrow_scan(c.h, cname, stream) != 0 {
		return fmt.Errorf("chdb: insert arrow: register stream %s failed", name)
	}
	defer C.fp_chdb_arrow_unregister(c.h, cname)
	_, err := c.query(strings.Replace(stmt, StreamPlaceholder, name, 1), "Null")
	return err
}
