// Package samplebatch defines the Arrow sample batch (version 1; version 2 adds a
// profile type), the unit the agent sends and the aggregator stores: one row per (time
// bucket, labels, stack) with a sample count. Both sides use this package: Builder writes batches, Decode validates
// and reads them. SCHEMA.md in this directory documents every column.
//
// Each unique stack travels once per batch: the row that first names a stack_id carries
// its frames, later rows with the same stack_id carry a null frames list. Frame names
// are dictionary-encoded, so repeated function names cost an index, not a string.
package samplebatch
