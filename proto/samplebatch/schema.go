package samplebatch

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/cespare/xxhash/v2"

	"github.com/fleetprof/fleetprof/model"
)

// Schema metadata keys and the values of this version.
const (
	MetaSchema        = "fleetprof.schema"
	MetaSchemaVersion = "fleetprof.schema_version"
	SchemaName        = "fleetprof.samplebatch"
	// SchemaVersion is the version of CPU batches, which carry no profile type.
	SchemaVersion = "1"
	// SchemaVersionTyped is version 1 plus MetaProfileType. Writers use it only for
	// batches of another profile type, so an aggregator that reads only version 1
	// rejects them instead of storing heap bytes as CPU samples.
	SchemaVersionTyped = "2"
	// MetaProfileType names what the batch's values count (SCHEMA.md).
	MetaProfileType = "fleetprof.profile_type"
)

// ProfileCPU is the profile type of CPU samples, and of every batch and stored row
// that names none.
const ProfileCPU = "cpu"

// MaxProfileTypeBytes bounds a profile type name.
const MaxProfileTypeBytes = 64

// ErrBadProfileType is returned by CheckProfileType.
var ErrBadProfileType = errors.New("bad profile type")

// CheckProfileType accepts "cpu" or "TYPE/UNIT" (pprof's sample type and unit, e.g.
// alloc_space/bytes), each part lowercase letters, digits and '_'.
func CheckProfileType(t string) error {
	if t == ProfileCPU {
		return nil
	}
	typ, unit, ok := strings.Cut(t, "/")
	if !ok || len(t) > MaxProfileTypeBytes || !profileWord(typ) || !profileWord(unit) {
		return fmt.Errorf("%w %q: want %s or TYPE/UNIT (e.g. alloc_space/bytes) of lowercase letters, digits and _, at most %d bytes",
			ErrBadProfileType, t, ProfileCPU, MaxProfileTypeBytes)
	}
	return nil
}

func profileWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// Column names, in schema order.
const (
	ColTS          = "ts"
	ColService     = "service"
	ColVersion     = "version"
	ColHost        = "host"
	ColNamespace   = "namespace"
	ColPod         = "pod"
	ColContainer   = "container"
	ColComm        = "comm"
	ColPID         = "pid"
	ColLabelKeys   = "label_keys"
	ColLabelValues = "label_values"
	ColStackID     = "stack_id"
	ColFrames      = "frames"
	ColValue       = "value"
	ColPeriodNS    = "period_ns"
	// ColFrameLocations is optional (SCHEMA.md): writers from before it omit it and
	// readers from before it ignore it, so it needs no new schema version.
	ColFrameLocations = "frame_locations"
)

// optionalColumns may be absent from a batch; when present they have Schema's type.
var optionalColumns = map[string]bool{ColFrameLocations: true}

// labelColumns are the dictionary-encoded string label columns, in schema order.
var labelColumns = []string{ColService, ColVersion, ColHost, ColNamespace, ColPod, ColContainer, ColComm}

var dictString = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}

// Schema is the Arrow schema of version 1 (CPU batches).
var Schema = schemaFor(ProfileCPU)

// schemaFor is Schema with the metadata of a batch of profileType.
func schemaFor(profileType string) *arrow.Schema {
	fields := []arrow.Field{{Name: ColTS, Type: &arrow.TimestampType{Unit: arrow.Second, TimeZone: "UTC"}}}
	for _, name := range labelColumns {
		fields = append(fields, arrow.Field{Name: name, Type: dictString})
	}
	fields = append(fields,
		arrow.Field{Name: ColPID, Type: arrow.PrimitiveTypes.Uint32},
		arrow.Field{Name: ColLabelKeys, Type: arrow.ListOf(arrow.BinaryTypes.String)},
		arrow.Field{Name: ColLabelValues, Type: arrow.ListOf(arrow.BinaryTypes.String)},
		arrow.Field{Name: ColStackID, Type: arrow.PrimitiveTypes.Uint64},
		arrow.Field{Name: ColFrames, Type: arrow.ListOf(dictString), Nullable: true},
		arrow.Field{Name: ColValue, Type: arrow.PrimitiveTypes.Int64},
		arrow.Field{Name: ColPeriodNS, Type: arrow.PrimitiveTypes.Int64},
		arrow.Field{Name: ColFrameLocations, Type: arrow.ListOf(dictString), Nullable: true},
	)
	md := arrow.NewMetadata([]string{MetaSchema, MetaSchemaVersion}, []string{SchemaName, SchemaVersion})
	if profileType != ProfileCPU {
		md = arrow.NewMetadata([]string{MetaSchema, MetaSchemaVersion, MetaProfileType}, []string{SchemaName, SchemaVersionTyped, profileType})
	}
	return arrow.NewSchema(fields, &md)
}

// StackID is the identity of a stack: xxhash64 of its frame names (root first) joined by
// newlines. Agents and the aggregator compute it the same way, so a stack is stored once.
func StackID(frames []string) uint64 {
	// Streamed rather than joined: the same hash without building the string
	// (a Digest's writes never fail).
	var d xxhash.Digest
	d.Reset()
	for i, f := range frames {
		if i > 0 {
			_, _ = d.WriteString("\n")
		}
		_, _ = d.WriteString(f)
	}
	return d.Sum64()
}

// MaxLocationBytes is the default bound of one frame location (Limits.MaxLocationBytes).
const MaxLocationBytes = 1024

// Location is the frame_locations entry of a frame defined in file at line (> 0).
func Location(file string, line int) string { return model.Location(file, line) }

// Labels identify where samples come from.
type Labels struct {
	Service, Version, Host, Namespace, Pod, Container, Comm string
	PID                                                     uint32
	// Extra holds any other labels as key/value pairs.
	Extra []Label
}

// Label is one extra key=value label.
type Label struct{ Key, Value string }

// ErrBadPID is returned by Labels.Set for a pid that is not a process id.
var ErrBadPID = errors.New("pid is not a process id")

// Set sets the label named key: one of the built-in columns (service,
// version, host, namespace, pod, container, comm, pid) or else an extra label.
func (l *Labels) Set(key, value string) error {
	switch key {
	case ColService:
		l.Service = value
	case ColVersion:
		l.Version = value
	case ColHost:
		l.Host = value
	case ColNamespace:
		l.Namespace = value
	case ColPod:
		l.Pod = value
	case ColContainer:
		l.Container = value
	case ColComm:
		l.Comm = value
	case ColPID:
		pid, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return fmt.Errorf("%w: %q", ErrBadPID, value)
		}
		l.PID = uint32(pid)
	default:
		l.Extra = append(l.Extra, Label{Key: key, Value: value})
	}
	return nil
}

// Sample is one row: Value samples of one stack in one time bucket.
type Sample struct {
	TS     int64 // bucket start, Unix seconds
	Labels Labels
	Frames []string // root first
	// Locations, when not nil, is parallel to Frames: each frame's source
	// location (Location), "" where unknown.
	Locations []string
	Value     int64
	PeriodNS  int64
}
