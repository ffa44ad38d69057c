// Package ingestv1 is the generated Go code of the agent → aggregator ingest contract,
// fleetprof.ingest.v1 (ingest.proto in this directory): one bidirectional Write stream
// of Arrow sample batches, each answered by an ack or a precise rejection. Regenerate
// with `make generate`; `make check-generated` fails when the committed code is stale.
package ingestv1
