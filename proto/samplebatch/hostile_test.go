package samplebatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/ipc"
)

const hostileRows = 777 // int64 columns of 777 rows: 6,216-byte buffers, easy to find

// compressedBatch encodes a valid batch with zstd-compressed IPC buffers.
func compressedBatch(tb testing.TB) []byte {
	tb.Helper()
	b := NewBuilder(nil)
	defer b.Release()
	for i := range hostileRows {
		b.Append(sample([]string{"main", fmt.Sprintf("f%d", i)}, 1))
	}
	rec := b.NewRecord()
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(Schema), ipc.WithZstd())
	if err := w.Write(rec); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// sizeLie rewrites every compressed buffer's uncompressed-length prefix of the
// int64 columns to claim bytes: what a hostile sender does in a few KB.
func sizeLie(tb testing.TB, data []byte, claim uint64) []byte {
	tb.Helper()
	var want, lie [8]byte
	binary.LittleEndian.PutUint64(want[:], 8*hostileRows)
	binary.LittleEndian.PutUint64(lie[:], claim)
	out := bytes.ReplaceAll(data, want[:], lie[:])
	if bytes.Equal(out, data) {
		tb.Fatal("no uncompressed-length prefix found to rewrite")
	}
	return out
}

func TestHostileSizeClaims(t *testing.T) {
	honest := compressedBatch(t)
	if b, err := Decode(honest, Limits{}); err != nil || len(b.Rows) != hostileRows {
		t.Fatalf("honest compressed batch: %v", err)
	}
	tests := []struct {
		name  string
		claim uint64
	}{
		{"1 TiB", 1 << 40},
		{"8 GiB", 8 << 30},
		{"just over the decode limit", uint64(decodeMemoryFactor*(16<<20)) + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := sizeLie(t, honest, tt.claim)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := Decode(data, Limits{})
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "decode memory limit") {
				t.Fatalf("Decode of a %d-byte message claiming %d bytes: %v", len(data), tt.claim, err)
			}
			// Bounded: nothing near the claim was allocated.
			if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
				t.Errorf("decoding allocated %d bytes", got)
			}
		})
	}
}
