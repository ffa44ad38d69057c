// Package storage is fleetprof's profile store on ClickHouse.
//
// One SQL dialect, two engines behind the Backend interface: embedded chDB
// (ClickHouse 26.5 in-process, package chdb; URI "embedded:DIR") and a
// ClickHouse server over the native protocol with clickhouse-go
// ("clickhouse://HOST:PORT[,HOST:PORT]/DB", optionally a sharded cluster with
// "?cluster=NAME"). The schema (SCHEMA.md) works on both ClickHouse 18.16 and
// 26.5; newer features (TTL, codecs, LowCardinality) are turned on from the
// engine's version.
//
// Store writes decoded sample batches once per batch id, stores each stack
// once, and computes the per-function rollup the analyzer reads in Go at
// ingest. Queries aggregate by stack in SQL and build top tables, flame
// graphs and diffs in Go with pure functions (TopFromProfile,
// FlameFromProfile, DiffProfiles). Values never become SQL text except
// through one quoting function.
package storage
