package otlptest

import (
	"fmt"

	"github.com/google/pprof/profile"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pprofile"
)

// FromPprof converts p into OTLP profiles: one resource with the resource
// attributes, one scope, and one OTLP profile per pprof sample type (OTLP
// profiles have one sample type each), sharing one dictionary. Every sample
// carries sampleAttrs as attribute table references.
func FromPprof(p *profile.Profile, resource, sampleAttrs map[string]any) (pprofile.Profiles, error) {
	pd := pprofile.NewProfiles()
	b := &builder{dict: pd.Dictionary(), locs: map[uint64]int32{}}
	b.zeroEntries()
	rp := pd.ResourceProfiles().AppendEmpty()
	if err := rp.Resource().Attributes().FromRaw(resource); err != nil {
		return pprofile.Profiles{}, fmt.Errorf("resource attributes: %w", err)
	}
	sp := rp.ScopeProfiles().AppendEmpty()
	sp.Scope().SetName("fleetprof/otlptest")
	attrs, err := b.attributes(sampleAttrs)
	if err != nil {
		return pprofile.Profiles{}, err
	}
	for vi, st := range p.SampleType {
		op := sp.Profiles().AppendEmpty()
		op.SampleType().SetTypeStrindex(b.str(st.Type))
		op.SampleType().SetUnitStrindex(b.str(st.Unit))
		if p.PeriodType != nil {
			op.PeriodType().SetTypeStrindex(b.str(p.PeriodType.Type))
			op.PeriodType().SetUnitStrindex(b.str(p.PeriodType.Unit))
		}
		op.SetPeriod(p.Period)
		op.SetTime(pcommon.Timestamp(p.TimeNanos))
		op.SetDurationNano(uint64(p.DurationNanos))
		for _, s := range p.Sample {
			stack, err := b.stack(s.Location)
			if err != nil {
				return pprofile.Profiles{}, err
			}
			sm := op.Samples().AppendEmpty()
			sm.SetStackIndex(stack)
			sm.Values().Append(s.Value[vi])
			sm.AttributeIndices().FromRaw(attrs)
		}
	}
	return pd, nil
}

type builder struct {
	dict pprofile.ProfilesDictionary
	locs map[uint64]int32 // pprof location id → location table index
}

// zeroEntries fills index 0 of every table with the empty value, as OTLP
// requires ("0 is unset").
func (b *builder) zeroEntries() {
	b.dict.StringTable().Append("")
	b.dict.MappingTable().AppendEmpty()
	b.dict.LocationTable().AppendEmpty()
	b.dict.FunctionTable().AppendEmpty()
	b.dict.StackTable().AppendEmpty()
	b.dict.AttributeTable().AppendEmpty()
	b.dict.LinkTable().AppendEmpty()
}

func (b *builder) str(s string) int32 {
	i, err := pprofile.SetString(b.dict.StringTable(), s)
	if err != nil {
		panic(err) // only past 2^31 strings
	}
	return i
}

func (b *builder) attributes(m map[string]any) ([]int32, error) {
	var out []int32
	for k, v := range m {
		kv := pprofile.NewKeyValueAndUnit()
		kv.SetKeyStrindex(b.str(k))
		if err := kv.Value().FromRaw(v); err != nil {
			return nil, fmt.Errorf("attribute %s: %w", k, err)
		}
		i, err := pprofile.SetAttribute(b.dict.AttributeTable(), kv)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", k, err)
		}
		out = append(out, i)
	}
	return out, nil
}

func (b *builder) stack(locs []*profile.Location) (int32, error) {
	st := pprofile.NewStack()
	for _, l := range locs {
		i, err := b.location(l)
		if err != nil {
			return 0, err
		}
		st.LocationIndices().Append(i)
	}
	return pprofile.SetStack(b.dict.StackTable(), st)
}

func (b *builder) location(l *profile.Location) (int32, error) {
	if i, ok := b.locs[l.ID]; ok {
		return i, nil
	}
	loc := pprofile.NewLocation()
	loc.SetAddress(l.Address)
	if m := l.Mapping; m != nil {
		om := pprofile.NewMapping()
		om.SetMemoryStart(m.Start)
		om.SetMemoryLimit(m.Limit)
		om.SetFileOffset(m.Offset)
		om.SetFilenameStrindex(b.str(m.File))
		mi, err := pprofile.SetMapping(b.dict.MappingTable(), om)
		if err != nil {
			return 0, err
		}
		loc.SetMappingIndex(mi)
	}
	for _, ln := range l.Line {
		fn := pprofile.NewFunction()
		if f := ln.Function; f != nil {
			fn.SetNameStrindex(b.str(f.Name))
			fn.SetSystemNameStrindex(b.str(f.SystemName))
			fn.SetFilenameStrindex(b.str(f.Filename))
			fn.SetStartLine(f.StartLine)
		}
		fi, err := pprofile.SetFunction(b.dict.FunctionTable(), fn)
		if err != nil {
			return 0, err
		}
		ol := loc.Lines().AppendEmpty()
		ol.SetFunctionIndex(fi)
		ol.SetLine(ln.Line)
		ol.SetColumn(ln.Column)
	}
	i, err := pprofile.SetLocation(b.dict.LocationTable(), loc)
	if err != nil {
		return 0, err
	}
	b.locs[l.ID] = i
	return i, nil
}
