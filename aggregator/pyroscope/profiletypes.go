package pyroscope

import (
	"context"
	"fmt"
	"strings"

	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"
)

// ProfileTyper is a Store that keeps profile types other than CPU
// (storage.Store): it lists the types stored per service of a selection
// (service → "cpu" or TYPE/UNIT). A Store without it serves CPU only.
type ProfileTyper interface {
	ProfileTypes(ctx context.Context, sel model.Selection) (map[string][]string, error)
}

// The CPU profile types: both are the stored CPU samples, one in nanoseconds
// (samples × period) and one counted.
var (
	cpuNanos   = &typesv1.ProfileType{ID: cpuProfileName + ":cpu:nanoseconds:cpu:nanoseconds", Name: cpuProfileName, SampleType: "cpu", SampleUnit: "nanoseconds", PeriodType: "cpu", PeriodUnit: "nanoseconds"}
	cpuSamples = &typesv1.ProfileType{ID: cpuProfileName + ":samples:count:cpu:nanoseconds", Name: cpuProfileName, SampleType: "samples", SampleUnit: "count", PeriodType: "cpu", PeriodUnit: "nanoseconds"}
)

// knownTypes names stored types (a pprof sample type, TYPE/UNIT) as Pyroscope
// does for the Go profiles it ingests: its profile name and period type.
// Block and mutex profiles share contentions/count and delay/nanoseconds, so
// those (and every other type) get the generic name.
var knownTypes = map[string]struct{ name, periodType, periodUnit string }{
	"alloc_objects/count": {"memory", "space", "bytes"},
	"alloc_space/bytes":   {"memory", "space", "bytes"},
	"inuse_objects/count": {"memory", "space", "bytes"},
	"inuse_space/bytes":   {"memory", "space", "bytes"},
	"goroutine/count":     {"goroutines", "goroutine", "count"},
}

// pyroscopeTypes are the Pyroscope profile types of a stored type. A type
// Pyroscope has no name for is NAME:NAME:UNIT:NAME:UNIT, NAME its sample
// type (contentions/count → contentions:contentions:count:contentions:count).
func pyroscopeTypes(stored string) []*typesv1.ProfileType {
	if stored == samplebatch.ProfileCPU {
		return []*typesv1.ProfileType{cpuNanos, cpuSamples}
	}
	typ, unit, _ := strings.Cut(stored, "/")
	k, ok := knownTypes[stored]
	if !ok {
		k.name, k.periodType, k.periodUnit = typ, typ, unit
	}
	id := strings.Join([]string{k.name, typ, unit, k.periodType, k.periodUnit}, ":")
	return []*typesv1.ProfileType{{ID: id, Name: k.name, SampleType: typ, SampleUnit: unit, PeriodType: k.periodType, PeriodUnit: k.periodUnit}}
}

// profileType is a Pyroscope profile type id resolved to what is stored.
type profileType struct {
	stored string // samplebatch profile type
	name   string // __name__
	// nanos: a CPU sample is worth its period in nanoseconds.
	nanos bool
}

// parseProfileType reads a Pyroscope profile type id (pyroscopeTypes'
// inverse).
func parseProfileType(id string) (profileType, error) {
	switch id {
	case cpuNanos.ID:
		return profileType{stored: samplebatch.ProfileCPU, name: cpuProfileName, nanos: true}, nil
	case cpuSamples.ID:
		return profileType{stored: samplebatch.ProfileCPU, name: cpuProfileName}, nil
	}
	f := strings.Split(id, ":")
	if len(f) == 5 {
		stored := f[1] + "/" + f[2]
		if samplebatch.CheckProfileType(stored) == nil && stored != samplebatch.ProfileCPU {
			if pt := pyroscopeTypes(stored)[0]; pt.ID == id {
				return profileType{stored: stored, name: pt.Name}, nil
			}
		}
	}
	return profileType{}, invalid(fmt.Errorf("profile type %q is not one fleetprof serves: ask ProfileTypes (e.g. %s or %s)", id, cpuNanos.ID, pyroscopeTypes("alloc_space/bytes")[0].ID))
}

// scale is what one sample is worth in the type's unit.
func (t profileType) scale(periodNS int64) int64 {
	if t.nanos {
		return max(periodNS, 1)
	}
	return 1
}

// storedTypes lists the stored types per service of sel; a Store that keeps
// only CPU has "cpu" for each of its services.
func (q *Querier) storedTypes(ctx context.Context, sel model.Selection) (map[string][]string, error) {
	if pt, ok := q.st.(ProfileTyper); ok {
		return pt.ProfileTypes(ctx, sel)
	}
	svcs, err := q.st.LabelValues(ctx, sel, "service")
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, s := range svcs {
		out[s] = []string{samplebatch.ProfileCPU}
	}
	return out, nil
}
