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
	// QueryThreadNice is the nice value of a read query's engine threads
	// (os_thread_priority, ClickHouse 20.1 and later): on cores ingest shares with
	// queries, the kernel runs ingest's threads first and queries take what is left.
	QueryThreadNice = 19
	// EmbeddedReadConns is how many of the embedded engine's connections reads may
	// hold at once; EmbeddedWriteConns more are left to writes (a commit inserts
	// samples and rollup in parallel), so ingest never queues behind a query.
	EmbeddedReadConns  = 1
	EmbeddedWriteConns = 2
)

// readSettings is the SETTINGS clause appended to a read query run under ctx.
func (s *Store) readSettings(ctx context.Context) string {
	limit := QueryMaxExecution
	if d, ok := ctx.Deadline(); ok {
		limit = min(limit, time.Until(d))
	}
	secs := max(1, int64(math.Ceil(limit.Seconds())))
	nice := ""
	if s.feat.ThreadPriority {
		nice = fmt.Sprintf(", os_thread_priority = %d", QueryThreadNice)
	}
	return fmt.Sprintf(" SETTINGS max_threads = %d, max_memory_usage = %d, max_execution_time = %d%s",
		QueryMaxThreads, QueryMaxMemoryBytes, secs, nice)
}

// read runs a SELECT under the read-query limits, holding a read slot where the
// engine's connections are few (embedded).
func (s *Store) read(ctx context.Context, sql string) (*Rows, error) {
	if s.readSlots != nil {
		select {
		case s.readSlots <- struct{}{}:
			defer func() { <-s.readSlots }()
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for a read slot: %w", ctx.Err())
		}
	}
	return s.be.Query(ctx, sql+s.readSettings(ctx))
}
