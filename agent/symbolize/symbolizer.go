package symbolize

import (
	"bytes"
	"cmp"
	"container/list"
	"debug/elf"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Symbolizer resolves sampled addresses to function names. Create it with
// New; it is safe for concurrent use.
type Symbolizer struct {
	cfg Config

	mu     sync.Mutex
	procs  map[uint32]*process
	exited *list.List // of *process, in exit order

	lru    *list.List               // of *object, most recently used first
	byKey  map[string]*list.Element // build id or file identity -> lru element
	byStat map[string]*object       // file identity -> object

	kernel       *kernelSymbols
	kernelLoaded bool
	vdso         *object
	vdsoLoaded   bool

	stats Stats
}

// Stats are cumulative counters, except the gauges FilesCached and
// Processes.
type Stats struct {
	Frames        uint64 // names returned (inlined frames included)
	UnknownFrames uint64 // frames returned as [unknown]
	FileHits      uint64 // object found in the cache
	FileMisses    uint64 // object parsed from disk
	FileErrors    uint64 // object could not be opened or parsed
	MapsReads     uint64 // /proc/PID/maps reads
	FilesCached   int    // objects in the cache
	Processes     int    // processes tracked (exited ones in grace included)
}

type process struct {
	pid    uint32
	start  uint64 // field 22 of /proc/PID/stat
	maps   []mapping
	readAt time.Time
	exitAt time.Time // zero while running
}

// New returns a Symbolizer for cfg with defaults filled in.
func New(cfg Config) (*Symbolizer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Symbolizer{
		cfg:    cfg,
		procs:  map[uint32]*process{},
		exited: list.New(),
		lru:    list.New(),
		byKey:  map[string]*list.Element{},
		byStat: map[string]*object{},
	}, nil
}

// ProcessStarted reads the maps of pid and loads its executable objects now,
// so its samples resolve even after it exits. Call it for exec and fork
// events; calling it again for a known pid re-reads the maps (exec replaces
// them).
func (s *Symbolizer) ProcessStarted(pid uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(time.Now())
	_, err := s.startLocked(pid, time.Now())
	return err
}

// ProcessExited marks pid as exited; it stays resolvable for
// Config.ExitGrace, then is dropped.
func (s *Symbolizer) ProcessExited(pid uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.sweep(now)
	p := s.procs[pid]
	if p == nil || !p.exitAt.IsZero() {
		return
	}
	p.exitAt = now
	s.exited.PushBack(p)
}

// Stats returns a snapshot of the counters.
func (s *Symbolizer) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.FilesCached = s.lru.Len()
	st.Processes = len(s.procs)
	return st
}

// Symbolize names the frames of one sample. user and kernel are leaf first
// (as bpf_get_stackid returns them; zero entries are skipped). The result
// is root first: user frames from the root to the leaf, then kernel frames
// from the syscall or interrupt entry to the leaf. Inlined calls expand
// into several names, outermost first.
func (s *Symbolizer) Symbolize(pid uint32, user, kernel []uint64) []string {
	return s.AppendSymbolize(make([]string, 0, len(user)+len(kernel)), pid, user, kernel)
}

// AppendSymbolize is Symbolize appending to dst, to reuse a buffer.
func (s *Symbolizer) AppendSymbolize(dst []string, pid uint32, user, kernel []uint64) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.sweep(now)
	n0 := len(dst)
	if len(user) > 0 {
		p := s.procs[pid]
		if p == nil {
			// Never announced (e.g. started before the agent): read it now.
			p, _ = s.startLocked(pid, now)
		}
		for i := len(user) - 1; i >= 0; i-- {
			pc := user[i]
			if pc == 0 {
				continue
			}
			if i > 0 {
				pc-- // return address: look up the call instruction
			}
			dst, p = s.appendUser(dst, p, pc, now)
		}
	}
	for i := len(kernel) - 1; i >= 0; i-- {
		pc := kernel[i]
		if pc == 0 {
			continue
		}
		if i > 0 {
			pc--
		}
		dst = append(dst, s.kernelName(pc))
	}
	s.stats.Frames += uint64(len(dst) - n0)
	return dst
}

func (s *Symbolizer) kernelName(pc uint64) string {
	if !s.kernelLoaded && !s.cfg.NoKernel {
		s.kernelLoaded = true
		if f, err := os.Open(s.cfg.ProcRoot + "/kallsyms"); err == nil {
			s.kernel, _ = parseKallsyms(f)
			f.Close()
		}
	}
	if s.kernel != nil {
		if n, ok := s.kernel.lookup(pc); ok {
			return n
		}
	}
	s.stats.UnknownFrames++
	return "[unknown]_[k]"
}

// appendUser appends the names for one user pc of p (nil if unknown) and
// returns p, replaced if its maps had to be re-read.
func (s *Symbolizer) appendUser(dst []string, p *process, pc uint64, now time.Time) ([]string, *process) {
	var m *mapping
	if p != nil {
		m = p.find(pc)
		if m == nil && p.exitAt.IsZero() && now.Sub(p.readAt) >= s.cfg.MinRefresh {
			// Maybe a library loaded since the maps were read. Setting
			// readAt also rate-limits retries when the process is gone.
			p.readAt = now
			if np, err := s.startLocked(p.pid, now); err == nil {
				p = np
				m = p.find(pc)
			}
		}
	}
	return s.appendMapped(dst, m, pc), p
}

func (s *Symbolizer) appendMapped(dst []string, m *mapping, pc uint64) []string {
	if m == nil {
		s.stats.UnknownFrames++
		return append(dst, "[unknown]")
	}
	fileOff := pc - m.start + m.offset
	if m.obj == nil {
		s.stats.UnknownFrames++
		return append(dst, unknownFrame(m.path, fileOff))
	}
	vaddr, ok := m.obj.vaddr(fileOff)
	if !ok {
		s.stats.UnknownFrames++
		return append(dst, unknownFrame(m.path, fileOff))
	}
	sym, ok := m.obj.lookup(vaddr)
	if !ok {
		s.stats.UnknownFrames++
		return append(dst, unknownFrame(m.path, vaddr))
	}
	dst = append(dst, sym.name)
	if len(m.obj.inl) > 0 {
		dst = m.obj.inlines(dst, vaddr)
	}
	return dst
}

func unknownFrame(file string, off uint64) string {
	base := path.Base(strings.TrimSuffix(file, " (deleted)"))
	if file == "" {
		base = "anon"
	}
	return "[unknown] " + base + "+0x" + strconv.FormatUint(off, 16)
}

func (p *process) find(pc uint64) *mapping {
	i, found := slices.BinarySearchFunc(p.maps, pc, func(m mapping, pc uint64) int { return cmp.Compare(m.start, pc) })
	if !found {
		i--
	}
	if i < 0 || pc >= p.maps[i].end {
		return nil
	}
	return &p.maps[i]
}

// sweep drops exited processes whose grace period is over.
func (s *Symbolizer) sweep(now time.Time) {
	for e := s.exited.Front(); e != nil; e = s.exited.Front() {
		p := e.Value.(*process)
		if now.Sub(p.exitAt) < s.cfg.ExitGrace {
			return
		}
		s.exited.Remove(e)
		if s.procs[p.pid] == p {
			delete(s.procs, p.pid)
		}
	}
}

// startLocked (re)reads pid's maps and loads its objects, reusing the
// objects of unchanged mappings when the pid still names the same process.
func (s *Symbolizer) startLocked(pid uint32, now time.Time) (*process, error) {
	start, err := readStartTime(s.cfg.ProcRoot, pid)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/maps", s.cfg.ProcRoot, pid))
	if err != nil {
		return nil, fmt.Errorf("process %d: read maps: %w", pid, err)
	}
	s.stats.MapsReads++
	maps, err := parseMaps(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	old := s.procs[pid]
	if old != nil && old.start != start {
		old = nil // pid reused by another process
	}
	p := &process{pid: pid, start: start, maps: maps, readAt: now}
	loaded := map[string]*object{}
	for i := range p.maps {
		m := &p.maps[i]
		if old != nil {
			if om := old.find(m.start); om != nil && om.start == m.start && om.end == m.end &&
				om.offset == m.offset && om.inode == m.inode && om.dev == m.dev && om.path == m.path {
				m.obj = om.obj
				continue
			}
		}
		key := m.dev + " " + strconv.FormatUint(m.inode, 10) + " " + m.path
		if o, ok := loaded[key]; ok {
			m.obj = o
			continue
		}
		m.obj = s.objectFor(pid, m)
		loaded[key] = m.obj
	}
	// An exited predecessor's entry in s.exited no longer matches
	// s.procs[pid], so sweep leaves p alone.
	s.procs[pid] = p
	return p, nil
}

// objectFor returns the parsed object behind m, or nil if it cannot be read.
func (s *Symbolizer) objectFor(pid uint32, m *mapping) *object {
	if m.path == "[vdso]" {
		return s.vdsoObject()
	}
	if m.inode == 0 {
		return nil // anonymous or special mapping (JIT code, [vsyscall])
	}
	f, err := s.openMapped(pid, m)
	if err != nil {
		s.stats.FileErrors++
		return nil
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		s.stats.FileErrors++
		return nil
	}
	statKey := fmt.Sprintf("%d:%d:%d:%d", st.Dev, st.Ino, st.Size, st.Mtim.Nano())
	if o, ok := s.byStat[statKey]; ok {
		s.stats.FileHits++
		s.touch(o)
		return o
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		s.stats.FileErrors++
		return nil
	}
	key := "f:" + statKey
	id, idErr := buildID(ef)
	if idErr == nil {
		key = "b:" + id
	}
	if e, ok := s.byKey[key]; ok {
		o := e.Value.(*object)
		s.stats.FileHits++
		s.lru.MoveToFront(e)
		o.statKeys = append(o.statKeys, statKey)
		s.byStat[statKey] = o
		return o
	}
	s.stats.FileMisses++
	var debug *elfInput
	if idErr == nil && !strings.HasPrefix(id, "go:") {
		if df, name := s.openDebugFile(pid, id); df != nil {
			defer df.Close()
			debug = &elfInput{f: df, name: name}
		}
	}
	o, err := parseObject(&elfInput{f: ef, name: m.path}, debug, s.cfg.MaxDWARFBytes)
	if err != nil {
		s.stats.FileErrors++
		return nil
	}
	o.key = key
	o.statKeys = []string{statKey}
	s.byKey[key] = s.lru.PushFront(o)
	s.byStat[statKey] = o
	for s.lru.Len() > s.cfg.MaxFiles {
		e := s.lru.Back()
		old := e.Value.(*object)
		s.lru.Remove(e)
		delete(s.byKey, old.key)
		for _, k := range old.statKeys {
			if s.byStat[k] == old {
				delete(s.byStat, k)
			}
		}
	}
	return o
}

func (s *Symbolizer) touch(o *object) {
	if e, ok := s.byKey[o.key]; ok {
		s.lru.MoveToFront(e)
	}
}

// openMapped opens the file behind m: through the process's root (so
// container paths resolve), or through map_files when the path is gone,
// deleted or names a different file now.
func (s *Symbolizer) openMapped(pid uint32, m *mapping) (*os.File, error) {
	if strings.HasPrefix(m.path, "/") && !strings.HasSuffix(m.path, " (deleted)") {
		f, err := os.Open(fmt.Sprintf("%s/%d/root%s", s.cfg.ProcRoot, pid, m.path))
		if err == nil {
			var st syscall.Stat_t
			if syscall.Fstat(int(f.Fd()), &st) == nil && st.Ino == m.inode {
				return f, nil
			}
			f.Close()
		}
	}
	f, err := os.Open(fmt.Sprintf("%s/%d/map_files/%x-%x", s.cfg.ProcRoot, pid, m.start, m.end))
	if err != nil {
		return nil, fmt.Errorf("open mapped file %s: %w", m.path, err)
	}
	return f, nil
}

// openDebugFile finds the separate debug file for a GNU build id, first in
// the process's root (debug packages installed in the container), then on
// the host.
func (s *Symbolizer) openDebugFile(pid uint32, id string) (*elf.File, string) {
	if len(id) < 3 {
		return nil, ""
	}
	rel := "/.build-id/" + id[:2] + "/" + id[2:] + ".debug"
	for _, dir := range s.cfg.DebugDirs {
		for _, p := range []string{fmt.Sprintf("%s/%d/root%s%s", s.cfg.ProcRoot, pid, dir, rel), dir + rel} {
			f, err := elf.Open(p)
			if err != nil {
				continue
			}
			if got, err := buildID(f); err != nil || got != id {
				f.Close()
				continue
			}
			return f, p
		}
	}
	return nil, ""
}

// vdsoObject parses the vDSO from this process's memory: the kernel maps
// one image into every process.
func (s *Symbolizer) vdsoObject() *object {
	if s.vdsoLoaded {
		return s.vdso
	}
	s.vdsoLoaded = true
	b, err := os.ReadFile(s.cfg.ProcRoot + "/self/maps")
	if err != nil {
		return nil
	}
	for line := range strings.Lines(string(b)) {
		if !strings.HasSuffix(strings.TrimSpace(line), "[vdso]") {
			continue
		}
		ms, err := parseMaps(strings.NewReader(line))
		if err != nil || len(ms) != 1 {
			return nil
		}
		mem, err := os.Open(s.cfg.ProcRoot + "/self/mem")
		if err != nil {
			return nil
		}
		defer mem.Close()
		img := make([]byte, ms[0].end-ms[0].start)
		if _, err := mem.ReadAt(img, int64(ms[0].start)); err != nil {
			return nil
		}
		ef, err := elf.NewFile(bytes.NewReader(img))
		if err != nil {
			return nil
		}
		o, err := parseObject(&elfInput{f: ef, name: "[vdso]"}, nil, s.cfg.MaxDWARFBytes)
		if err != nil {
			return nil
		}
		s.vdso = o
		return o
	}
	return nil
}
