package symbolize

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// mapping is one executable region of /proc/PID/maps.
type mapping struct {
	start, end, offset uint64
	inode              uint64
	dev                string
	path               string
	obj                *object // nil when the object could not be read
}

// parseMaps returns the executable mappings of a maps file, sorted by start
// (the kernel lists them in address order).
func parseMaps(r io.Reader) ([]mapping, error) {
	var out []mapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		// start-end perms offset dev inode [path]; the path may contain spaces.
		f := strings.Fields(line)
		if len(f) < 5 {
			return nil, fmt.Errorf("parse maps line %q: too few fields", line)
		}
		if len(f[1]) < 3 || f[1][2] != 'x' {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("parse maps line %q: bad range", line)
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		off, err3 := strconv.ParseUint(f[2], 16, 64)
		inode, err4 := strconv.ParseUint(f[4], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			return nil, fmt.Errorf("parse maps line %q: bad number", line)
		}
		m := mapping{start: start, end: end, offset: off, inode: inode, dev: f[3]}
		if len(f) > 5 {
			// Take the path verbatim from the line: it may contain spaces.
			idx := strings.Index(line, f[5])
			m.path = line[idx:]
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read maps: %w", err)
	}
	return out, nil
}

// readStartTime returns field 22 of /proc/PID/stat (start time in clock
// ticks since boot), which together with the pid identifies a process.
func readStartTime(procRoot string, pid uint32) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", procRoot, pid))
	if err != nil {
		return 0, fmt.Errorf("read stat: %w", err)
	}
	return parseStartTime(b)
}

func parseStartTime(b []byte) (uint64, error) {
	// comm (field 2) may contain spaces and parentheses: fields restart
	// after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse stat: no comm terminator")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field 22 is f[19].
	if len(f) < 20 {
		return 0, fmt.Errorf("parse stat: %d fields after comm, want at least 20", len(f))
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse stat start time: %w", err)
	}
	return v, nil
}
