package samplebatch

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

const ts0 = 1_760_000_000

func sample(frames []string, v int64) Sample {
	return Sample{TS: ts0, Labels: Labels{Service: "api", Version: "v1", Host: "h1", Comm: "api", PID: 42,
		Extra: []Label{{Key: "zone", Value: "a"}}}, Frames: frames, Value: v, PeriodNS: 10_101_010}
}

func TestRoundTrip(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := []Sample{
		sample([]string{"main", "a", "b"}, 3),
		sample([]string{"main", "a"}, 1),
		sample([]string{"main", "a", "b"}, 2), // same stack: frames sent once
	}
	b := NewBuilder(mem)
	for _, s := range in {
		b.Append(s)
	}
	rec := b.NewRecord()
	frames := rec.Column(rec.Schema().FieldIndices(ColFrames)[0])
	if got := frames.NullN(); got != 1 {
		t.Errorf("frames nulls = %d, want 1 (repeated stack)", got)
	}
	data, err := EncodeIPC(mem, rec)
	rec.Release()
	b.Release()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Rows) != 3 || got.Samples() != 6 || len(got.Stacks) != 2 {
		t.Fatalf("rows=%d samples=%d stacks=%d", len(got.Rows), got.Samples(), len(got.Stacks))
	}
	for i, r := range got.Rows {
		if !reflect.DeepEqual(r.Labels, in[i].Labels) {
			t.Errorf("row %d labels = %+v, want %+v", i, r.Labels, in[i].Labels)
		}
		if f := got.Stacks[r.StackID]; !reflect.DeepEqual(f, in[i].Frames) {
			t.Errorf("row %d frames = %v, want %v", i, f, in[i].Frames)
		}
	}
}

// encodeWith builds a valid one-row record and lets mutate replace one column.
func encodeWith(t *testing.T, schema *arrow.Schema, mutate func(cols []arrow.Array) []arrow.Array) []byte {
	t.Helper()
	b := NewBuilder(nil)
	b.Append(sample([]string{"main", "f"}, 1))
	rec := b.NewRecord()
	cols := mutate(rec.Columns())
	out := array.NewRecordBatch(schema, cols, rec.NumRows())
	data, err := encodeSchema(schema, out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestDecodeRejects(t *testing.T) {
	good, err := Encode([]Sample{sample([]string{"main", "f"}, 1)})
	if err != nil {
		t.Fatal(err)
	}
	withMeta := func(kv ...string) *arrow.Schema {
		md := arrow.NewMetadata([]string{MetaSchema, MetaSchemaVersion, MetaProfileType}[:len(kv)], kv)
		return arrow.NewSchema(Schema.Fields(), &md)
	}
	same := func(c []arrow.Array) []arrow.Array { return c }
	dropValue := func() *arrow.Schema {
		var fs []arrow.Field
		for _, f := range Schema.Fields() {
			if f.Name != ColValue {
				fs = append(fs, f)
			}
		}
		md := Schema.Metadata()
		return arrow.NewSchema(fs, &md)
	}()
	int64Col := func(v int64) arrow.Array {
		bl := array.NewInt64Builder(memory.DefaultAllocator)
		bl.Append(v)
		return bl.NewArray()
	}
	replace := func(name string, col arrow.Array) func([]arrow.Array) []arrow.Array {
		return func(cols []arrow.Array) []arrow.Array {
			out := append([]arrow.Array(nil), cols...)
			out[Schema.FieldIndices(name)[0]] = col
			return out
		}
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty payload"},
		{"garbage", []byte("not arrow at all"), "not an arrow ipc stream"},
		{"truncated", good[:len(good)/2], "arrow"},
		{"oversized", append(good, make([]byte, 17<<20)...), "limit"},
		{"schema version", encodeWith(t, withMeta(SchemaName, "99"), same), `unsupported schema version "99"`},
		{"profile type in version 1", encodeWith(t, withMeta(SchemaName, SchemaVersion, "alloc_space/bytes"), same), "fleetprof.profile_type is set in a version 1 batch"},
		{"version 2 without profile type", encodeWith(t, withMeta(SchemaName, SchemaVersionTyped), same), "without schema metadata fleetprof.profile_type"},
		{"bad profile type", encodeWith(t, withMeta(SchemaName, SchemaVersionTyped, "Heap Bytes"), same), `bad profile type "Heap Bytes"`},
		{"missing column", encodeWith(t, dropValue, func(c []arrow.Array) []arrow.Array {
			return append(append([]arrow.Array(nil), c[:13]...), c[14:]...)
		}), `missing column "value"`},
		{"negative value", encodeWith(t, Schema, replace(ColValue, int64Col(-3))), "row 0: value: negative (-3)"},
		{"overflowing value", encodeWith(t, Schema, replace(ColValue, int64Col(1<<62))), "row 0: value: 4611686018427387904 exceeds"},
		{"bad period", encodeWith(t, Schema, replace(ColPeriodNS, int64Col(0))), "row 0: period_ns"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.data, Limits{})
			if err == nil {
				t.Fatalf("Decode accepted a bad batch")
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// locationsCol is a one-row frame_locations column holding locs (nil: a null row).
func locationsCol(locs []string) arrow.Array {
	lb := array.NewListBuilder(memory.DefaultAllocator, dictString)
	if locs == nil {
		lb.AppendNull()
	} else {
		appendStrings(lb, locs)
	}
	return lb.NewArray()
}

func TestFrameLocations(t *testing.T) {
	py := sample([]string{"main", "app.outer", "app.inner"}, 3)
	py.Locations = []string{"", "/srv/app.py:10", "/srv/app.py:14"}
	native := sample([]string{"main", "f"}, 2)
	native.Locations = []string{"", ""} // all unknown: sent as null
	again := py
	again.Locations = []string{"", "/elsewhere/app.py:1", "/elsewhere/app.py:2"} // same names: the first locations stay
	data, err := Encode([]Sample{py, native, again})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64][]string{StackID(py.Frames): py.Locations}
	if !reflect.DeepEqual(got.Locations, want) {
		t.Fatalf("locations = %v, want %v", got.Locations, want)
	}

	// A writer from before the column: the batch has no frame_locations.
	noLocs := func() *arrow.Schema {
		md := Schema.Metadata()
		return arrow.NewSchema(Schema.Fields()[:Schema.NumFields()-1], &md)
	}()
	old := encodeWith(t, noLocs, func(c []arrow.Array) []arrow.Array { return c[:len(c)-1] })
	if b, err := Decode(old, Limits{}); err != nil || len(b.Stacks) != 1 || len(b.Locations) != 0 {
		t.Fatalf("batch without frame_locations: %v, %+v", err, b)
	}

	replace := func(col arrow.Array) func([]arrow.Array) []arrow.Array {
		return func(cols []arrow.Array) []arrow.Array {
			out := append([]arrow.Array(nil), cols...)
			out[Schema.FieldIndices(ColFrameLocations)[0]] = col
			return out
		}
	}
	nullFrames := func(cols []arrow.Array) []arrow.Array {
		out := replace(locationsCol([]string{"a.py:1", "a.py:2"}))(cols)
		lb := array.NewListBuilder(memory.DefaultAllocator, dictString)
		lb.AppendNull()
		out[Schema.FieldIndices(ColFrames)[0]] = lb.NewArray()
		return out
	}
	for _, tc := range []struct {
		name   string
		mutate func([]arrow.Array) []arrow.Array
		want   string
	}{
		{"fewer than frames", replace(locationsCol([]string{"a.py:1"})), "row 0: frame_locations: 1 entries for 2 frames"},
		{"not FILE:LINE", replace(locationsCol([]string{"", "a.py"})), `"a.py" at depth 1 is not FILE:LINE`},
		{"line 0", replace(locationsCol([]string{"", "a.py:0"})), "is not FILE:LINE"},
		{"too long", replace(locationsCol([]string{"", strings.Repeat("d/", MaxLocationBytes) + "a.py:1"})), "frame_locations: 2054 bytes at depth 1, limit 1024"},
		{"without frames", nullFrames, "set on a row without frames"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(encodeWith(t, Schema, tc.mutate), Limits{})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestProfileTypeRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		typ, version, want string
	}{
		{ProfileCPU, SchemaVersion, ""},
		{"alloc_space/bytes", SchemaVersionTyped, "alloc_space/bytes"},
		{"goroutine/count", SchemaVersionTyped, "goroutine/count"},
		{"delay/nanoseconds", SchemaVersionTyped, "delay/nanoseconds"},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			data, err := EncodeProfile(tc.typ, []Sample{sample([]string{"main", "alloc"}, 4096)})
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(data, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Rows[0].ProfileType != tc.want || got.Samples() != 4096 {
				t.Fatalf("row = %+v, want profile type %q and value 4096", got.Rows[0], tc.want)
			}
			rdr, err := ipc.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			defer rdr.Release()
			if v, _ := rdr.Schema().Metadata().GetValue(MetaSchemaVersion); v != tc.version {
				t.Fatalf("schema version %q, want %q: CPU batches stay readable by version 1 aggregators", v, tc.version)
			}
		})
	}
}

func TestCheckProfileType(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"cpu", true}, {"alloc_space/bytes", true}, {"inuse_objects/count", true}, {"contentions/count", true},
		{"", false}, {"heap", false}, {"alloc_space/", false}, {"/bytes", false}, {"Alloc/bytes", false},
		{"a/b/c", false}, {"a b/bytes", false}, {"x'/bytes", false}, {strings.Repeat("a", 60) + "/bytes", false},
	} {
		if err := CheckProfileType(tc.in); (err == nil) != tc.ok {
			t.Errorf("CheckProfileType(%q) = %v, want ok %v", tc.in, err, tc.ok)
		}
	}
	if _, err := EncodeProfile("Heap", nil); !errors.Is(err, ErrBadProfileType) {
		t.Fatalf("EncodeProfile with a bad type: %v", err)
	}
}

func TestStackIDMismatch(t *testing.T) {
	b := NewBuilder(nil)
	b.Append(sample([]string{"main", "f"}, 1))
	rec := b.NewRecord()
	ids := array.NewUint64Builder(memory.DefaultAllocator)
	ids.Append(7)
	cols := append([]arrow.Array(nil), rec.Columns()...)
	cols[Schema.FieldIndices(ColStackID)[0]] = ids.NewArray()
	data, err := encodeSchema(Schema, array.NewRecordBatch(Schema, cols, 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(data, Limits{}); err == nil || !strings.Contains(err.Error(), "does not match its frames") {
		t.Fatalf("error = %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := Encode([]Sample{sample([]string{"main", "a", "b"}, 3), sample([]string{"main"}, 1)})
	f.Add(good)
	located := sample([]string{"main", "app.run"}, 2)
	located.Locations = []string{"", "/srv/app.py:7"}
	withLocs, _ := Encode([]Sample{located, sample([]string{"main"}, 1), located})
	f.Add(withLocs)
	f.Add([]byte{})
	f.Add(good[:100])
	// Compressed bodies, size lies in their length prefixes, a shared dictionary.
	compressed := compressedBatch(f)
	f.Add(compressed)
	f.Add(sizeLie(f, compressed, 1<<40))
	f.Add(sizeLie(f, compressed, 8<<30))
	f.Add(sharedDictBatch(f, 2_000, 20))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Decode(data, Limits{})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		for _, r := range b.Rows {
			if r.Value < 0 || len(b.Stacks[r.StackID]) == 0 {
				t.Fatalf("accepted invalid row %+v", r)
			}
		}
		for id, locs := range b.Locations {
			if len(locs) != len(b.Stacks[id]) {
				t.Fatalf("stack %016x: %d locations for %d frames", id, len(locs), len(b.Stacks[id]))
			}
		}
	})
}
