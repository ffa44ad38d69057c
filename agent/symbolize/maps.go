package symbolize

import (
	"strconv"

	"github.com/fleetprof/fleetprof/agent/procmaps"
)

// mapping is one executable region of /proc/PID/maps.
type mapping struct {
	start, end, offset uint64
	inode              uint64
	dev                string
	path               string
	obj                *object // nil when the object could not be read
}

// execMappings returns the executable mappings of ms (anonymous and
// pseudo-files included), sorted by start as the kernel lists them.
func execMappings(ms []procmaps.Mapping) []mapping {
	var out []mapping
	for _, m := range ms {
		if m.Exec {
			out = append(out, mapping{start: m.Start, end: m.End, offset: m.Offset, inode: m.Inode, dev: m.Dev, path: m.Path})
		}
	}
	return out
}

// inodeKey identifies the file of m as the maps line names it.
func (m *mapping) inodeKey() string {
	return m.dev + " " + strconv.FormatUint(m.inode, 10)
}
