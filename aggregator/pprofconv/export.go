package pprofconv

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/model"
	"github.com/google/pprof/profile"
)

// defaultPeriodNS is used when the store knows no period (100 Hz, Go's default).
const defaultPeriodNS = 10_000_000

// ToPprof builds a CPU profile from stored stacks: sample types samples/count and
// cpu/nanoseconds (count × period), one function and one location per frame name and
// frame location (model.StackCount.Locations: the function's filename and start line).
// A profile of another type (p.ProfileType TYPE/UNIT) gets that one sample type.
// start and dur describe the selection's time range.
func ToPprof(p *model.Profile, start time.Time, dur time.Duration) *profile.Profile {
	period := p.PeriodNS
	if period <= 0 {
		period = defaultPeriodNS
	}
	out := &profile.Profile{
		SampleType: []*profile.ValueType{
			{Type: "samples", Unit: "count"},
			{Type: "cpu", Unit: "nanoseconds"},
		},
		DefaultSampleType: "cpu",
		PeriodType:        &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:            period,
		TimeNanos:         start.UnixNano(),
		DurationNanos:     int64(dur),
	}
	values := func(v int64) []int64 { return []int64{v, v * period} }
	if typ, unit, ok := strings.Cut(p.ProfileType, "/"); ok {
		// Another profile type (heap, goroutine, ...): its one value, in its unit.
		out.SampleType = []*profile.ValueType{{Type: typ, Unit: unit}}
		out.DefaultSampleType, out.PeriodType, out.Period = typ, nil, 0
		values = func(v int64) []int64 { return []int64{v} }
	}
	type frame struct{ name, loc string }
	locs := map[frame]*profile.Location{}
	location := func(f frame) *profile.Location {
		if l, ok := locs[f]; ok {
			return l
		}
		id := uint64(len(locs) + 1)
		fn := &profile.Function{ID: id, Name: f.name, SystemName: f.name}
		// A stored location is the function's file and first line; the line
		// running is not known, so the frame's line is the first one too.
		if file, line, ok := model.SplitLocation(f.loc); ok {
			fn.Filename, fn.StartLine = file, int64(line)
		}
		l := &profile.Location{ID: id, Line: []profile.Line{{Function: fn, Line: fn.StartLine}}}
		out.Function = append(out.Function, fn)
		out.Location = append(out.Location, l)
		locs[f] = l
		return l
	}
	for _, s := range p.Stacks {
		if s.Value <= 0 || len(s.Frames) == 0 {
			continue
		}
		ls := make([]*profile.Location, len(s.Frames))
		for i, name := range s.Frames {
			f := frame{name: name}
			if i < len(s.Locations) {
				f.loc = s.Locations[i]
			}
			// pprof stacks are leaf first.
			ls[len(s.Frames)-1-i] = location(f)
		}
		out.Sample = append(out.Sample, &profile.Sample{Location: ls, Value: values(s.Value)})
	}
	return out
}

// WritePprof writes p as a gzipped profile.proto.
func WritePprof(w io.Writer, p *model.Profile, start time.Time, dur time.Duration) error {
	if err := ToPprof(p, start, dur).Write(w); err != nil {
		return fmt.Errorf("write pprof: %w", err)
	}
	return nil
}

// WriteFolded writes one "root;...;leaf count" line per stack, sorted by stack, with
// identical stacks merged. Semicolons inside names become colons so lines stay parseable.
func WriteFolded(w io.Writer, p *model.Profile) error {
	counts := map[string]int64{}
	for _, s := range p.Stacks {
		if s.Value <= 0 || len(s.Frames) == 0 {
			continue
		}
		names := make([]string, len(s.Frames))
		for i, f := range s.Frames {
			names[i] = strings.NewReplacer(";", ":", "\n", " ").Replace(f)
		}
		counts[strings.Join(names, ";")] += s.Value
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	bw := bufio.NewWriter(w)
	for _, k := range keys {
		fmt.Fprintf(bw, "%s %d\n", k, counts[k])
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write folded: %w", err)
	}
	return nil
}
