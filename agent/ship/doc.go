// Package ship delivers encoded sample batches to the aggregator over the
// ingest gRPC Write stream (proto/fleetprof/ingest/v1).
//
// Every batch is first written to an on-disk spool (one file per batch,
// fsynced, atomically renamed; the file name carries the sequence number and
// the batch id), then a single sender delivers spooled batches oldest first
// and deletes each file once the aggregator acknowledges it. So:
//
//   - a batch id is fixed when the batch is spooled and is the same on every
//     retry, so the aggregator can drop duplicates;
//   - ACKED and DUPLICATE count as delivered, REJECTED is dropped and counted
//     (retrying the same bytes cannot succeed), FAILED and stream errors are
//     retried with exponential backoff and jitter — except that a batch whose
//     send ends the stream with ResourceExhausted maxExhaustedAttempts times in
//     a row (the aggregator cannot read a message that big) is dropped and
//     counted as TooLarge, so it never blocks the batches behind it;
//   - nothing acked is resent (the file is deleted on ack) and nothing spooled
//     is lost on restart (the spool directory is re-read by New);
//   - when the spool exceeds its byte bound, the oldest batches are deleted
//     and counted as dropped.
//
// A crash between the aggregator storing a batch and the agent deleting its
// file resends that batch once with the same id: the aggregator answers
// DUPLICATE, so it is still stored exactly once.
package ship
