// Package clickhousetest starts throwaway ClickHouse servers for tests.
//
// It runs the Debian clickhouse-server (18.16) on 127.0.0.1 with a generated
// config in a temporary directory and free TCP ports. The server refuses to run
// as root, so when the test runs as root it is started as the clickhouse user
// and the directory is chowned to it. A server is ready in ~0.3 s.
//
// Use Start/StartN from a test (stopped in t.Cleanup), or Launch from TestMain
// to share one server per package. Both skip (Start) or return ErrNotInstalled
// (Launch) when the binary is missing: install it with
// `apt-get install clickhouse-server`.
package clickhousetest
