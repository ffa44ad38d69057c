package storage

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
)

// Backend is the storage boundary: a ClickHouse SQL engine. Both
// implementations (embedded chDB and a clickhouse-go server connection) speak
// the same SQL; the Store never knows which one it has.
type Backend interface {
	// Exec runs a statement without a result (DDL, INSERT ... SELECT).
	Exec(ctx context.Context, sql string) error
	// Query runs a SELECT and returns its rows in neutral Go values: unsigned
	// integers as uint64, signed as int64, floats as float64, strings as
	// string, Array(String) as []string. Select DateTime as toUInt32(x).
	Query(ctx context.Context, sql string) (*Rows, error)
	// Insert writes a record into table (qualified name), matching columns by
	// name. Column types: uint8/32/64, int64, utf8, list<utf8>, timestamp[s].
	Insert(ctx context.Context, table string, rec arrow.RecordBatch) error
	// ServerVersion is the engine's ClickHouse version.
	ServerVersion(ctx context.Context) (Version, error)
	Close() error
}

// Rows is a query result, row-major.
type Rows struct {
	Columns []string
	Data    [][]any
}

// Version is a ClickHouse version.
type Version struct{ Major, Minor, Patch int }

// ParseVersion reads "18.16.1" or "26.5.3.1".
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	var v Version
	dst := []*int{&v.Major, &v.Minor, &v.Patch}
	for i := 0; i < len(parts) && i < 3; i++ {
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return Version{}, fmt.Errorf("parse clickhouse version %q: %w", s, err)
		}
		*dst[i] = n
	}
	if len(parts) < 2 {
		return Version{}, fmt.Errorf("parse clickhouse version %q: want MAJOR.MINOR[.PATCH]", s)
	}
	return v, nil
}

// AtLeast reports whether v >= major.minor.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Values in Rows are converted with these; a NULL or an unexpected type
// gives the zero value, as ClickHouse's defaults would.
func asUint(v any) uint64 {
	switch x := v.(type) {
	case uint64:
		return x
	case int64:
		return uint64(x)
	case float64:
		return uint64(x)
	}
	return 0
}

func asInt(v any) int64 {
	switch x := v.(type) {
	case uint64:
		return int64(x)
	case int64:
		return x
	case float64:
		return int64(x)
	}
	return 0
}

func asString(v any) string {
	s, _ := v.(string)
	return s
}

func asStrings(v any) []string {
	s, _ := v.([]string)
	return s
}

func backendVersion(ctx context.Context, b Backend) (Version, error) {
	r, err := b.Query(ctx, "SELECT version()")
	if err != nil {
		return Version{}, fmt.Errorf("server version: %w", err)
	}
	if len(r.Data) != 1 || len(r.Data[0]) != 1 {
		return Version{}, fmt.Errorf("server version: unexpected result shape")
	}
	return ParseVersion(asString(r.Data[0][0]))
}
