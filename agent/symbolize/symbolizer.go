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

	"github.com/fleetprof/fleetprof/agent/procmaps"
	"github.com/fleetprof/fleetprof/agent/vdso"
)

// Symbolizer resolves sampled addresses to function names. Create it with
// New; it is safe for concurrent use.
type Symbolizer struct {
	cfg Config

	mu     sync.Mutex
	procs  map[uint32]*process
	exited *list.List // of *process, in exit order
	// drain counts NextDrain calls: a miss in a live process whose maps
	// were read in an earlier drain re-reads them even within MinRefresh.
	drain uint64

	// Objects are reference counted by the tracked processes that map
	// them; lru holds the unreferenced ones, most recently used first,
	// bounded by Config.MaxFiles.
	lru   *list.List
	byKey map[string]*object // build id or file identity -> object
	// byInode finds the object of a mapped file by the dev and inode of
	// its maps line, without opening it. Each entry holds the file open,
	// so its inode cannot be freed and reused by another file while the
	// entry exists.
	byInode map[string]*inodeRef

	// parsing admits one object parse at a time: parsing runs outside mu,
	// and running several at once would multiply the agent's peak memory.
	parsing chan struct{}

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
	FileMisses    uint64 // object opened from disk (parsed when first needed)
	FileErrors    uint64 // object could not be opened or parsed
	MapsReads     uint64 // process maps read here or handed to ProcessMapped
	FilesCached   int    // objects known: referenced by processes, or unreferenced in the LRU (parsed or not)
	Processes     int    // processes tracked (exited ones in grace included)
}

type process struct {
	pid    uint32
	maps   []mapping
	readAt time.Time
	// readDrain is the Symbolizer's drain count when the maps were read.
	readDrain uint64
	exitAt    time.Time // zero while running
}

// New returns a Symbolizer for cfg with defaults filled in.
func New(cfg Config) (*Symbolizer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Symbolizer{
		cfg:     cfg,
		procs:   map[uint32]*process{},
		exited:  list.New(),
		lru:     list.New(),
		byKey:   map[string]*object{},
		byInode: map[string]*inodeRef{},
		parsing: make(chan struct{}, 1),
	}, nil
}

// ProcessStarted reads the maps of pid and loads its executable objects now,
// so its samples resolve even after it exits. Call it for exec and fork
// events; calling it again for a known pid re-reads the maps (exec replaces
// them).
func (s *Symbolizer) ProcessStarted(pid uint32) error {
	ms, err := procmaps.Read(s.cfg.ProcRoot, pid)
	if err != nil {
		return fmt.Errorf("process %d: %w", pid, err)
	}
	return s.ProcessMapped(pid, ms)
}

// ProcessMapped is ProcessStarted with pid's maps already read
// (procmaps.Read), so one read serves the symbolizer and the unwind loader.
func (s *Symbolizer) ProcessMapped(pid uint32, maps []procmaps.Mapping) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.MapsReads++
	now := time.Now()
	s.sweep(now)
	s.mapLocked(pid, execMappings(maps), now)
	return nil
}

// NextDrain starts symbolizing a new drain of samples. Maps read before it
// may predate libraries its samples ran in (a process's dynamic loader maps
// libc after the exec that announced it), so its first miss in a live
// process re-reads them whatever MinRefresh says.
func (s *Symbolizer) NextDrain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drain++
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
	st.FilesCached = len(s.byKey)
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
		if m == nil && p.exitAt.IsZero() && (now.Sub(p.readAt) >= s.cfg.MinRefresh || p.readDrain < s.drain) {
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
	if m.obj != nil {
		s.ensureLoaded(m.obj)
	}
	if m.obj == nil || m.obj.failed {
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
	if len(m.obj.inl.runs) > 0 {
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
			s.release(p)
		}
	}
}

// startLocked (re)reads pid's maps and loads its objects.
func (s *Symbolizer) startLocked(pid uint32, now time.Time) (*process, error) {
	ms, err := procmaps.Read(s.cfg.ProcRoot, pid)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	s.stats.MapsReads++
	return s.mapLocked(pid, execMappings(ms), now), nil
}

// mapLocked makes maps pid's mappings and loads their objects, reusing the
// objects of mappings unchanged since pid's last maps. An unchanged line
// (same range, offset, dev, inode and path) maps the same file even if the
// pid was reused: while an object is cached its inode cannot be reused.
func (s *Symbolizer) mapLocked(pid uint32, maps []mapping, now time.Time) *process {
	old := s.procs[pid]
	p := &process{pid: pid, maps: maps, readAt: now, readDrain: s.drain}
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
		key := m.inodeKey() + " " + m.path
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
	s.retain(p)
	if old != nil {
		s.release(old)
	}
	return p
}

// inodeRef is a byInode entry: the open file and the size and modification
// time it had when its object was found (a file rewritten in place keeps
// its inode).
type inodeRef struct {
	f           *os.File
	size, mtime int64
	obj         *object
}

// known returns the cached object of m's file if it is unchanged since it
// was cached, dropping a stale entry.
func (s *Symbolizer) known(m *mapping) *object {
	key := m.inodeKey()
	ref := s.byInode[key]
	if ref == nil {
		return nil
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(ref.f.Fd()), &st); err == nil && st.Size == ref.size && st.Mtim.Nano() == ref.mtime {
		return ref.obj
	}
	// Changed: opened again below. An object keyed by the old size and
	// modification time ("f:" keys) stays cached until it is evicted.
	ref.f.Close()
	delete(s.byInode, key)
	ref.obj.inodes = slices.DeleteFunc(ref.obj.inodes, func(k string) bool { return k == key })
	return nil
}

// objectFor returns the parsed object behind m, or nil if it cannot be read.
func (s *Symbolizer) objectFor(pid uint32, m *mapping) *object {
	if m.path == vdso.Path {
		return s.vdsoObject()
	}
	if m.inode == 0 {
		return nil // anonymous or special mapping (JIT code, [vsyscall])
	}
	if o := s.known(m); o != nil {
		s.stats.FileHits++
		s.touch(o)
		return o
	}
	f, err := s.openMapped(pid, m)
	if err != nil {
		s.stats.FileErrors++
		return nil
	}
	keep := false // byInode keeps f open
	defer func() {
		if !keep {
			f.Close()
		}
	}()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		s.stats.FileErrors++
		return nil
	}
	ref := &inodeRef{f: f, size: st.Size, mtime: st.Mtim.Nano()}
	ikey := m.inodeKey()
	ef, err := elf.NewFile(f)
	if err != nil {
		s.stats.FileErrors++
		return nil
	}
	key := fmt.Sprintf("f:%d:%d:%d:%d", st.Dev, st.Ino, st.Size, st.Mtim.Nano())
	id, idErr := buildID(ef)
	if idErr == nil {
		key = "b:" + id
	}
	if o, ok := s.byKey[key]; ok {
		s.stats.FileHits++
		s.touch(o)
		keep = true
		ref.obj = o
		o.inodes = append(o.inodes, ikey)
		s.byInode[ikey] = ref
		return o
	}
	s.stats.FileMisses++
	var debug *elfInput
	if idErr == nil && !strings.HasPrefix(id, "go:") {
		if df, name := s.openDebugFile(pid, id); df != nil {
			debug = &elfInput{f: df, name: name}
		}
	}
	// Parse later, when a sample needs it, and outside the lock: most
	// processes of a busy host are never sampled, and exec events of other
	// processes (whose maps must be read before they exit) must not queue
	// behind a 1 s DWARF parse. The open files keep the object readable
	// after the process is gone.
	o := &object{key: key, inodes: []string{ikey}, ready: make(chan struct{}),
		src: &objectSource{file: &elfInput{f: ef, name: m.path}, debug: debug}}
	keep = true
	ref.obj = o
	s.byKey[key] = o
	s.byInode[ikey] = ref
	// Not in the LRU: startLocked retains it at once, and evicting it
	// before (a process mapping more than MaxFiles new objects) would
	// lose it.
	return o
}

// objectSource is the files of an object not parsed yet (the mapped file
// itself stays open in the object's byInode entry).
type objectSource struct {
	file, debug *elfInput
}

func (src *objectSource) close() {
	if src.debug != nil {
		src.debug.f.Close()
	}
}

// ensureLoaded parses o if nobody has yet, or waits for the goroutine that
// is parsing it. Called and returns with s.mu held, but releases it
// meanwhile: mappings and objects are never freed under the caller.
func (s *Symbolizer) ensureLoaded(o *object) {
	if o.loaded {
		return
	}
	if o.src == nil { // another goroutine is parsing it
		s.mu.Unlock()
		<-o.ready
		s.mu.Lock()
		return
	}
	src := o.src
	o.src = nil
	s.mu.Unlock()
	s.parsing <- struct{}{}
	parsed, err := parseObject(src.file, src.debug, s.cfg.MaxDWARFBytes)
	<-s.parsing
	src.close()
	s.mu.Lock()
	if err != nil {
		o.failed = true
		s.stats.FileErrors++
	} else {
		o.segments, o.syms, o.inl = parsed.segments, parsed.syms, parsed.inl
	}
	o.loaded = true
	close(o.ready)
}

// retain and release count p's references to its objects.
func (s *Symbolizer) retain(p *process) {
	for o := range p.objects() {
		if o.refs == 0 && o.elem != nil {
			s.lru.Remove(o.elem)
			o.elem = nil
		}
		o.refs++
	}
}

func (s *Symbolizer) release(p *process) {
	for o := range p.objects() {
		o.refs--
		if o.refs == 0 && s.byKey[o.key] == o {
			o.elem = s.lru.PushFront(o)
		}
	}
	s.evict()
}

// evict drops the least recently used unreferenced objects beyond MaxFiles.
func (s *Symbolizer) evict() {
	for s.lru.Len() > s.cfg.MaxFiles {
		old := s.lru.Remove(s.lru.Back()).(*object)
		old.elem = nil
		if s.byKey[old.key] == old {
			delete(s.byKey, old.key)
		}
		for _, k := range old.inodes {
			if ref := s.byInode[k]; ref != nil && ref.obj == old {
				ref.f.Close()
				delete(s.byInode, k)
			}
		}
		if old.src != nil { // never parsed: nobody needs it any more
			old.src.close()
			old.src = nil
			old.failed, old.loaded = true, true
			close(old.ready)
		}
	}
}

// objects yields each distinct cached object p maps.
func (p *process) objects() func(func(*object) bool) {
	return func(yield func(*object) bool) {
		for i, m := range p.maps {
			if m.obj == nil || m.obj.key == "" {
				continue
			}
			dup := false
			for _, prev := range p.maps[:i] {
				if prev.obj == m.obj {
					dup = true
					break
				}
			}
			if !dup && !yield(m.obj) {
				return
			}
		}
	}
}

func (s *Symbolizer) touch(o *object) {
	if o.elem != nil {
		s.lru.MoveToFront(o.elem)
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
	img, err := vdso.Image(s.cfg.ProcRoot)
	if err != nil {
		return nil
	}
	ef, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		return nil
	}
	o, err := parseObject(&elfInput{f: ef, name: vdso.Path}, nil, s.cfg.MaxDWARFBytes)
	if err != nil {
		return nil
	}
	s.vdso = o
	return o
}
