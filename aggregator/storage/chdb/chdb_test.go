package chdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error, "" for valid
	}{
		{"defaults", Config{Path: "/tmp/x"}, ""},
		{"empty path", Config{}, "Path is empty"},
		{"nul path", Config{Path: "a\x00b"}, "NUL"},
		{"negative conns", Config{Path: "/tmp/x", Conns: -1}, "Conns -1"},
		{"too many conns", Config{Path: "/tmp/x", Conns: 1000}, "Conns 1000"},
		{"bad setting", Config{Path: "/tmp/x", Settings: map[string]string{"a=b": "1"}}, "bad setting"},
		{"good setting", Config{Path: "/tmp/x", Settings: map[string]string{"max_threads": "2"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestConfigArgs(t *testing.T) {
	got := Config{Settings: map[string]string{"max_threads": "2", "allow_experimental_x": "1"}}.args("/d")
	want := []string{"fleetprof", "--path=/d", "--allow_experimental_x=1", "--max_threads=2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("args = %q, want %q", got, want)
	}
}

func TestOpenMissingLibrary(t *testing.T) {
	bogus := filepath.Join(t.TempDir(), "nope", "libchdb.so")
	tests := []struct {
		name string
		cfg  Config
		env  string
	}{
		{"explicit path", Config{Path: t.TempDir(), LibPath: bogus}, ""},
		{"env var", Config{Path: t.TempDir()}, bogus},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv(EnvLib, tt.env)
			}
			db, err := Open(tt.cfg)
			if err == nil {
				db.Close()
				t.Fatal("Open with a missing library succeeded")
			}
			if !errors.Is(err, ErrLibraryNotFound) {
				t.Errorf("error %v does not wrap ErrLibraryNotFound", err)
			}
			for _, want := range []string{"chdb: libchdb.so not found", bogus, "scripts/fetch-chdb.sh"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestOpenSingleton(t *testing.T) {
	db := needDB(t)
	ctx := context.Background()

	if other, err := Open(Config{Path: t.TempDir()}); err == nil {
		other.Close()
		t.Fatal("Open on a second data path succeeded, want error")
	} else if !strings.Contains(err.Error(), "one data path per process") {
		t.Fatalf("second path error = %v", err)
	}

	same, err := Open(Config{Path: db.Path()})
	if err != nil {
		t.Fatalf("Open on the same path: %v", err)
	}
	if _, err := same.Query(ctx, "SELECT 1", "TSV"); err != nil {
		t.Fatalf("query on shared handle: %v", err)
	}
	if err := same.Close(); err != nil {
		t.Fatal(err)
	}
	if err := same.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := same.Query(ctx, "SELECT 1", "TSV"); !errors.Is(err, ErrClosed) {
		t.Fatalf("query on closed handle = %v, want ErrClosed", err)
	}
	// Closing one handle leaves the engine up for the others.
	if out, err := db.Query(ctx, "SELECT 41+1", "TSV"); err != nil || string(out) != "42\n" {
		t.Fatalf("query after closing another handle = %q, %v", out, err)
	}
}

// TestSignalHandlersPreserved proves chDB's handlers did not replace Go's,
// also after the engine has run queries.
func TestSignalHandlersPreserved(t *testing.T) {
	db := needDB(t)
	if _, err := db.Query(context.Background(), "SELECT count() FROM numbers(100000)", "TSV"); err != nil {
		t.Fatal(err)
	}
	now := signalHandlers()
	for i := range now {
		if now[i] != handlersBefore[i] {
			t.Errorf("signal %d (%v): handler %#x, was %#x before chDB", i+1, syscall.Signal(i+1), now[i], handlersBefore[i])
		}
	}
}

// nilMap is never initialized; a package variable keeps the nil-map write
// below out of reach of static checks.
var nilMap map[string]int

// TestPanicRecoverable proves Go's runtime still owns the signals it needs:
// a nil dereference (SIGSEGV) and a nil-map write must become recoverable
// panics, and a goroutine in a tight loop must be preemptible (SIGURG).
func TestPanicRecoverable(t *testing.T) {
	db := needDB(t)
	if _, err := db.Query(context.Background(), "SELECT sum(number) FROM numbers(1000)", "TSV"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		fn   func()
	}{
		{"nil map write", func() {
			nilMap["x"] = 1
		}},
		{"nil pointer dereference", func() {
			var p *struct{ x int }
			p.x = 1
		}},
		{"slice out of range", func() {
			s := []int{}
			i := 3
			_ = s[i]
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan any, 1)
			go func() {
				defer func() { got <- recover() }()
				tt.fn()
			}()
			if r := <-got; r == nil {
				t.Fatal("no panic recovered")
			} else {
				t.Logf("recovered: %v", r)
			}
		})
	}
	t.Run("async preemption", func(t *testing.T) {
		var stop atomic.Bool
		var n uint64
		done := make(chan struct{})
		go func() {
			defer close(done)
			for !stop.Load() { // no calls: only a signal can preempt this loop
				n++
			}
		}()
		runtime.GC() // stops the world: hangs if SIGURG never reaches Go
		stop.Store(true)
		<-done
	})
}

// sampleRows is the expected content of the round-trip table.
type sampleRow struct {
	TS      uint32   `json:"ts"`
	Service string   `json:"service"`
	Comm    string   `json:"comm"`
	StackID uint64   `json:"stack_id"`
	Frames  []string `json:"frames"`
	Value   int64    `json:"value"`
}

const baseTS = 1_764_000_000

func makeRow(i int) sampleRow {
	frames := []string{"main"}
	for d := 0; d < i%5; d++ {
		frames = append(frames, fmt.Sprintf("pkg.f%d", (i+d)%50))
	}
	return sampleRow{
		TS:      uint32(baseTS + i%60),
		Service: []string{"api", "db", "worker"}[i%3],
		Comm:    []string{"a", "bb", "ccc", "dddd"}[i%4],
		StackID: uint64(i),
		Frames:  frames,
		Value:   int64(i) * 7,
	}
}

var dictStr = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}

// sampleSchema uses dictionary-encoded strings, also inside a list, the
// way agents ship sample batches.
var sampleSchema = arrow.NewSchema([]arrow.Field{
	{Name: "ts", Type: arrow.FixedWidthTypes.Timestamp_s},
	{Name: "service", Type: dictStr},
	{Name: "comm", Type: dictStr},
	{Name: "stack_id", Type: arrow.PrimitiveTypes.Uint64},
	{Name: "frames", Type: arrow.ListOf(dictStr)},
	{Name: "value", Type: arrow.PrimitiveTypes.Int64},
}, nil)

// buildBatch builds rows [from, to) as one record batch.
func buildBatch(t testing.TB, mem memory.Allocator, from, to int) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(mem, sampleSchema)
	defer b.Release()
	ts := b.Field(0).(*array.TimestampBuilder)
	svc := b.Field(1).(*array.BinaryDictionaryBuilder)
	comm := b.Field(2).(*array.BinaryDictionaryBuilder)
	sid := b.Field(3).(*array.Uint64Builder)
	lb := b.Field(4).(*array.ListBuilder)
	fb := lb.ValueBuilder().(*array.BinaryDictionaryBuilder)
	val := b.Field(5).(*array.Int64Builder)
	for i := from; i < to; i++ {
		r := makeRow(i)
		ts.Append(arrow.Timestamp(r.TS))
		must(t, svc.AppendString(r.Service))
		must(t, comm.AppendString(r.Comm))
		sid.Append(r.StackID)
		lb.Append(true)
		for _, f := range r.Frames {
			must(t, fb.AppendString(f))
		}
		val.Append(r.Value)
	}
	return b.NewRecordBatch()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// buildReader returns a reader over batches of batchRows rows covering [0, n).
func buildReader(t testing.TB, mem memory.Allocator, n, batchRows int) array.RecordReader {
	t.Helper()
	var recs []arrow.RecordBatch
	for from := 0; from < n; from += batchRows {
		recs = append(recs, buildBatch(t, mem, from, min(from+batchRows, n)))
	}
	rdr, err := array.NewRecordReader(sampleSchema, recs)
	must(t, err)
	for _, r := range recs {
		r.Release()
	}
	return rdr
}

const createSamples = `CREATE TABLE %s (
	ts DateTime,
	service LowCardinality(String),
	comm String,
	stack_id UInt64,
	frames Array(LowCardinality(String)),
	value Int64
) ENGINE = MergeTree PARTITION BY toDate(ts) ORDER BY (service, ts, stack_id)`

const insertSamples = `INSERT INTO %s (ts, service, comm, stack_id, frames, value)
SELECT ts, service, comm, stack_id, frames, value FROM arrowstream(%%s)`

func TestArrowRoundTrip(t *testing.T) {
	db := needDB(t)
	ctx := context.Background()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	const n = 4500
	createTable(t, db, "rt_samples")
	rdr := buildReader(t, mem, n, 1000)
	must(t, db.InsertArrow(ctx, fmt.Sprintf(insertSamples, "rt_samples"), rdr))
	rdr.Release()

	t.Run("QueryArrow", func(t *testing.T) {
		out, err := db.QueryArrow(ctx, "SELECT ts, service, comm, stack_id, frames, value FROM rt_samples ORDER BY stack_id", mem)
		must(t, err)
		defer out.Release()
		i := 0
		for out.Next() {
			rec := out.RecordBatch()
			ts := rec.Column(0).(*array.Uint32) // DateTime arrives as uint32 seconds
			svc := rec.Column(1).(*array.String)
			comm := rec.Column(2).(*array.String)
			sid := rec.Column(3).(*array.Uint64)
			frames := rec.Column(4).(*array.List)
			fv := frames.ListValues().(*array.String)
			val := rec.Column(5).(*array.Int64)
			for j := 0; j < int(rec.NumRows()); j, i = j+1, i+1 {
				got := sampleRow{TS: ts.Value(j), Service: svc.Value(j), Comm: comm.Value(j), StackID: sid.Value(j), Value: val.Value(j)}
				lo, hi := frames.ValueOffsets(j)
				for k := lo; k < hi; k++ {
					got.Frames = append(got.Frames, fv.Value(int(k)))
				}
				if want := makeRow(i); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("row %d = %+v, want %+v", i, got, want)
				}
			}
		}
		must(t, out.Err())
		if i != n {
			t.Fatalf("read %d rows, want %d", i, n)
		}
	})

	t.Run("Query JSONEachRow", func(t *testing.T) {
		out, err := db.Query(ctx, "SELECT toUnixTimestamp(ts) AS ts, service, comm, stack_id, frames, value FROM rt_samples ORDER BY stack_id", "JSONEachRow")
		must(t, err)
		dec := json.NewDecoder(bytes.NewReader(out))
		i := 0
		for ; dec.More(); i++ {
			var got sampleRow
			must(t, dec.Decode(&got))
			if want := makeRow(i); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("row %d = %+v, want %+v", i, got, want)
			}
		}
		if i != n {
			t.Fatalf("decoded %d rows, want %d", i, n)
		}
	})
}

func TestQueryNULBytes(t *testing.T) {
	db := needDB(t)
	out, err := db.Query(context.Background(), "SELECT length('a\x00b\x00c') AS n, 'x\x00y' = concat('x', char(0), 'y') AS eq", "TSV")
	must(t, err)
	if string(out) != "5\t1\n" {
		t.Fatalf("got %q, want %q", out, "5\t1\n")
	}
}

func TestErrors(t *testing.T) {
	db := needDB(t)
	ctx := context.Background()
	createTable(t, db, "err_samples")
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	canceled, cancel := context.WithCancel(ctx)
	cancel()

	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"syntax", func() error { _, err := db.Query(ctx, "SELEC 1", "TSV"); return err }, "chdb: query: Code: 62"},
		{"unknown table", func() error { return db.Exec(ctx, "SELECT * FROM no_such_table") }, "UNKNOWN_TABLE"},
		{"arrow syntax", func() error {
			r, err := db.QueryArrow(ctx, "SELECT FROM WHERE", mem)
			if r != nil {
				r.Release()
			}
			return err
		}, "SYNTAX_ERROR"},
		{"empty statement", func() error { return db.Exec(ctx, "  \n") }, "empty statement"},
		{"bad format", func() error { _, err := db.Query(ctx, "SELECT 1", "NoSuchFormat"); return err }, "UNKNOWN_FORMAT"},
		{"no placeholder", func() error {
			rdr := buildReader(t, mem, 10, 10)
			defer rdr.Release()
			return db.InsertArrow(ctx, "INSERT INTO err_samples SELECT * FROM arrowstream(x)", rdr)
		}, "exactly one %s"},
		{"insert into missing table", func() error {
			rdr := buildReader(t, mem, 10, 10)
			defer rdr.Release()
			return db.InsertArrow(ctx, fmt.Sprintf(insertSamples, "no_such_table"), rdr)
		}, "UNKNOWN_TABLE"},
		{"insert type mismatch", func() error {
			rdr := buildReader(t, mem, 10, 10)
			defer rdr.Release()
			return db.InsertArrow(ctx, "INSERT INTO err_samples (stack_id) SELECT service FROM arrowstream(%s)", rdr)
		}, "chdb: query: "},
		{"canceled context", func() error { _, err := db.Query(canceled, "SELECT 1", "TSV"); return err }, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	// The connections still work after errors.
	for range DefaultConns * 2 {
		if out, err := db.Query(ctx, "SELECT 1", "TSV"); err != nil || string(out) != "1\n" {
			t.Fatalf("query after errors = %q, %v", out, err)
		}
	}
	if _, err := db.Query(canceled, "SELECT 1", "TSV"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled query error %v does not wrap context.Canceled", err)
	}
}

func TestParallelQueries(t *testing.T) {
	db := needDB(t)
	ctx := context.Background()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	createTable(t, db, "par_samples")

	const workers, rounds = 6, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				k := w*rounds + r
				switch r % 3 {
				case 0:
					out, err := db.Query(ctx, fmt.Sprintf("SELECT sum(number) FROM numbers(%d)", k+10), "TSV")
					if want := fmt.Sprintf("%d\n", (k+10)*(k+9)/2); err != nil || string(out) != want {
						errs <- fmt.Errorf("query %d = %q, want %q (err: %w)", k, out, want, err)
					}
				case 1:
					rdr, err := db.QueryArrow(ctx, fmt.Sprintf("SELECT number FROM numbers(%d)", k+1), mem)
					if err != nil {
						errs <- err
						continue
					}
					var rows int64
					for rdr.Next() {
						rows += rdr.RecordBatch().NumRows()
					}
					rdr.Release()
					if rows != int64(k+1) {
						errs <- fmt.Errorf("arrow query %d: %d rows, want %d", k, rows, k+1)
					}
				case 2:
					rdr := buildReader(t, mem, 100, 50)
					if err := db.InsertArrow(ctx, fmt.Sprintf(insertSamples, "par_samples"), rdr); err != nil {
						errs <- err
					}
					rdr.Release()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	inserts := 0
	for r := range rounds {
		if r%3 == 2 {
			inserts++
		}
	}
	out, err := db.Query(ctx, "SELECT count() FROM par_samples", "TSV")
	must(t, err)
	if want := fmt.Sprintf("%d\n", workers*inserts*100); string(out) != want {
		t.Fatalf("count = %q, want %q", out, want)
	}
}

// TestDeadline proves a context deadline stops a running statement and that
// the limit does not stick to the connection afterwards.
func TestDeadline(t *testing.T) {
	db := needDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// ~100 s of work unless the deadline stops it.
	_, err := db.Query(ctx, "SELECT count() FROM numbers(100000000000)", "TSV")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "TIMEOUT_EXCEEDED") {
		t.Fatalf("error = %v, want TIMEOUT_EXCEEDED wrapping context.DeadlineExceeded", err)
	}
	for range DefaultConns {
		if _, err := db.Query(context.Background(), "SELECT sleep(0.4)", "TSV"); err != nil {
			t.Fatalf("query without deadline after a deadline: %v", err)
		}
	}
}

// createTable (re)creates a samples table, so tests can run with -count.
func createTable(tb testing.TB, db *DB, name string) {
	tb.Helper()
	ctx := context.Background()
	must(tb, db.Exec(ctx, "DROP TABLE IF EXISTS "+name))
	must(tb, db.Exec(ctx, fmt.Sprintf(createSamples, name)))
}

func TestInsertArrowEmpty(t *testing.T) {
	db := needDB(t)
	ctx := context.Background()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	createTable(t, db, "empty_samples")
	rdr, err := array.NewRecordReader(sampleSchema, nil)
	must(t, err)
	defer rdr.Release()
	must(t, db.InsertArrow(ctx, fmt.Sprintf(insertSamples, "empty_samples"), rdr))
	out, err := db.Query(ctx, "SELECT count() FROM empty_samples", "TSV")
	must(t, err)
	if string(out) != "0\n" {
		t.Fatalf("count = %q, want 0", out)
	}
	// An empty result still has a schema.
	res, err := db.QueryArrow(ctx, "SELECT stack_id, frames FROM empty_samples", mem)
	must(t, err)
	defer res.Release()
	if got := res.Schema().NumFields(); got != 2 {
		t.Fatalf("schema has %d fields, want 2", got)
	}
	for res.Next() {
		if n := res.RecordBatch().NumRows(); n != 0 {
			t.Fatalf("got %d rows from an empty table", n)
		}
	}
}
