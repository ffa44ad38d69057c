package pprofconv

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/internal/goname"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
	"github.com/google/pprof/profile"
)

// Limits mirror samplebatch's defaults so an imported profile always decodes.
const (
	maxFrames     = 1024
	maxFrameBytes = 1024
	maxLabels     = 64
	// truncatedFrame replaces the root-most frames of a stack deeper than maxFrames.
	truncatedFrame = "[truncated]"
)

// ImportOptions say how pprof samples become sample batch rows.
type ImportOptions struct {
	// Labels are set on every row (Service is required); the profile's per-sample
	// string labels are appended as extra labels.
	Labels samplebatch.Labels
	// Bucket is the time bucket rows are aligned to; default one minute.
	Bucket time.Duration
	// Now stamps profiles without TimeNanos; default time.Now.
	Now func() time.Time
	// SampleType picks the profile's sample type to import, as TYPE/UNIT (e.g.
	// alloc_space/bytes). Empty: the CPU sample type, and a profile without one is
	// refused with ErrNotCPU. cpu/nanoseconds and samples/count are imported as CPU
	// samples; any other type is stored under its own profile type (ProfileType)
	// with values in its unit.
	SampleType string
}

// ProfileType is the profile type rows imported with o are stored under
// (samplebatch.ProfileCPU or o.SampleType).
func (o ImportOptions) ProfileType() string {
	if o.SampleType == "" || o.SampleType == cpuType || o.SampleType == countType {
		return samplebatch.ProfileCPU
	}
	return o.SampleType
}

// The sample types imported as CPU samples.
const (
	cpuType   = "cpu/nanoseconds"
	countType = "samples/count"
)

func (o ImportOptions) withDefaults() ImportOptions {
	if o.Bucket <= 0 {
		o.Bucket = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// ErrNotCPU is returned for a profile without a CPU sample type (heap, goroutine,
// mutex): its values are bytes or counts of something else, and stored as CPU
// samples they would be wrong.
var ErrNotCPU = errors.New("not a CPU profile")

// ErrSampleType is returned when ImportOptions.SampleType is not one of the
// profile's sample types or not a valid profile type.
var ErrSampleType = errors.New("sample type not in profile")

// ErrNoSamples is returned for a profile that holds no positive sample values.
var ErrNoSamples = errors.New("profile has no samples")

// Parse reads a pprof profile (gzipped or not, protobuf or legacy text) and imports it.
func Parse(data []byte, opt ImportOptions) ([]samplebatch.Sample, error) {
	p, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parse pprof: %w", err)
	}
	return Import(p, opt)
}

// Import converts a pprof profile to rows, one per distinct (stack, labels), with
// values in samples. The sample count is taken from samples/count, or derived from
// cpu/nanoseconds and the period; other profiles (heap, goroutine, mutex) are
// refused with ErrNotCPU naming their sample types unless opt.SampleType names the
// one to import (then values are in its unit, stored as opt.ProfileType()).
func Import(p *profile.Profile, opt ImportOptions) ([]samplebatch.Sample, error) {
	opt = opt.withDefaults()
	if opt.Labels.Service == "" {
		return nil, errors.New("import pprof: service label is required")
	}
	if len(p.SampleType) == 0 {
		return nil, errors.New("import pprof: profile has no sample types")
	}
	types := make([]string, len(p.SampleType))
	for i, st := range p.SampleType {
		types[i] = st.Type + "/" + st.Unit
	}
	idx, divisor := valueIndex(p, opt.SampleType)
	if idx < 0 && opt.SampleType != "" {
		return nil, fmt.Errorf("import pprof: %w: %s is not one of the profile's sample types %s", ErrSampleType, opt.SampleType, strings.Join(types, ", "))
	}
	if idx < 0 {
		return nil, fmt.Errorf("import pprof: %w: sample types %s (want %s or %s)", ErrNotCPU, strings.Join(types, ", "), cpuType, countType)
	}
	// The batch needs a period: CPU rows get the profile's (else the default),
	// other types 1, their values being bytes or counts rather than samples.
	if err := samplebatch.CheckProfileType(opt.ProfileType()); err != nil {
		return nil, fmt.Errorf("import pprof: %w: %w", ErrSampleType, err)
	}
	periodNS := int64(1)
	if opt.ProfileType() == samplebatch.ProfileCPU {
		periodNS = defaultPeriodNS
		if p.PeriodType != nil && p.PeriodType.Unit == "nanoseconds" && p.Period > 0 && p.Period <= int64(time.Hour) {
			periodNS = p.Period
		}
	}
	ts := p.TimeNanos
	if ts <= 0 {
		ts = opt.Now().UnixNano()
	}
	bucket := time.Unix(0, ts).Truncate(opt.Bucket).Unix()

	type key struct{ stack, labels string }
	rows := map[key]*samplebatch.Sample{}
	var order []key
	for i, s := range p.Sample {
		if idx >= len(s.Value) {
			return nil, fmt.Errorf("import pprof: sample %d has %d values, want %d", i, len(s.Value), len(p.SampleType))
		}
		v := s.Value[idx]
		if divisor > 1 {
			v = (v + divisor/2) / divisor
		}
		if v <= 0 {
			continue
		}
		frames := sampleFrames(s)
		if len(frames) == 0 {
			continue
		}
		extra := sampleLabels(s, opt.Labels.Extra)
		k := key{strings.Join(frames, "\n"), labelKey(extra)}
		if r, ok := rows[k]; ok {
			r.Value += v
			continue
		}
		labels := opt.Labels
		labels.Extra = extra
		rows[k] = &samplebatch.Sample{TS: bucket, Labels: labels, Frames: frames, Value: v, PeriodNS: periodNS}
		order = append(order, k)
	}
	if len(order) == 0 {
		return nil, ErrNoSamples
	}
	out := make([]samplebatch.Sample, 0, len(order))
	for _, k := range order {
		out = append(out, *rows[k])
	}
	return out, nil
}

// valueIndex picks the sample value to import and what to divide it by to get a
// sample count; -1 when the profile has no CPU sample type, or not sampleType.
func valueIndex(p *profile.Profile, sampleType string) (idx int, divisor int64) {
	cpu, count := -1, -1
	for i, st := range p.SampleType {
		switch t := st.Type + "/" + st.Unit; {
		case sampleType != "" && sampleType != cpuType && sampleType != countType:
			if t == sampleType {
				return i, 1
			}
		case t == cpuType && sampleType != countType:
			cpu = i
		case t == countType && sampleType != cpuType:
			count = i
		}
	}
	switch {
	case count >= 0 && cpu >= 0:
		return count, 1
	case cpu >= 0 && p.Period > 0 && p.PeriodType != nil && p.PeriodType.Unit == "nanoseconds":
		return cpu, p.Period
	case cpu >= 0:
		return cpu, 1
	case count >= 0:
		return count, 1
	default:
		return -1, 0
	}
}

// sampleFrames returns the stack root first, with inlined functions expanded.
func sampleFrames(s *profile.Sample) []string {
	var frames []string
	for i := len(s.Location) - 1; i >= 0; i-- {
		loc := s.Location[i]
		if loc == nil {
			continue
		}
		if len(loc.Line) == 0 {
			frames = append(frames, frameName("", loc))
			continue
		}
		// Line[0] is the innermost inlined call: walk backwards for root first.
		for j := len(loc.Line) - 1; j >= 0; j-- {
			name := ""
			if f := loc.Line[j].Function; f != nil {
				name = f.Name
				if name == "" {
					name = f.SystemName
				}
			}
			if strings.Contains(name, goShapeMarker) {
				name = goname.Print(name)
			}
			frames = append(frames, frameName(name, loc))
		}
	}
	if len(frames) > maxFrames {
		frames = append([]string{truncatedFrame}, frames[len(frames)-maxFrames+1:]...)
	}
	return frames
}

// goShapeMarker starts the type arguments runtime/pprof writes for a Go generic
// instantiation ("main.Map[go.shape.int]"); the agent and code search name it
// "main.Map[...]", as the runtime prints it, so imported names are rewritten to match.
const goShapeMarker = "[go.shape."

// frameName names a frame, falling back to its address for unsymbolized locations.
func frameName(name string, loc *profile.Location) string {
	if name == "" {
		if loc.Mapping != nil && loc.Mapping.File != "" {
			name = fmt.Sprintf("%s+0x%x", loc.Mapping.File, loc.Address-loc.Mapping.Start+loc.Mapping.Offset)
		} else {
			name = fmt.Sprintf("0x%x", loc.Address)
		}
	}
	if len(name) > maxFrameBytes {
		name = truncateUTF8(name, maxFrameBytes)
	}
	return name
}

func truncateUTF8(s string, n int) string {
	s = s[:n]
	// Drop a partial trailing rune so the name stays valid UTF-8.
	for i := len(s) - 1; i >= 0 && i >= len(s)-4; i-- {
		c := s[i]
		if c < 0x80 {
			break
		}
		if c >= 0xC0 {
			s = s[:i]
			break
		}
	}
	return strings.ToValidUTF8(s, "")
}

// sampleLabels appends the sample's string labels (one per key, sorted) to base.
func sampleLabels(s *profile.Sample, base []samplebatch.Label) []samplebatch.Label {
	if len(s.Label) == 0 {
		return base
	}
	keys := make([]string, 0, len(s.Label))
	for k, vs := range s.Label {
		if len(vs) > 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := append([]samplebatch.Label(nil), base...)
	for _, k := range keys {
		if len(out) >= maxLabels {
			break
		}
		out = append(out, samplebatch.Label{Key: k, Value: strings.Join(s.Label[k], ",")})
	}
	return out
}

func labelKey(ls []samplebatch.Label) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.Key)
		b.WriteByte(0)
		b.WriteString(l.Value)
		b.WriteByte(0)
	}
	return b.String()
}
