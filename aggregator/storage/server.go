package storage

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// server is a ClickHouse server reached over the native protocol.
type server struct {
	conn driver.Conn
}

// openServer connects to one or more hosts (clickhouse-go fails over between
// them) with database db, which must exist.
func openServer(ctx context.Context, dsn string, hosts []string, db string) (*server, error) {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse clickhouse uri: %w", err)
	}
	if hosts != nil {
		opts.Addr = hosts
	}
	opts.Auth.Database = db
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 10 * time.Second
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("connect clickhouse %v: %w", opts.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect clickhouse %v: %w", opts.Addr, err)
	}
	return &server{conn: conn}, nil
}

func (s *server) Exec(ctx context.Context, sql string) error { return s.conn.Exec(ctx, sql) }

func (s *server) Query(ctx context.Context, sql string) (*Rows, error) {
	rows, err := s.conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	out := &Rows{Columns: rows.Columns()}
	ptrs := make([]any, len(types))
	for i, t := range types {
		ptrs[i] = reflect.New(t.ScanType()).Interface()
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("scan row: %w", err)
		}
		row := make([]any, len(ptrs))
		for i, p := range ptrs {
			row[i] = neutral(reflect.ValueOf(p).Elem().Interface())
		}
		out.Data = append(out.Data, row)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func neutral(v any) any {
	switch x := v.(type) {
	case uint8:
		return uint64(x)
	case uint16:
		return uint64(x)
	case uint32:
		return uint64(x)
	case uint64:
		return x
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int64:
		return x
	case float32:
		return float64(x)
	case float64:
		return x
	case string, []string:
		return x
	case time.Time:
		return x.Unix()
	}
	return v
}

func (s *server) Insert(ctx context.Context, table string, rec arrow.RecordBatch) error {
	stmt := "INSERT INTO " + table + " ("
	for i := 0; i < int(rec.NumCols()); i++ {
		if i > 0 {
			stmt += ", "
		}
		stmt += rec.ColumnName(i)
	}
	stmt += ")"
	batch, err := s.conn.PrepareBatch(ctx, stmt)
	if err != nil {
		return fmt.Errorf("insert %s: %w", table, err)
	}
	defer func() { _ = batch.Abort() }() // no-op after Send
	for i, col := range rec.Columns() {
		v, err := goColumn(col)
		if err != nil {
			return fmt.Errorf("insert %s: column %s: %w", table, rec.ColumnName(i), err)
		}
		if err := batch.Column(i).Append(v); err != nil {
			return fmt.Errorf("insert %s: column %s: %w", table, rec.ColumnName(i), err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %s: %w", table, err)
	}
	return nil
}

// goColumn converts an Arrow column to the slice clickhouse-go appends.
func goColumn(a arrow.Array) (any, error) {
	n := a.Len()
	switch x := a.(type) {
	case *array.Uint8:
		return append([]uint8(nil), x.Uint8Values()...), nil
	case *array.Uint32:
		return append([]uint32(nil), x.Uint32Values()...), nil
	case *array.Uint64:
		return append([]uint64(nil), x.Uint64Values()...), nil
	case *array.Int64:
		return append([]int64(nil), x.Int64Values()...), nil
	case *array.String:
		out := make([]string, n)
		for i := range out {
			out[i] = x.Value(i)
		}
		return out, nil
	case *array.Dictionary:
		dict, ok := x.Dictionary().(*array.String)
		if !ok {
			return nil, fmt.Errorf("dictionary of %s not supported", x.Dictionary().DataType())
		}
		out := make([]string, n)
		for i := range out {
			out[i] = dict.Value(x.GetValueIndex(i))
		}
		return out, nil
	case *array.Timestamp:
		out := make([]time.Time, n)
		for i := range out {
			out[i] = time.Unix(int64(x.Value(i)), 0)
		}
		return out, nil
	case *array.List:
		vals, ok := x.ListValues().(*array.String)
		if !ok {
			return nil, fmt.Errorf("list of %s not supported", x.ListValues().DataType())
		}
		out := make([][]string, n)
		for i := range out {
			beg, end := x.ValueOffsets(i)
			s := make([]string, 0, end-beg)
			for j := beg; j < end; j++ {
				s = append(s, vals.Value(int(j)))
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("arrow type %s not supported", a.DataType())
}

func (s *server) ServerVersion(ctx context.Context) (Version, error) {
	v, err := s.conn.ServerVersion()
	if err != nil {
		return Version{}, fmt.Errorf("server version: %w", err)
	}
	return Version{Major: int(v.Version.Major), Minor: int(v.Version.Minor), Patch: int(v.Version.Patch)}, nil
}

func (s *server) Close() error { return s.conn.Close() }
