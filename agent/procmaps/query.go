package procmaps

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"unsafe"
)

// procmapQuery is struct procmap_query of <linux/fs.h> (Linux 6.11+): the
// PROCMAP_QUERY ioctl on an open /proc/PID/maps returns one mapping in
// binary form, skipping those the flags exclude.
type procmapQuery struct {
	size, queryFlags, queryAddr                  uint64
	vmaStart, vmaEnd, vmaFlags, vmaPageSize      uint64
	vmaOffset, inode                             uint64
	devMajor, devMinor, vmaNameSize, buildIDSize uint32
	vmaNameAddr, buildIDAddr                     uint64
}

const (
	// ioctlProcmapQuery is _IOWR('f', 17, struct procmap_query).
	ioctlProcmapQuery = 3<<30 | uintptr(unsafe.Sizeof(procmapQuery{}))<<16 | 'f'<<8 | 17
	queryExecutable   = 0x04 // PROCMAP_QUERY_VMA_EXECUTABLE
	queryCoveringNext = 0x10 // PROCMAP_QUERY_COVERING_OR_NEXT_VMA
	// maxQueryMappings bounds one process's query loop (a process has at
	// most vm.max_map_count mappings; the loader keeps 256).
	maxQueryMappings = 1 << 16
)

// errNoQuery means the kernel or the mapping needs the text read.
var errNoQuery = errors.New("procmap query unavailable")

// names holds PATH_MAX name buffers for queries.
var names = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// queryExec returns the executable mappings of the maps file open as fd,
// by PROCMAP_QUERY: on a process with a few dozen mappings it costs about
// a third of reading the text, which formats every mapping. errNoQuery
// means the text must be read instead (an older kernel, or a name longer
// than PATH_MAX).
func queryExec(fd int) ([]Mapping, error) {
	np := names.Get().(*[]byte)
	defer names.Put(np)
	name := *np
	var out []Mapping
	var addr uint64
	for range maxQueryMappings {
		q := procmapQuery{
			size: uint64(unsafe.Sizeof(procmapQuery{})), queryFlags: queryCoveringNext | queryExecutable,
			queryAddr: addr, vmaNameSize: uint32(len(name)),
			vmaNameAddr: uint64(uintptr(unsafe.Pointer(&name[0]))), //nolint:gosec // the kernel writes at most vmaNameSize bytes there
		}
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), ioctlProcmapQuery, uintptr(unsafe.Pointer(&q))) //nolint:gosec // q is struct procmap_query, sized by its size field
		switch errno {
		case 0:
		case syscall.ENOENT:
			return out, nil // no mapping at or after addr
		case syscall.ENOTTY, syscall.EINVAL, syscall.EOPNOTSUPP, syscall.ENAMETOOLONG:
			// Not every kernel (or file) answers; one failed ioctl per
			// read costs little next to the text read.
			return nil, errNoQuery
		default:
			return nil, fmt.Errorf("procmap query: %w", errno)
		}
		m := Mapping{Start: q.vmaStart, End: q.vmaEnd, Offset: q.vmaOffset, Exec: true, Dev: devString(q.devMajor, q.devMinor), Inode: q.inode}
		if n := int(q.vmaNameSize); n > 1 && n <= len(name) {
			m.Path = intern(name[:n-1]) // the size counts the NUL
		}
		out = append(out, m)
		if q.vmaEnd <= addr {
			return nil, fmt.Errorf("procmap query: mapping %#x-%#x before %#x", q.vmaStart, q.vmaEnd, addr)
		}
		addr = q.vmaEnd
	}
	return out, nil
}

// devString formats a device as the maps text does ("fd:01": hex, at
// least two digits each), so both reads key files alike.
func devString(major, minor uint32) string {
	var b [20]byte
	return intern(fmt.Appendf(b[:0], "%02x:%02x", major, minor))
}
