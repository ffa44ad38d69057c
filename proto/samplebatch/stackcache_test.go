package samplebatch

import (
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/cespare/xxhash/v2"
)

// claimed encodes one row of frames under stack id id, true or not.
func claimed(t *testing.T, frames []string, id uint64) []byte {
	t.Helper()
	b := NewBuilder(nil)
	defer b.Release()
	b.Append(sample(frames, 1))
	rec := b.NewRecord()
	defer rec.Release()
	ids := array.NewUint64Builder(memory.DefaultAllocator)
	defer ids.Release()
	ids.Append(id)
	cols := append([]arrow.Array(nil), rec.Columns()...)
	cols[Schema.FieldIndices(ColStackID)[0]] = ids.NewArray()
	data, err := encodeSchema(Schema, array.NewRecordBatch(Schema, cols, 1))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A cached stack id names the frames first verified for it; frames sent
// later under it are taken as those only at the same depth, else checked.
func TestDecodeCached(t *testing.T) {
	known := []string{"main", "f"}
	id := StackID(known)
	for _, tc := range []struct {
		name   string
		cached bool
		frames []string
		want   []string // nil: rejected
	}{
		{"honest, not cached", false, known, known},
		{"honest, cached", true, known, known},
		{"lie, not cached", false, []string{"main", "g"}, nil},
		{"lie at the cached depth", true, []string{"main", "g"}, known},
		{"lie at another depth", true, []string{"main", "g", "h"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewStackCache(16)
			if tc.cached {
				c.Put(id, known)
			}
			b, err := DecodeCached(claimed(t, tc.frames, id), Limits{}, c)
			if tc.want == nil {
				if err == nil || !strings.Contains(err.Error(), "does not match its frames") {
					t.Fatalf("error = %v, want a stack_id mismatch", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := b.Stacks[id]; !slices.Equal(got, tc.want) {
				t.Fatalf("frames = %q, want %q", got, tc.want)
			}
			if got, ok := c.Get(id); !ok || !slices.Equal(got, tc.want) {
				t.Fatalf("cache holds %q (%v), want %q", got, ok, tc.want)
			}
		})
	}
}

// StackID is the documented hash: xxhash64 of the names joined by newlines.
func TestStackIDIsJoinedHash(t *testing.T) {
	for _, fs := range [][]string{nil, {"main"}, {"main", "a", "b"}, {"", "x\ny", strings.Repeat("long", 100)}} {
		if got, want := StackID(fs), xxhash.Sum64String(strings.Join(fs, "\n")); got != want {
			t.Errorf("StackID(%q) = %016x, want %016x", fs, got, want)
		}
	}
}
