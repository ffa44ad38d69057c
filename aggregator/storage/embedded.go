package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/fleetprof/fleetprof/aggregator/storage/chdb"
)

// ErrEngineNotInstalled is wrapped by Open's error for embedded storage when the chDB
// library (libchdb.so) is missing: run scripts/fetch-chdb.sh. Callers outside this
// package test for it with errors.Is instead of importing the binding.
var ErrEngineNotInstalled = chdb.ErrLibraryNotFound

// embedded is the in-process chDB backend.
type embedded struct {
	db *chdb.DB
}

func openEmbedded(dir, lib string) (*embedded, error) {
	db, err := chdb.Open(chdb.Config{Path: dir, LibPath: lib, Conns: EmbeddedReadConns + EmbeddedWriteConns})
	if errors.Is(err, chdb.ErrLibraryNotFound) {
		return nil, fmt.Errorf("open embedded clickhouse (install libchdb.so with scripts/fetch-chdb.sh or make setup): %w", err)
	}
	if err != nil {
		// The library loaded: the data dir is what failed (the engine's
		// message names the file, e.g. damaged table metadata).
		return nil, fmt.Errorf("open embedded clickhouse data dir %s: %w", dir, err)
	}
	return &embedded{db: db}, nil
}

func (e *embedded) Exec(ctx context.Context, sql string) error { return e.db.Exec(ctx, sql) }

func (e *embedded) Query(ctx context.Context, sql string) (*Rows, error) {
	rdr, err := e.db.QueryArrow(ctx, sql, nil)
	if err != nil {
		return nil, err
	}
	defer rdr.Release()
	out := &Rows{}
	for _, f := range rdr.Schema().Fields() {
		out.Columns = append(out.Columns, f.Name)
	}
	for rdr.Next() {
		rec := rdr.RecordBatch()
		n := int(rec.NumRows())
		base := len(out.Data)
		for range n {
			out.Data = append(out.Data, make([]any, rec.NumCols()))
		}
		for c, col := range rec.Columns() {
			for i := range n {
				out.Data[base+i][c] = arrowValue(col, i)
			}
		}
	}
	if err := rdr.Err(); err != nil {
		return nil, fmt.Errorf("read arrow result: %w", err)
	}
	return out, nil
}

// arrowValue converts one cell to the neutral Go form of Rows.
func arrowValue(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch x := a.(type) {
	case *array.Uint8:
		return uint64(x.Value(i))
	case *array.Uint16:
		return uint64(x.Value(i))
	case *array.Uint32:
		return uint64(x.Value(i))
	case *array.Uint64:
		return x.Value(i)
	case *array.Int8:
		return int64(x.Value(i))
	case *array.Int16:
		return int64(x.Value(i))
	case *array.Int32:
		return int64(x.Value(i))
	case *array.Int64:
		return x.Value(i)
	case *array.Float32:
		return float64(x.Value(i))
	case *array.Float64:
		return x.Value(i)
	case *array.String:
		return x.Value(i)
	case *array.LargeString:
		return x.Value(i)
	case *array.Binary:
		return string(x.Value(i))
	case *array.LargeBinary:
		return string(x.Value(i))
	case *array.Timestamp:
		return int64(x.Value(i))
	case *array.Dictionary:
		return arrowValue(x.Dictionary(), x.GetValueIndex(i))
	case *array.List:
		beg, end := x.ValueOffsets(i)
		vals := x.ListValues()
		out := make([]string, 0, end-beg)
		for j := beg; j < end; j++ {
			out = append(out, fmt.Sprint(arrowValue(vals, int(j))))
		}
		return out
	}
	return a.ValueStr(i)
}

func (e *embedded) Insert(ctx context.Context, table string, rec arrow.RecordBatch) error {
	cols := make([]string, rec.NumCols())
	for i := range cols {
		cols[i] = rec.ColumnName(i)
	}
	list := strings.Join(cols, ", ")
	rdr, err := array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
	if err != nil {
		return fmt.Errorf("insert %s: %w", table, err)
	}
	defer rdr.Release()
	// optimize_on_insert=0: the engine would otherwise sum/replace rows of
	// equal key inside each inserted block (Summing/ReplacingMergeTree). The
	// store's blocks are already aggregated per key and readers sum() or
	// argMax() anyway, so that pass only cost CPU: ~3× the insert time of the
	// rollup (1.5 → 0.45 cpu-s per 430k rows, BenchmarkIngest fleet shapes).
	stmt := "INSERT INTO " + table + " (" + list + ") SELECT " + list + " FROM arrowstream(" + chdb.StreamPlaceholder + ") SETTINGS optimize_on_insert = 0"
	if err := e.db.InsertArrow(ctx, stmt, rdr); err != nil {
		return fmt.Errorf("insert %s: %w", table, err)
	}
	return nil
}

func (e *embedded) ServerVersion(ctx context.Context) (Version, error) { return backendVersion(ctx, e) }

func (e *embedded) Close() error { return e.db.Close() }
