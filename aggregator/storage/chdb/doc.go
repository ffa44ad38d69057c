// Package chdb is a small cgo binding to chDB, ClickHouse built as a shared
// library, used as fleetprof's embedded storage engine.
//
// Why not chdb-go: it cuts queries at the first NUL byte, has no Arrow path
// in or out, and panics at import when libchdb.so is missing. fleetprof must
// build and start everywhere, so this package loads libchdb.so at run time
// with dlopen/dlsym (never linked) and Open returns an error naming
// scripts/fetch-chdb.sh when the library is absent. chDB ships no C header;
// shim.h declares the few functions used, from the library's exported
// symbols.
//
// Signal handlers: chdb_connect installs process-wide signal handlers,
// which would break Go's nil-dereference panics and goroutine preemption.
// The C shim saves every sigaction (1..64), the thread's signal mask and
// alternate stack before dlopen, connect and close, and restores them in the
// same cgo call.
//
// Engine model: chDB runs one engine and one data path per process. Open is
// therefore a per-process singleton per path; a DB keeps a small pool of
// connections (Config.Conns) because connections run in parallel while
// statements on one connection are serialized.
//
// Data paths: Query uses chdb_query_n (length-delimited text, any output
// format). QueryArrow uses chdb_query_arrow and copies the batches into Go
// memory, then releases the engine's stream at once, since an unreleased
// stream blocks its connection. InsertArrow exports an Arrow RecordReader
// through the C stream interface, registers it with chdb_arrow_scan and runs
// INSERT ... SELECT ... FROM arrowstream(name). Binary data is never put
// inline in query text: chDB splits statements at a blank line.
//
// Arrow types (chDB 26.5, verified by the tests): dictionary<int32, utf8>
// columns and list<dictionary<int32, utf8>> insert directly into String,
// LowCardinality(String) and Array(LowCardinality(String)) without casts;
// timestamp[s] inserts into DateTime. Out of the engine, LowCardinality
// arrives as its base type (utf8) and DateTime as uint32 seconds.
//
// Contexts: a connection is a blocking cgo call that cannot be interrupted,
// so a context's deadline is handed to the engine as max_execution_time
// (one SET when it changes) and a timeout then wraps
// context.DeadlineExceeded; cancellation without a deadline is honored only
// while waiting for a free connection.
//
// Costs measured on a 2-core VM: dlopen 24-350 ms, connect 50-90 ms,
// ~190 MB RSS after connect. Tests share one DB via TestMain.
package chdb
