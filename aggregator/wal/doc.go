// Package wal is the aggregator's ingest write-ahead log: accepted batches
// are appended to segment files and fsynced (one fsync for all appends that
// arrive while one runs) so they can be acknowledged before they reach
// ClickHouse, which then gets them in large groups.
//
// # File format
//
// A log is a directory of segment files named %016x.wal by increasing
// segment number. A segment is a sequence of records, little-endian:
//
//	offset size  field
//	0      4     payload length n
//	4      4     CRC-32C (Castagnoli) of the payload
//	8      n     payload: uvarint id length, id bytes, then the batch's
//	             Arrow IPC message (samplebatch v1/v2) as received
//
// A record is valid when its whole payload is present and its checksum
// matches. Replay (Open) reads every segment in order and stops a segment
// at its first invalid record: a torn tail left by a crash (kill -9, power
// loss) is cut off there, and counted. Records are never rewritten; a
// segment is deleted once every record in it is committed to the store
// (Remove), so replay after a crash may return records already stored, and
// the store's batch-id check drops them (exactly once).
//
// MaxRecordBytes bounds a payload; a length above it is treated as
// corruption, so a damaged length cannot make replay allocate without bound.
package wal
