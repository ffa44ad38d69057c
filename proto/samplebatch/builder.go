package samplebatch

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Builder accumulates samples into one record. It is not safe for concurrent use.
type Builder struct {
	rb   *array.RecordBuilder
	seen map[uint64]struct{}
	rows int
}

// NewBuilder returns an empty builder of CPU samples allocating from mem (nil means
// the Go allocator).
func NewBuilder(mem memory.Allocator) *Builder {
	b, _ := NewProfileBuilder(mem, ProfileCPU) // ProfileCPU is valid
	return b
}

// NewProfileBuilder is NewBuilder for rows of another profile type (CheckProfileType):
// its records, and the stream EncodeIPC writes from them, name that type.
func NewProfileBuilder(mem memory.Allocator, profileType string) (*Builder, error) {
	if err := CheckProfileType(profileType); err != nil {
		return nil, err
	}
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	return &Builder{rb: array.NewRecordBuilder(mem, schemaFor(profileType)), seen: map[uint64]struct{}{}}, nil
}

// Len is the number of rows appended since the last NewRecord.
func (b *Builder) Len() int { return b.rows }

// Append adds one row. Frames are written only for the first row of each stack, and
// so are its locations, if it has any (Sample.Locations of that row).
func (b *Builder) Append(s Sample) {
	f := b.rb.Fields()
	f[0].(*array.TimestampBuilder).Append(arrow.Timestamp(s.TS))
	l := s.Labels
	for i, v := range []string{l.Service, l.Version, l.Host, l.Namespace, l.Pod, l.Container, l.Comm} {
		// Appending a string to a dictionary builder of strings cannot fail.
		_ = f[1+i].(*array.BinaryDictionaryBuilder).AppendString(v)
	}
	f[8].(*array.Uint32Builder).Append(l.PID)
	keys, vals := f[9].(*array.ListBuilder), f[10].(*array.ListBuilder)
	keys.Append(true)
	vals.Append(true)
	for _, kv := range l.Extra {
		keys.ValueBuilder().(*array.StringBuilder).Append(kv.Key)
		vals.ValueBuilder().(*array.StringBuilder).Append(kv.Value)
	}
	id := StackID(s.Frames)
	f[11].(*array.Uint64Builder).Append(id)
	frames, locs := f[12].(*array.ListBuilder), f[15].(*array.ListBuilder)
	if _, ok := b.seen[id]; ok {
		frames.AppendNull()
		locs.AppendNull()
	} else {
		b.seen[id] = struct{}{}
		appendStrings(frames, s.Frames)
		if len(s.Locations) == len(s.Frames) && slices.ContainsFunc(s.Locations, func(l string) bool { return l != "" }) {
			appendStrings(locs, s.Locations)
		} else {
			locs.AppendNull()
		}
	}
	f[13].(*array.Int64Builder).Append(s.Value)
	f[14].(*array.Int64Builder).Append(s.PeriodNS)
	b.rows++
}

// appendStrings appends one list of vs to a list<dictionary<int32, utf8>> builder.
func appendStrings(lb *array.ListBuilder, vs []string) {
	lb.Append(true)
	vb := lb.ValueBuilder().(*array.BinaryDictionaryBuilder)
	for _, v := range vs {
		// Appending a string to a dictionary builder of strings cannot fail.
		_ = vb.AppendString(v)
	}
}

// NewRecord returns the rows appended so far as one record and resets the builder.
// The caller releases the record.
func (b *Builder) NewRecord() arrow.RecordBatch {
	b.rows = 0
	clear(b.seen)
	return b.rb.NewRecordBatch()
}

// Release frees the builder's buffers.
func (b *Builder) Release() { b.rb.Release() }

// EncodeIPC writes records of one Builder's profile type as one Arrow IPC stream, the
// payload of a WriteRequest. The stream's schema metadata is the first record's.
func EncodeIPC(mem memory.Allocator, recs ...arrow.RecordBatch) ([]byte, error) {
	schema := Schema
	if len(recs) > 0 {
		schema = recs[0].Schema()
	}
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			return nil, fmt.Errorf("encode arrow ipc: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encode arrow ipc: %w", err)
	}
	return buf.Bytes(), nil
}

// Encode builds and encodes CPU samples in one step (tests, importers, simulators).
func Encode(samples []Sample) ([]byte, error) { return EncodeProfile(ProfileCPU, samples) }

// EncodeProfile is Encode for samples of profileType.
func EncodeProfile(profileType string, samples []Sample) ([]byte, error) {
	b, err := NewProfileBuilder(nil, profileType)
	if err != nil {
		return nil, err
	}
	defer b.Release()
	for _, s := range samples {
		b.Append(s)
	}
	rec := b.NewRecord()
	defer rec.Release()
	return EncodeIPC(memory.DefaultAllocator, rec)
}
