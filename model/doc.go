// Package model holds the types every layer of fleetprof shares: what a query
// selects (Selection, Filter), what it returns (Top, FlameNode, Diff, Profile,
// SeriesPoint, VersionSpan), the rollup rows the analyzer reads, and stored
// findings records; plus the pure functions that build query results from a
// Profile. It depends on nothing but the standard library, so the query
// client, the analyzer, the MCP server and the simulator use it without
// linking a storage engine (only aggregator/storage, the aggregator and
// cmd/fleetprof import aggregator/storage). Keep these types stable: the HTTP
// JSON API is made of them.
package model
