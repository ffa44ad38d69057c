package samplebatch

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/fleetprof/fleetprof/model"
)

// Limits bound what one batch may hold. The zero value of a field means its default.
type Limits struct {
	MaxBytes      int // encoded size; default 16 MiB
	MaxRows       int // default 1,000,000
	MaxFrames     int // frames per stack; default 1,024
	MaxFrameBytes int // bytes per stored frame name; longer names are shortened (ShortenName), not rejected; default 1,024
	MaxLabels     int // extra labels per row; default 64
	// MaxLocationBytes bounds one frame_locations entry; a longer one rejects the
	// batch (writers send "" instead); default MaxLocationBytes.
	MaxLocationBytes int
	MaxValue         int64         // samples per row; default 1<<40
	MaxPeriodNS      int64         // default one hour
	MaxFuture        time.Duration // how far ts may be ahead of Now; default 24h
	// MaxDecodeBytes bounds the Arrow buffers one Decode may hold (bodies,
	// decompressed buffers, dictionaries); default decodeMemoryFactor × MaxBytes.
	MaxDecodeBytes int
	Now            func() time.Time
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxBytes, 16<<20)
	def(&l.MaxDecodeBytes, decodeMemoryFactor*l.MaxBytes)
	def(&l.MaxRows, 1_000_000)
	def(&l.MaxFrames, 1024)
	def(&l.MaxFrameBytes, 1024)
	def(&l.MaxLabels, 64)
	def(&l.MaxLocationBytes, MaxLocationBytes)
	if l.MaxValue == 0 {
		l.MaxValue = 1 << 40
	}
	if l.MaxPeriodNS == 0 {
		l.MaxPeriodNS = int64(time.Hour)
	}
	if l.MaxFuture == 0 {
		l.MaxFuture = 24 * time.Hour
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	return l
}

// minTS rejects timestamps before 2000-01-01: they are unset clocks, not data.
const minTS = 946684800

// Row is one decoded sample row; its frames are in Batch.Stacks[StackID].
type Row struct {
	TS       int64
	Labels   Labels
	StackID  uint64
	Value    int64
	PeriodNS int64
	// ProfileType is what Value counts (the batch's MetaProfileType); empty means
	// ProfileCPU, which Decode leaves empty.
	ProfileType string
}

// Batch is a decoded, validated sample batch.
type Batch struct {
	Rows   []Row
	Stacks map[uint64][]string // every stack the rows name, root first
	// Locations holds, for the stacks sent with frame_locations, each frame's
	// Location ("" where unknown), parallel to Stacks[id]. Stack ids hash names
	// only, so a stack sent twice keeps the locations it first came with.
	Locations map[uint64][]string
	// ShortenedNames counts frame names over Limits.MaxFrameBytes that were shortened
	// with ShortenName; stack ids are checked against the names as sent.
	ShortenedNames int
}

// Samples is the total sample count of the batch.
func (b *Batch) Samples() int64 {
	var n int64
	for _, r := range b.Rows {
		n += r.Value
	}
	return n
}

// ErrInvalid marks a batch that breaks the schema or the limits; retrying it cannot help.
var ErrInvalid = errors.New("invalid sample batch")

// ErrTooLarge marks a batch over Limits.MaxBytes; it wraps ErrInvalid, and a sender
// can split the batch and retry the parts.
var ErrTooLarge = fmt.Errorf("%w: too large", ErrInvalid)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Decode reads and validates one encoded batch. Every error wraps ErrInvalid and names
// the column and row at fault.
func Decode(data []byte, lim Limits) (*Batch, error) {
	return DecodeCached(data, lim, nil)
}

// DecodeCached is Decode with a cache of stacks verified by earlier decodes (nil:
// none). A row whose stack_id is in known, with as many frames as the cached stack,
// takes the cached frames: its frame names are neither read nor hashed again. Any
// other stack is read and its stack_id checked against its frames as in Decode, then
// added to known. So a stack_id names the frames first verified for it, and frames
// sent later with the same id and depth are not compared (SCHEMA.md, "Stack cache").
func DecodeCached(data []byte, lim Limits, known *StackCache) (b *Batch, err error) {
	lim = lim.withDefaults()
	// The Arrow IPC reader panics on some corrupt inputs (out-of-range offsets);
	// a batch from the network must never take the aggregator down.
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(errDecodeMemory); ok {
				b, err = nil, invalidf("%v", e)
				return
			}
			b, err = nil, invalidf("corrupt arrow data: %v", r)
		}
	}()
	if len(data) == 0 {
		return nil, invalidf("empty payload")
	}
	if len(data) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: payload is %d bytes, over the message size limit of %d bytes (aggregator max-message-bytes); split the batch", ErrTooLarge, len(data), lim.MaxBytes)
	}
	if err := checkMetadata(data); err != nil {
		return nil, invalidf("arrow ipc metadata: %v", err)
	}
	mem := &cappedAllocator{mem: memory.DefaultAllocator, limit: lim.MaxDecodeBytes}
	rdr, err := ipc.NewReader(bytes.NewReader(data), ipc.WithAllocator(mem))
	if err != nil {
		return nil, invalidf("not an arrow ipc stream: %v", err)
	}
	defer rdr.Release()
	profileType, err := checkSchema(rdr.Schema())
	if err != nil {
		return nil, err
	}
	if profileType == ProfileCPU {
		profileType = ""
	}
	b = &Batch{Stacks: map[uint64][]string{}, Locations: map[uint64][]string{}}
	d := decoder{lim: lim, maxTS: lim.Now().Add(lim.MaxFuture).Unix(), b: b, dicts: map[arrow.ArrayData][]string{}, profileType: profileType, known: known}
	for rdr.Next() {
		if err := d.record(rdr.RecordBatch()); err != nil {
			return nil, err
		}
	}
	if err := rdr.Err(); err != nil {
		return nil, invalidf("read arrow ipc: %v", err)
	}
	for i, r := range b.Rows {
		if _, ok := b.Stacks[r.StackID]; !ok {
			return nil, invalidf("row %d: stack_id: %016x has no frames in this batch", i, r.StackID)
		}
	}
	return b, nil
}

// checkSchema checks the stream's schema and returns its profile type.
func checkSchema(s *arrow.Schema) (string, error) {
	md := s.Metadata()
	if v, _ := md.GetValue(MetaSchema); v != SchemaName {
		return "", invalidf("schema metadata %s is %q, want %q", MetaSchema, v, SchemaName)
	}
	profileType, typed := md.GetValue(MetaProfileType)
	switch v, _ := md.GetValue(MetaSchemaVersion); {
	case v == SchemaVersion && !typed:
		profileType = ProfileCPU
	case v == SchemaVersion:
		// A version 1 reader would ignore the key and store the values as CPU.
		return "", invalidf("schema metadata %s is set in a version %s batch: use version %s", MetaProfileType, SchemaVersion, SchemaVersionTyped)
	case v == SchemaVersionTyped && !typed:
		return "", invalidf("schema version %s without schema metadata %s", SchemaVersionTyped, MetaProfileType)
	case v == SchemaVersionTyped:
		if err := CheckProfileType(profileType); err != nil {
			return "", invalidf("schema metadata %s: %v", MetaProfileType, err)
		}
	default:
		return "", invalidf("unsupported schema version %q (this aggregator reads %q and %q)", v, SchemaVersion, SchemaVersionTyped)
	}
	for _, want := range Schema.Fields() {
		idx := s.FieldIndices(want.Name)
		if len(idx) == 0 && optionalColumns[want.Name] {
			continue
		}
		if len(idx) == 0 {
			return "", invalidf("missing column %q", want.Name)
		}
		if got := s.Field(idx[0]).Type; !arrow.TypeEqual(got, want.Type) {
			return "", invalidf("column %q: type %s, want %s", want.Name, got, want.Type)
		}
	}
	return profileType, nil
}

type decoder struct {
	lim   Limits
	maxTS int64
	b     *Batch
	// dicts holds each dictionary's entries copied once: an IPC stream may share
	// one dictionary across every record batch, and copying it per record batch
	// makes decode cost quadratic.
	dicts map[arrow.ArrayData][]string
	// profileType is set on every row; "" for CPU.
	profileType string
	known       *StackCache // nil: every stack is read and checked
}

func column[T arrow.Array](rec arrow.RecordBatch, name string) T {
	return rec.Column(rec.Schema().FieldIndices(name)[0]).(T)
}

// dictStrings returns the value of row i of a dictionary<int32, utf8> column.
func (d *decoder) dictStrings(a *array.Dictionary) func(i int) string {
	key := a.Data().Dictionary()
	dict := a.Dictionary().(*array.String)
	vals, ok := d.dicts[key]
	if !ok {
		vals = make([]string, dict.Len())
		d.dicts[key] = vals
	}
	// The schema fixes int32 indices; reading them directly skips
	// GetValueIndex's per-call type switch.
	idx := a.Indices().(*array.Int32)
	return func(i int) string {
		k := int(idx.Value(i))
		v := vals[k]
		if v == "" && dict.ValueLen(k) > 0 {
			// Copied on first use, once: rows outlive the IPC buffers, and
			// names of cached stacks are never used.
			v = strings.Clone(dict.Value(k))
			vals[k] = v
		}
		return v
	}
}

func (d *decoder) record(rec arrow.RecordBatch) error {
	n := int(rec.NumRows())
	base := len(d.b.Rows)
	if base+n > d.lim.MaxRows {
		return invalidf("more than %d rows", d.lim.MaxRows)
	}
	d.b.Rows = slices.Grow(d.b.Rows, n)
	for _, f := range Schema.Fields() {
		if f.Nullable { // optional columns are nullable
			continue
		}
		if c := rec.Column(rec.Schema().FieldIndices(f.Name)[0]); c.NullN() > 0 {
			for i := 0; i < n; i++ {
				if c.IsNull(i) {
					return invalidf("row %d: %s: null in a non-null column", base+i, f.Name)
				}
			}
		}
	}
	ts := column[*array.Timestamp](rec, ColTS)
	labels := make([]func(int) string, len(labelColumns))
	for i, name := range labelColumns {
		labels[i] = d.dictStrings(column[*array.Dictionary](rec, name))
	}
	pid := column[*array.Uint32](rec, ColPID)
	keys := column[*array.List](rec, ColLabelKeys)
	vals := column[*array.List](rec, ColLabelValues)
	keyStr, valStr := keys.ListValues().(*array.String), vals.ListValues().(*array.String)
	stackID := column[*array.Uint64](rec, ColStackID)
	frames := column[*array.List](rec, ColFrames)
	if len(d.b.Stacks) == 0 {
		// Each stack's first row carries its frames: sized once, no rehashing.
		d.b.Stacks = make(map[uint64][]string, n-frames.NullN())
	}
	frameDict := frames.ListValues().(*array.Dictionary)
	frameName := d.dictStrings(frameDict)
	var locs *locationColumn
	if idx := rec.Schema().FieldIndices(ColFrameLocations); len(idx) > 0 {
		l := rec.Column(idx[0]).(*array.List)
		dict := l.ListValues().(*array.Dictionary)
		locs = &locationColumn{list: l, dict: dict, value: d.dictStrings(dict)}
	}
	value := column[*array.Int64](rec, ColValue)
	period := column[*array.Int64](rec, ColPeriodNS)

	for i := 0; i < n; i++ {
		row := base + i
		r := Row{TS: int64(ts.Value(i)), StackID: stackID.Value(i), Value: value.Value(i), PeriodNS: period.Value(i), ProfileType: d.profileType}
		if r.TS < minTS || r.TS > d.maxTS {
			return invalidf("row %d: ts: %s is outside the accepted range", row, time.Unix(r.TS, 0).UTC().Format(time.RFC3339))
		}
		if r.Value < 0 {
			return invalidf("row %d: value: negative (%d)", row, r.Value)
		}
		if r.Value > d.lim.MaxValue {
			return invalidf("row %d: value: %d exceeds the limit %d", row, r.Value, d.lim.MaxValue)
		}
		if r.PeriodNS <= 0 || r.PeriodNS > d.lim.MaxPeriodNS {
			return invalidf("row %d: period_ns: %d is not in (0, %d]", row, r.PeriodNS, d.lim.MaxPeriodNS)
		}
		if r.Value > math.MaxInt64/r.PeriodNS {
			return invalidf("row %d: value × period_ns overflows int64", row)
		}
		l := &r.Labels
		l.Service, l.Version, l.Host, l.Namespace = labels[0](i), labels[1](i), labels[2](i), labels[3](i)
		l.Pod, l.Container, l.Comm = labels[4](i), labels[5](i), labels[6](i)
		l.PID = pid.Value(i)
		if l.Service == "" {
			return invalidf("row %d: service: empty", row)
		}
		ks, ke := keys.ValueOffsets(i)
		vs, ve := vals.ValueOffsets(i)
		if ke-ks != ve-vs {
			return invalidf("row %d: label_keys has %d entries, label_values %d", row, ke-ks, ve-vs)
		}
		if int(ke-ks) > d.lim.MaxLabels {
			return invalidf("row %d: label_keys: %d labels, limit %d", row, ke-ks, d.lim.MaxLabels)
		}
		for j := int64(0); j < ke-ks; j++ {
			k := keyStr.Value(int(ks + j))
			if k == "" {
				return invalidf("row %d: label_keys: empty label name", row)
			}
			l.Extra = append(l.Extra, Label{Key: string([]byte(k)), Value: string([]byte(valStr.Value(int(vs + j))))})
		}
		if !frames.IsNull(i) {
			if err := d.stack(row, r.StackID, frames, i, frameDict, frameName); err != nil {
				return err
			}
		}
		if locs != nil && !locs.list.IsNull(i) {
			if err := d.locations(row, r.StackID, frames, i, locs); err != nil {
				return err
			}
		}
		d.b.Rows = append(d.b.Rows, r)
	}
	return nil
}

func (d *decoder) stack(row int, id uint64, frames *array.List, i int, dict *array.Dictionary, name func(int) string) error {
	start, end := frames.ValueOffsets(i)
	if end == start {
		return invalidf("row %d: frames: empty stack", row)
	}
	if int(end-start) > d.lim.MaxFrames {
		return invalidf("row %d: frames: %d frames, limit %d", row, end-start, d.lim.MaxFrames)
	}
	if _, ok := d.b.Stacks[id]; ok {
		return nil // repeated frames for a known stack: allowed, checked once
	}
	if d.known != nil {
		if fs, ok := d.known.Get(id); ok && len(fs) == int(end-start) {
			d.b.Stacks[id] = fs
			return nil
		}
	}
	fs := make([]string, 0, end-start)
	for j := start; j < end; j++ {
		if dict.IsNull(int(j)) {
			return invalidf("row %d: frames: null frame name at depth %d", row, j-start)
		}
		fs = append(fs, name(int(j)))
	}
	if want := StackID(fs); want != id {
		return invalidf("row %d: stack_id: %016x does not match its frames (want %016x)", row, id, want)
	}
	for k, f := range fs {
		if len(f) > d.lim.MaxFrameBytes {
			fs[k] = ShortenName(f, d.lim.MaxFrameBytes)
			d.b.ShortenedNames++
		}
	}
	d.b.Stacks[id] = fs
	if d.known != nil {
		d.known.Put(id, fs)
	}
	return nil
}

// locationColumn is a batch's frame_locations column.
type locationColumn struct {
	list  *array.List
	dict  *array.Dictionary
	value func(int) string
}

// locations checks row's frame_locations, which may be set only on a row with
// frames, one per frame, and keeps them for a stack that has none yet.
func (d *decoder) locations(row int, id uint64, frames *array.List, i int, c *locationColumn) error {
	if frames.IsNull(i) {
		return invalidf("row %d: frame_locations: set on a row without frames", row)
	}
	start, end := c.list.ValueOffsets(i)
	if fs, fe := frames.ValueOffsets(i); end-start != fe-fs {
		return invalidf("row %d: frame_locations: %d entries for %d frames", row, end-start, fe-fs)
	}
	locs := make([]string, 0, end-start)
	for j := start; j < end; j++ {
		loc := ""
		if !c.dict.IsNull(int(j)) {
			loc = c.value(int(j))
		}
		if len(loc) > d.lim.MaxLocationBytes {
			return invalidf("row %d: frame_locations: %d bytes at depth %d, limit %d", row, len(loc), j-start, d.lim.MaxLocationBytes)
		}
		if _, _, ok := model.SplitLocation(loc); loc != "" && !ok {
			return invalidf("row %d: frame_locations: %q at depth %d is not FILE:LINE", row, loc, j-start)
		}
		locs = append(locs, loc)
	}
	if _, ok := d.b.Locations[id]; !ok {
		d.b.Locations[id] = locs
	}
	return nil
}
