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
			got := after.TotalAlloc - before.TotalAlloc
			if got > 16<<20 {
				t.Errorf("decoding allocated %d bytes", got)
			}
			t.Logf("%d-byte message claiming %d bytes: rejected, %d bytes allocated: %v", len(data), tt.claim, got, err)
		})
	}
}

// sharedDictBatch encodes one record batch holding dictEntries distinct frame
// names, written recs times: the IPC writer sends the dictionary once and every
// record batch references it, so the message stays small while a decoder that
// copies the dictionary per record batch does recs × dictEntries work.
func sharedDictBatch(tb testing.TB, dictEntries, recs int) []byte {
	tb.Helper()
	const perStack = 1000
	b := NewBuilder(nil)
	defer b.Release()
	for s := 0; s*perStack < dictEntries; s++ {
		frames := make([]string, 0, perStack)
		for j := range min(perStack, dictEntries-s*perStack) {
			frames = append(frames, fmt.Sprintf("frame_%07d", s*perStack+j))
		}
		b.Append(sample(frames, 1))
	}
	rec := b.NewRecord()
	defer rec.Release()
	var one bytes.Buffer
	w := ipc.NewWriter(&one, ipc.WithSchema(Schema))
	if err := w.Write(rec); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	// arrow-go's writer resends dictionaries per record batch; a hostile sender
	// does not, so repeat the record batch message itself.
	mr := ipc.NewMessageReader(bytes.NewReader(one.Bytes()))
	defer mr.Release()
	var out bytes.Buffer
	raw, off := one.Bytes(), 0
	for {
		m, err := mr.Message()
		if err != nil {
			break
		}
		metaLen := int(binary.LittleEndian.Uint32(raw[off+4:]))
		end := off + 8 + metaLen + int(m.BodyLen())
		n := 1
		if m.Type() == ipc.MessageRecordBatch {
			n = recs
		}
		for range n {
			out.Write(raw[off:end])
		}
		off = end
	}
	_ = binary.Write(&out, binary.LittleEndian, uint64(0xFFFFFFFF))
	return out.Bytes()
}

func TestSharedDictionaryDecodedOnce(t *testing.T) {
	const entries, recs = 20_000, 100
	data := sharedDictBatch(t, entries, recs)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b, err := Decode(data, Limits{})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Stacks) != entries/1000 || len(b.Rows) != recs*entries/1000 {
		t.Fatalf("%d stacks, %d rows", len(b.Stacks), len(b.Rows))
	}
	// Copying the dictionary per record batch would allocate recs × entries strings
	// (≥ 100 × 20,000 × 29 bytes = 58 MB); once is a few MB.
	if got := after.TotalAlloc - before.TotalAlloc; got > 32<<20 {
		t.Errorf("decode allocated %d bytes for a %d-byte message", got, len(data))
	}
}

func BenchmarkDecodeSharedDictionary(b *testing.B) {
	data := sharedDictBatch(b, 100_000, 30)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
