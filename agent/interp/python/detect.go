package python

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/fleetprof/fleetprof/agent/procmaps"
)

// ErrNotPython is returned by Detect for a process that maps no CPython.
var ErrNotPython = errors.New("not a python process")

// Process is a CPython process as found by Detect.
type Process struct {
	PID     uint32
	Path    string // the mapped python3.X or libpython3.X file, as in maps
	Version Version
	Runtime uint64 // address of _PyRuntime in the process
	Layout  Layout
}

// pythonFile matches the file names of CPython executables and libraries.
var pythonFile = regexp.MustCompile(`^(?:lib)?python3\.(\d+)(?:d|m)?(?:\.so.*)?$`)

// mapEntry is one file-backed line of /proc/PID/maps.
type mapEntry struct {
	start, offset uint64
	path          string
}

// Detect finds CPython in process pid. procRoot is normally "/proc".
// It returns ErrNotPython or an error wrapping ErrUnsupported as the
// caller must tell them apart (report once, walk never).
func Detect(procRoot string, pid uint32) (Process, error) {
	var d Detector
	return d.Detect(procRoot, pid)
}

// Detect is Detect, with the Detector's cache.
func (d *Detector) Detect(procRoot string, pid uint32) (Process, error) {
	maps, err := procmaps.Read(procRoot, pid)
	if err != nil {
		return Process{}, err
	}
	return d.DetectMaps(procRoot, pid, maps)
}

// DetectMaps is Detect with pid's maps already read (procmaps.Read): the
// agent reads them once for the unwind loader, the symbolizer and here.
func (d *Detector) DetectMaps(procRoot string, pid uint32, maps []procmaps.Mapping) (Process, error) {
	dir := filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10))
	var entries []mapEntry
	for _, m := range maps {
		if m.FileBacked() {
			entries = append(entries, mapEntry{start: m.Start, offset: m.Offset, path: m.Path})
		}
	}
	// A libpython beats the executable: a binary named python3.X may be a
	// thin launcher linked against it.
	var pick []mapEntry
	var minor int
	for _, e := range entries {
		m := pythonFile.FindStringSubmatch(filepath.Base(e.path))
		if m == nil {
			continue
		}
		if pick != nil && !strings.HasPrefix(filepath.Base(e.path), "lib") {
			if e.path == pick[0].path {
				pick = append(pick, e)
			}
			continue
		}
		if pick != nil && pick[0].path != e.path {
			pick = nil
		}
		minor, _ = strconv.Atoi(m[1])
		pick = append(pick, e)
	}
	if pick == nil {
		return Process{}, ErrNotPython
	}
	path := pick[0].path
	file := filepath.Join(dir, "root", path)
	fi, err := os.Stat(file)
	if err != nil {
		return Process{}, fmt.Errorf("stat %s: %w", path, err)
	}
	key := fileKey{path: path, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		key.dev, key.ino = st.Dev, st.Ino
	}
	ef, err := elf.Open(file)
	if err != nil {
		return Process{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer ef.Close()
	fd, ok := d.lookup(key)
	if !ok {
		if fd, err = readFile(ef, path, minor); err != nil {
			return Process{}, err
		}
		d.store(key, fd)
	}
	bias, err := loadBias(ef, pick)
	if err != nil {
		return Process{}, fmt.Errorf("%s: %w", path, err)
	}
	return Process{PID: pid, Path: path, Version: fd.version, Runtime: fd.runtime + bias, Layout: fd.layout}, nil
}

// fileData is what Detect learns from a python file, cached per file.
type fileData struct {
	version Version
	runtime uint64 // link-time address of _PyRuntime
	layout  Layout
}

type fileKey struct {
	path     string
	dev, ino uint64
	size     int64
	mtime    int64
}

// maxDetectCache bounds the Detector's cache (python files, not processes).
const maxDetectCache = 64

// Detector is Detect with a cache of what each python file holds (its
// version, _PyRuntime and layout), so a new process of a known binary costs
// a read of its maps: a short-lived process must be detected while it runs.
// Safe for concurrent use.
type Detector struct {
	mu    sync.Mutex
	cache map[fileKey]fileData
}

func (d *Detector) lookup(k fileKey) (fileData, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fd, ok := d.cache[k]
	return fd, ok
}

func (d *Detector) store(k fileKey, fd fileData) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cache == nil || len(d.cache) >= maxDetectCache {
		d.cache = map[fileKey]fileData{}
	}
	d.cache[k] = fd
}

func readFile(ef *elf.File, path string, minor int) (fileData, error) {
	syms := findSymbols(ef, "_PyRuntime", "Py_Version")
	rt, ok := syms["_PyRuntime"]
	if !ok {
		// A launcher linked against libpython seen before the dynamic
		// loader mapped the library (at exec): not a version problem, the
		// process is detected again once the library is mapped.
		if libs, err := ef.ImportedLibraries(); err == nil {
			for _, l := range libs {
				if strings.HasPrefix(l, "libpython3.") {
					return fileData{}, fmt.Errorf("%w yet: %s links %s, not mapped", ErrNotPython, path, l)
				}
			}
		}
		return fileData{}, fmt.Errorf("%w: %s has no _PyRuntime symbol", ErrUnsupported, path)
	}
	v := Version{Major: 3, Minor: minor}
	if pv, ok := syms["Py_Version"]; ok {
		b, err := readVaddr(ef, pv.Value, 8)
		if err != nil {
			return fileData{}, fmt.Errorf("read Py_Version: %w", err)
		}
		v = VersionFromHex(uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24)
	}
	var runtimeData []byte
	var err error
	if v.Minor >= debugOffsetsMinor {
		if runtimeData, err = readVaddr(ef, rt.Value, debugPrefixSize); err != nil {
			return fileData{}, fmt.Errorf("read _Py_DebugOffsets: %w", err)
		}
	}
	layout, err := LayoutFor(v, runtimeData)
	if err != nil {
		return fileData{}, err
	}
	return fileData{version: v, runtime: rt.Value, layout: layout}, nil
}

func findSymbols(f *elf.File, names ...string) map[string]elf.Symbol {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]elf.Symbol{}
	for _, get := range []func() ([]elf.Symbol, error){f.DynamicSymbols, f.Symbols} {
		syms, err := get()
		if err != nil {
			continue // a stripped file has no .symtab
		}
		for _, s := range syms {
			if want[s.Name] && s.Value != 0 {
				if _, ok := out[s.Name]; !ok {
					out[s.Name] = s
				}
			}
		}
	}
	return out
}

// readVaddr reads n bytes at virtual address va from the file's segments.
func readVaddr(f *elf.File, va uint64, n int) ([]byte, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || va < p.Vaddr || va+uint64(n) > p.Vaddr+p.Filesz {
			continue
		}
		b := make([]byte, n)
		if _, err := p.ReadAt(b, int64(va-p.Vaddr)); err != nil {
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("address %#x not in a loaded segment", va)
}

// loadBias is where the file is loaded relative to its link addresses.
func loadBias(f *elf.File, maps []mapEntry) (uint64, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Align == 0 {
			continue
		}
		pageOff := p.Off &^ (p.Align - 1)
		for _, m := range maps {
			if m.offset == pageOff || m.offset == p.Off&^0xfff {
				return m.start - (p.Vaddr - (p.Off - m.offset)), nil
			}
		}
	}
	return 0, errors.New("no mapping matches a loaded segment")
}
