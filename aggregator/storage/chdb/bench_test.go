package chdb

import (
	"context"
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// BenchmarkInsertArrow inserts 100k sample rows (dictionary-encoded strings
// and frame lists) per iteration through chdb_arrow_scan.
func BenchmarkInsertArrow(b *testing.B) {
	db := needDB(b)
	ctx := context.Background()
	const rows, batch = 100_000, 10_000
	createTable(b, db, "bench_insert")
	mem := memory.NewGoAllocator()
	rdr := buildReader(b, mem, rows, batch)
	rdr.Release()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		rdr := buildReader(b, mem, rows, batch) // a reader is consumed by one insert
		b.StartTimer()
		if err := db.InsertArrow(ctx, fmt.Sprintf(insertSamples, "bench_insert"), rdr); err != nil {
			b.Fatal(err)
		}
		rdr.Release()
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkQueryArrow reads 200k rows back as Arrow, including the copy
// into Go memory.
func BenchmarkQueryArrow(b *testing.B) {
	db := needDB(b)
	ctx := context.Background()
	const rows = 200_000
	createTable(b, db, "bench_query")
	mem := memory.NewGoAllocator()
	rdr := buildReader(b, mem, rows, 20_000)
	must(b, db.InsertArrow(ctx, fmt.Sprintf(insertSamples, "bench_query"), rdr))
	rdr.Release()
	b.ResetTimer()
	for b.Loop() {
		out, err := db.QueryArrow(ctx, "SELECT ts, service, comm, stack_id, frames, value FROM bench_query", mem)
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for out.Next() {
			n += out.RecordBatch().NumRows()
		}
		out.Release()
		if n != rows {
			b.Fatalf("read %d rows, want %d", n, rows)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
