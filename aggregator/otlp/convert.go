package otlp

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/pprofconv"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
	"github.com/google/pprof/profile"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pprofile"
)

// ErrMalformed marks a request whose profiles cannot be read (a dictionary
// index out of range, values that do not match timestamps, a bad pid): the
// whole request is rejected, nothing of it is stored.
var ErrMalformed = errors.New("malformed OTLP profiles")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// FallbackService is the service of samples with neither service.name nor
// process.executable.name: the OpenTelemetry semantic conventions' default.
const FallbackService = "unknown_service"

// DefaultPeriodNS is the sampling period assumed for a cpu/nanoseconds profile
// that states none (100 Hz, the Go runtime's rate), needed to turn nanoseconds
// into the sample counts fleetprof stores.
const DefaultPeriodNS = int64(10 * time.Millisecond)

// maxPeriodNS bounds a stated period: longer ones are not a sampling period
// (the sample batch's own limit is one hour).
const maxPeriodNS = int64(time.Hour)

// AttributeLabels maps OpenTelemetry attribute keys onto fleetprof labels: the
// sample batch's fixed columns, or an extra label. Attributes not listed are
// not stored (thread ids, executable paths and SDK details would multiply the
// series without helping a query).
var AttributeLabels = map[string]string{
	"service.name":            samplebatch.ColService,
	"service.version":         samplebatch.ColVersion,
	"host.name":               samplebatch.ColHost,
	"k8s.namespace.name":      samplebatch.ColNamespace,
	"k8s.pod.name":            samplebatch.ColPod,
	"container.id":            samplebatch.ColContainer,
	"process.executable.name": samplebatch.ColComm,
	"process.pid":             samplebatch.ColPID,
	"thread.name":             "thread",
}

// Options say how OTLP profiles become sample batch rows.
type Options struct {
	// Bucket is the time bucket rows are aligned to; default one minute.
	Bucket time.Duration
	// Now stamps profiles without a time; default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Bucket <= 0 {
		o.Bucket = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Result is a converted request.
type Result struct {
	// Samples are the rows of the CPU profiles, ready for the ingest path.
	Samples []samplebatch.Sample
	// Profiles counts the profiles in the request.
	Profiles int
	// Rejected says, per profile not stored, why (its sample type named).
	Rejected []string
}

// Convert turns OTLP profiles into sample batch rows, one per (time bucket,
// labels, stack). Profiles of a sample type other than cpu/nanoseconds or
// samples/count (with a CPU period) are left out and listed in Rejected; a
// request that cannot be read fails whole with ErrMalformed.
func Convert(pd pprofile.Profiles, opt Options) (Result, error) {
	opt = opt.withDefaults()
	var res Result
	c := &converter{opt: opt, dict: pd.Dictionary(), strs: pd.Dictionary().StringTable()}
	for ri, rp := range pd.ResourceProfiles().All() {
		resAttrs := mapAttrs(rp.Resource().Attributes(), nil)
		for si, sp := range rp.ScopeProfiles().All() {
			scopeAttrs := mapAttrs(sp.Scope().Attributes(), resAttrs)
			counted, err := c.countedSpans(sp.Profiles())
			if err != nil {
				return Result{}, fmt.Errorf("resource %d scope %d: %w", ri, si, err)
			}
			for pi, p := range sp.Profiles().All() {
				res.Profiles++
				where := fmt.Sprintf("resource %d scope %d profile %d", ri, si, pi)
				if kind, _, _, _, _ := c.sampleType(p); kind == cpuNanos && counted[spanOf(p)] {
					continue // the same samples as a samples/count profile of the scope
				}
				samples, rejected, err := c.profile(p, scopeAttrs)
				if err != nil {
					return Result{}, fmt.Errorf("%s: %w", where, err)
				}
				if rejected != "" {
					res.Rejected = append(res.Rejected, where+": "+rejected)
					continue
				}
				res.Samples = append(res.Samples, samples...)
			}
		}
	}
	return res, nil
}

// BatchID is the idempotence key of a request: OTLP has no batch id, so it is
// a hash of the request's protobuf encoding (as re-encoded here, so the same
// profiles sent over gRPC, OTLP/HTTP protobuf or JSON get the same id). An
// exporter's retry of a request is therefore stored once; two exports are only
// taken for one when every byte, times and sample timestamps included, is equal.
// BatchID marks pd read-only: encoding then works on a copy, because it
// rewrites attribute strings into the dictionary.
func BatchID(pd pprofile.Profiles) (string, error) {
	pd.MarkReadOnly()
	data, err := (&pprofile.ProtoMarshaler{}).MarshalProfiles(pd)
	if err != nil {
		return "", fmt.Errorf("encode request for its batch id: %w", err)
	}
	sum := sha256.Sum256(data)
	return "otlp-" + hex.EncodeToString(sum[:16]), nil
}

// converter turns one request's profiles into pprof profiles (sharing its
// dictionary) and those into rows with pprofconv.Import, so frame naming,
// inlining, Go generic names, stack truncation and value scaling are the pprof
// import's.
type converter struct {
	opt    Options
	dict   pprofile.ProfilesDictionary
	strs   pcommon.StringSlice
	stacks map[int32][]*profile.Location
	locs   map[int32]*profile.Location
	funcs  map[int32]*profile.Function
	maps   map[int32]*profile.Mapping
}

func (c *converter) str(i int32) (string, error) {
	if i < 0 || int(i) >= c.strs.Len() {
		return "", malformed("string index %d out of range (string table has %d)", i, c.strs.Len())
	}
	return c.strs.At(int(i)), nil
}

// cpuKind tells how a profile's values are CPU samples.
type cpuKind int

const (
	notCPU cpuKind = iota
	cpuNanos
	sampleCount
)

// sampleType checks the profile's sample type and returns its period in ns.
func (c *converter) sampleType(p pprofile.Profile) (kind cpuKind, typ, unit string, periodNS int64, err error) {
	if typ, err = c.str(p.SampleType().TypeStrindex()); err != nil {
		return
	}
	if unit, err = c.str(p.SampleType().UnitStrindex()); err != nil {
		return
	}
	ptyp, err := c.str(p.PeriodType().TypeStrindex())
	if err != nil {
		return
	}
	punit, err := c.str(p.PeriodType().UnitStrindex())
	if err != nil {
		return
	}
	periodNS = DefaultPeriodNS
	if punit == "nanoseconds" && p.Period() > 0 && p.Period() <= maxPeriodNS {
		periodNS = p.Period()
	}
	switch {
	case typ == "cpu" && unit == "nanoseconds":
		kind = cpuNanos
	case typ == "samples" && unit == "count" && (ptyp == "" || ptyp == "cpu"):
		// A count of samples is CPU time only when they were taken on a CPU
		// clock: heap profiles count samples too, with a bytes period.
		kind = sampleCount
	}
	return
}

// span is a profile's time range.
type span struct{ start, duration uint64 }

func spanOf(p pprofile.Profile) span { return span{uint64(p.Time()), p.DurationNano()} }

// countedSpans returns the time ranges of a scope's samples/count profiles. A
// pprof CPU profile has two sample types (samples/count and cpu/nanoseconds)
// and becomes two OTLP profiles of one type each over the same time range; the
// count is stored and the nanoseconds profile, the same samples, is skipped
// (as pprofconv.Import prefers the count).
func (c *converter) countedSpans(ps pprofile.ProfilesSlice) (map[span]bool, error) {
	out := map[span]bool{}
	for pi, p := range ps.All() {
		kind, _, _, _, err := c.sampleType(p)
		if err != nil {
			return nil, fmt.Errorf("profile %d: %w", pi, err)
		}
		if kind == sampleCount {
			out[spanOf(p)] = true
		}
	}
	return out, nil
}

// profile converts one profile; rejected names why it is not stored.
func (c *converter) profile(p pprofile.Profile, inherited map[string]string) (samples []samplebatch.Sample, rejected string, err error) {
	kind, typ, unit, periodNS, err := c.sampleType(p)
	if err != nil {
		return nil, "", err
	}
	if kind == notCPU {
		ptyp, _ := c.str(p.PeriodType().TypeStrindex())
		punit, _ := c.str(p.PeriodType().UnitStrindex())
		return nil, fmt.Sprintf("%v: sample type %s/%s, period type %s/%s (stored: cpu/nanoseconds, or samples/count with a cpu period)",
			pprofconv.ErrNotCPU, typ, unit, ptyp, punit), nil
	}
	attrs, err := c.indexedAttrs(p.AttributeIndices(), inherited)
	if err != nil {
		return nil, "", fmt.Errorf("attributes: %w", err)
	}
	start := int64(p.Time())
	if start <= 0 {
		start = c.opt.Now().UnixNano()
	}
	g := &grouper{c: c, typ: typ, unit: unit, periodNS: periodNS, index: map[string]int{}}
	// Sample attributes repeat across samples: their labels are computed once
	// per distinct index list.
	labelCache := map[string]labelSet{}
	base, err := newLabelSet(attrs)
	if err != nil {
		return nil, "", err
	}
	for i, s := range p.Samples().All() {
		ls := base
		if s.AttributeIndices().Len() > 0 {
			key := fmt.Sprint(s.AttributeIndices().AsRaw())
			var ok bool
			if ls, ok = labelCache[key]; !ok {
				sa, err := c.indexedAttrs(s.AttributeIndices(), attrs)
				if err != nil {
					return nil, "", fmt.Errorf("sample %d attributes: %w", i, err)
				}
				if ls, err = newLabelSet(sa); err != nil {
					return nil, "", fmt.Errorf("sample %d: %w", i, err)
				}
				labelCache[key] = ls
			}
		}
		locs, err := c.stack(s.StackIndex())
		if err != nil {
			return nil, "", fmt.Errorf("sample %d: %w", i, err)
		}
		if err := g.add(ls, locs, s, start, kind, i); err != nil {
			return nil, "", err
		}
	}
	for _, grp := range g.groups {
		rows, err := pprofconv.Import(grp.prof, pprofconv.ImportOptions{Labels: grp.labels.labels, Bucket: c.opt.Bucket, Now: c.opt.Now})
		if errors.Is(err, pprofconv.ErrNoSamples) {
			continue // only zero values or empty stacks: nothing to store
		}
		if err != nil {
			return nil, "", err
		}
		samples = append(samples, rows...)
	}
	return samples, "", nil
}

// grouper collects a profile's samples into one pprof profile per (labels,
// time bucket), the unit pprofconv.Import turns into rows.
type grouper struct {
	c         *converter
	typ, unit string
	periodNS  int64
	index     map[string]int
	groups    []group
}

type group struct {
	labels labelSet
	prof   *profile.Profile
}

func (g *grouper) add(ls labelSet, locs []*profile.Location, s pprofile.Sample, start int64, kind cpuKind, i int) error {
	vals, times := s.Values(), s.TimestampsUnixNano()
	// One event's value: a timestamp without a value is one sample.
	one := int64(1)
	if kind == cpuNanos {
		one = g.periodNS
	}
	switch {
	case times.Len() == 0:
		var v int64
		for _, x := range vals.All() {
			v += x
		}
		g.put(ls, locs, start, v)
	case vals.Len() == 0:
		for _, t := range times.All() {
			g.put(ls, locs, int64(t), one)
		}
	case vals.Len() == times.Len():
		for j, t := range times.All() {
			g.put(ls, locs, int64(t), vals.At(j))
		}
	default:
		return malformed("sample %d: %d values but %d timestamps", i, vals.Len(), times.Len())
	}
	return nil
}

func (g *grouper) put(ls labelSet, locs []*profile.Location, ts, v int64) {
	if v <= 0 {
		return
	}
	bucket := time.Unix(0, ts).Truncate(g.c.opt.Bucket).UnixNano()
	key := fmt.Sprintf("%s\x00%d", ls.key, bucket)
	i, ok := g.index[key]
	if !ok {
		i = len(g.groups)
		g.index[key] = i
		g.groups = append(g.groups, group{labels: ls, prof: &profile.Profile{
			SampleType: []*profile.ValueType{{Type: g.typ, Unit: g.unit}},
			PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
			Period:     g.periodNS,
			TimeNanos:  bucket,
		}})
	}
	p := g.groups[i].prof
	p.Sample = append(p.Sample, &profile.Sample{Location: locs, Value: []int64{v}})
}

// stack resolves a stack (leaf first, as in pprof) to pprof locations.
func (c *converter) stack(idx int32) ([]*profile.Location, error) {
	if locs, ok := c.stacks[idx]; ok {
		return locs, nil
	}
	st := c.dict.StackTable()
	if idx < 0 || int(idx) >= st.Len() {
		return nil, malformed("stack index %d out of range (stack table has %d)", idx, st.Len())
	}
	li := st.At(int(idx)).LocationIndices()
	locs := make([]*profile.Location, 0, li.Len())
	for _, l := range li.All() {
		loc, err := c.location(l)
		if err != nil {
			return nil, err
		}
		locs = append(locs, loc)
	}
	if c.stacks == nil {
		c.stacks = map[int32][]*profile.Location{}
	}
	c.stacks[idx] = locs
	return locs, nil
}

func (c *converter) location(idx int32) (*profile.Location, error) {
	if loc, ok := c.locs[idx]; ok {
		return loc, nil
	}
	lt := c.dict.LocationTable()
	if idx < 0 || int(idx) >= lt.Len() {
		return nil, malformed("location index %d out of range (location table has %d)", idx, lt.Len())
	}
	l := lt.At(int(idx))
	loc := &profile.Location{ID: uint64(idx) + 1, Address: l.Address()}
	// Index 0 is "no mapping" even when a sender leaves the table empty.
	if mi := l.MappingIndex(); mi != 0 || c.dict.MappingTable().Len() > 0 {
		m, err := c.mapping(mi)
		if err != nil {
			return nil, err
		}
		loc.Mapping = m
	}
	for _, ln := range l.Lines().All() {
		fn, err := c.function(ln.FunctionIndex())
		if err != nil {
			return nil, err
		}
		loc.Line = append(loc.Line, profile.Line{Function: fn, Line: ln.Line(), Column: ln.Column()})
	}
	if c.locs == nil {
		c.locs = map[int32]*profile.Location{}
	}
	c.locs[idx] = loc
	return loc, nil
}

func (c *converter) function(idx int32) (*profile.Function, error) {
	if fn, ok := c.funcs[idx]; ok {
		return fn, nil
	}
	ft := c.dict.FunctionTable()
	if idx < 0 || int(idx) >= ft.Len() {
		return nil, malformed("function index %d out of range (function table has %d)", idx, ft.Len())
	}
	f := ft.At(int(idx))
	name, err := c.str(f.NameStrindex())
	if err != nil {
		return nil, err
	}
	sys, err := c.str(f.SystemNameStrindex())
	if err != nil {
		return nil, err
	}
	file, err := c.str(f.FilenameStrindex())
	if err != nil {
		return nil, err
	}
	fn := &profile.Function{ID: uint64(idx) + 1, Name: name, SystemName: sys, Filename: file, StartLine: f.StartLine()}
	if c.funcs == nil {
		c.funcs = map[int32]*profile.Function{}
	}
	c.funcs[idx] = fn
	return fn, nil
}

func (c *converter) mapping(idx int32) (*profile.Mapping, error) {
	if m, ok := c.maps[idx]; ok {
		return m, nil
	}
	mt := c.dict.MappingTable()
	if idx < 0 || int(idx) >= mt.Len() {
		return nil, malformed("mapping index %d out of range (mapping table has %d)", idx, mt.Len())
	}
	m := mt.At(int(idx))
	file, err := c.str(m.FilenameStrindex())
	if err != nil {
		return nil, err
	}
	pm := &profile.Mapping{ID: uint64(idx) + 1, Start: m.MemoryStart(), Limit: m.MemoryLimit(), Offset: m.FileOffset(), File: file}
	if c.maps == nil {
		c.maps = map[int32]*profile.Mapping{}
	}
	c.maps[idx] = pm
	return pm, nil
}

// mapAttrs layers a resource's or scope's attributes over inherited, keeping
// the ones AttributeLabels names, under their fleetprof label.
func mapAttrs(m pcommon.Map, inherited map[string]string) map[string]string {
	out := make(map[string]string, len(inherited)+m.Len())
	for k, v := range inherited {
		out[k] = v
	}
	for k, v := range m.All() {
		if label, ok := AttributeLabels[k]; ok {
			out[label] = v.AsString()
		}
	}
	return out
}

// indexedAttrs layers attributes given as attribute table indices (a profile's
// or a sample's) over inherited.
func (c *converter) indexedAttrs(idx pcommon.Int32Slice, inherited map[string]string) (map[string]string, error) {
	if idx.Len() == 0 {
		return inherited, nil
	}
	at := c.dict.AttributeTable()
	out := make(map[string]string, len(inherited)+idx.Len())
	for k, v := range inherited {
		out[k] = v
	}
	for _, i := range idx.All() {
		if i < 0 || int(i) >= at.Len() {
			return nil, malformed("attribute index %d out of range (attribute table has %d)", i, at.Len())
		}
		kv := at.At(int(i))
		key, err := c.str(kv.KeyStrindex())
		if err != nil {
			return nil, err
		}
		if label, ok := AttributeLabels[key]; ok {
			out[label] = kv.Value().AsString()
		}
	}
	return out, nil
}

// labelSet is a row's labels and a canonical key grouping rows by them.
type labelSet struct {
	labels samplebatch.Labels
	key    string
}

func newLabelSet(attrs map[string]string) (labelSet, error) {
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ls samplebatch.Labels
	var b strings.Builder
	for _, k := range keys {
		if err := ls.Set(k, attrs[k]); err != nil {
			return labelSet{}, malformed("attribute %s: %v", attrKey(k), err)
		}
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(attrs[k])
		b.WriteByte(0)
	}
	if ls.Service == "" {
		ls.Service = ls.Comm
	}
	if ls.Service == "" {
		ls.Service = FallbackService
	}
	return labelSet{labels: ls, key: b.String()}, nil
}

// attrKey names the OpenTelemetry attribute a label comes from, for errors.
func attrKey(label string) string {
	for k, l := range AttributeLabels {
		if l == label {
			return k
		}
	}
	return label
}
