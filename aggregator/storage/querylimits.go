package storage

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Limits every read query runs under, passed to the engine as query SETTINGS (chDB
// and clickhouse-server both honour them), so a hostile or huge query is cut off by
// the engine instead of starving ingest.
const (
	// QueryMaxThreads bounds the engine threads of one read query: ingest runs on the
	// same cores, and a query's latency matters less than ingest's acks.
	QueryMaxThreads = 1
	// QueryMaxMemoryBytes bounds the memory of one read query (max_memory_usage).
	QueryMaxMemoryBytes = 1 << 30
	// QueryMaxExecution caps a read query's run time when its context has no (or a
	// later) deadline; with a deadline the engine gets the time left.
	QueryMaxExecution = 5 * time.Minute
)

// readSettings is the SETTINGS clause appended to a read query run under ctx.
func readSettings(ctx context.Context) string {
	limit := QueryMaxExecution
	if d, ok := ctx.Deadline(); ok {
		limit = min(limit, time.Until(d))
	}
	secs := max(1, int64(math.Ceil(limit.Seconds())))
	return fmt.Sprintf(" SETTINGS max_threads = %d, max_memory_usage = %d, max_execution_time = %d",
		QueryMaxThreads, QueryMaxMemoryBytes, secs)
}

// read runs a SELECT under the read-query limits.
func (s *Store) read(ctx context.Context, sql string) (*Rows, error) {
	return s.be.Query(ctx, sql+readSettings(ctx))
}
