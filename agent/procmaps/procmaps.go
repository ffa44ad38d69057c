package procmaps

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// Mapping is one line of /proc/PID/maps.
type Mapping struct {
	Start, End, Offset uint64
	// Exec is set for executable mappings (the x of the permissions).
	Exec bool
	// Dev is the file's device as major:minor in hex ("fd:01"), Inode its
	// inode; together they identify the file ("00:00" and 0: anonymous).
	Dev   string
	Inode uint64
	// Path is the file's path, verbatim (it may contain spaces or end in
	// " (deleted)"), a pseudo-file such as "[vdso]", or "" (anonymous).
	Path string
}

// FileBacked reports whether m maps a file by path (not anonymous memory
// or a pseudo-file such as [vdso]).
func (m Mapping) FileBacked() bool { return len(m.Path) > 0 && m.Path[0] == '/' }

// Read reads and parses the maps of pid under procRoot (/proc). Where the
// kernel answers PROCMAP_QUERY (Linux 6.11+) it returns only the
// executable mappings; otherwise every mapping. Callers that need only
// executable ones filter on Exec either way.
func Read(procRoot string, pid uint32) ([]Mapping, error) {
	path := procRoot + "/" + strconv.FormatUint(uint64(pid), 10) + "/maps"
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("read maps of %d: %w", pid, &os.PathError{Op: "open", Path: path, Err: err})
	}
	defer syscall.Close(fd)
	ms, err := queryExec(fd)
	switch {
	case err == nil:
		return ms, nil
	case !errors.Is(err, errNoQuery):
		return nil, fmt.Errorf("read maps of %d: %w", pid, err)
	}
	return readText(fd, pid)
}

// readText reads and parses the text of the maps file open as fd.
func readText(fd int, pid uint32) ([]Mapping, error) {
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	b, err := readAll(fd, (*bp)[:0])
	*bp = b[:0]
	if err != nil {
		return nil, fmt.Errorf("read maps of %d: %w", pid, err)
	}
	ms, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("maps of %d: %w", pid, err)
	}
	return ms, nil
}

// bufs holds read buffers: Parse copies what it keeps out of them.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// readAll appends what is left to read of fd to buf, with bare system
// calls: os.ReadFile adds an fstat and a poller registration to each read,
// and the agent reads thousands of maps files a second on a host that
// execs many short processes.
func readAll(fd int, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return buf, fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// The paths and devices of maps lines repeat across processes (every
// process maps libc): strings are interned so parsing a maps file does not
// allocate them again. maxInterned bounds the table; it is emptied when
// full.
const maxInterned = 4096

var interned struct {
	sync.Mutex
	m map[string]string
}

func intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	interned.Lock()
	defer interned.Unlock()
	if s, ok := interned.m[string(b)]; ok {
		return s
	}
	if interned.m == nil || len(interned.m) >= maxInterned {
		interned.m = make(map[string]string, 256)
	}
	s := string(b)
	interned.m[s] = s
	return s
}

// Parse returns the mappings of a maps file in its order (the kernel lists
// them by address). Malformed lines are left out; the error names the
// first of them, so a caller may still use the rest.
func Parse(b []byte) ([]Mapping, error) {
	out := make([]Mapping, 0, bytes.Count(b, []byte{'\n'})+1)
	var bad error
	for line := range bytes.Lines(b) {
		line = bytes.TrimSuffix(line, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		m, err := parseLine(line)
		if err != nil {
			if bad == nil {
				bad = fmt.Errorf("parse maps line %q: %w", line, err)
			}
			continue
		}
		out = append(out, m)
	}
	return out, bad
}

// parseLine parses "start-end perms offset dev inode [path]".
func parseLine(line []byte) (Mapping, error) {
	var f [5][]byte
	rest := line
	for i := range f {
		rest = bytes.TrimLeft(rest, " ")
		j := bytes.IndexByte(rest, ' ')
		if j < 0 {
			j = len(rest)
		}
		if j == 0 {
			return Mapping{}, errors.New("too few fields")
		}
		f[i], rest = rest[:j], rest[j:]
	}
	lo, hi, ok := bytes.Cut(f[0], []byte{'-'})
	if !ok {
		return Mapping{}, errors.New("bad range")
	}
	start, err1 := strconv.ParseUint(string(lo), 16, 64)
	end, err2 := strconv.ParseUint(string(hi), 16, 64)
	off, err3 := strconv.ParseUint(string(f[2]), 16, 64)
	inode, err4 := strconv.ParseUint(string(f[4]), 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return Mapping{}, fmt.Errorf("bad number: %w", err)
	}
	if end < start {
		return Mapping{}, errors.New("end before start")
	}
	return Mapping{
		Start: start, End: end, Offset: off,
		Exec: len(f[1]) >= 3 && f[1][2] == 'x',
		Dev:  intern(f[3]), Inode: inode,
		// The path runs to the end of the line and may contain spaces.
		Path: intern(bytes.TrimLeft(rest, " ")),
	}, nil
}
