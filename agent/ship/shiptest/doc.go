// Package shiptest provides test doubles for code that ships batches: an
// in-process ingest gRPC server that deduplicates by batch id (like the
// aggregator, without importing it) and a fake clock.
package shiptest
