package vdso

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Path is the name /proc/PID/maps gives the vDSO's mapping.
const Path = "[vdso]"

// ErrNotMapped means this process has no vDSO mapping (a kernel booted with
// vdso=0).
var ErrNotMapped = errors.New("no " + Path + " mapping")

// Image returns the vDSO's ELF image as mapped in this process, read through
// procRoot/self (procRoot is where proc is mounted, usually /proc).
func Image(procRoot string) ([]byte, error) {
	self := filepath.Join(procRoot, "self")
	maps, err := os.ReadFile(filepath.Join(self, "maps"))
	if err != nil {
		return nil, fmt.Errorf("read own maps: %w", err)
	}
	start, end, err := Find(maps)
	if err != nil {
		return nil, err
	}
	mem, err := os.Open(filepath.Join(self, "mem"))
	if err != nil {
		return nil, fmt.Errorf("open own memory: %w", err)
	}
	defer mem.Close()
	img := make([]byte, end-start)
	if _, err := mem.ReadAt(img, int64(start)); err != nil {
		return nil, fmt.Errorf("read %s at %#x: %w", Path, start, err)
	}
	return img, nil
}

// Find returns the address range of the vDSO in maps, the contents of a
// /proc/PID/maps file.
func Find(maps []byte) (start, end uint64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) != 6 || string(f[5]) != Path {
			continue
		}
		lo, hi, ok := bytes.Cut(f[0], []byte("-"))
		if !ok {
			break
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err := errors.Join(err1, err2); err != nil || end <= start || start > 1<<63 {
			return 0, 0, fmt.Errorf("bad %s line %q", Path, sc.Bytes())
		}
		return start, end, nil
	}
	return 0, 0, ErrNotMapped
}
