package unwind

import (
	"bytes"
	"cmp"
	"context"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/fleetprof/fleetprof/agent/procmaps"
	"github.com/fleetprof/fleetprof/agent/vdso"
)

// Defaults and limits of Config.
const (
	// DefaultMaxRowBytes bounds all tables together: 32 MiB hold about 70
	// tables the size of Debian's libc (450 KB each); 16 MiB thrashed on a
	// busy 2-core build host (90 evictions in 30 s).
	DefaultMaxRowBytes = 32 << 20
	// DefaultMaxFiles bounds the files that get a file id.
	DefaultMaxFiles = 8192
	// DefaultBuildQueue bounds the files waiting for their table.
	DefaultBuildQueue = 256
	// DefaultMaxCFIBytes is the default Config.MaxCFIBytes: libLLVM's
	// 5 MB of .eh_frame fit, chDB's 35 MB (seconds of compiling on a
	// busy host, and the agent's whole memory budget) do not.
	DefaultMaxCFIBytes = 16 << 20
	// DefaultLargeCFIBytes is the default Config.LargeCFIBytes: Debian's
	// libc (about 250 KB of .eh_frame, 26 ms to compile) is small; gcc's
	// cc1 (2.4 MB) and libLLVM (5 MB) take seconds on a busy host.
	DefaultLargeCFIBytes = 512 << 10
	// DefaultCacheMaxBytes bounds the on-disk table cache: about 280
	// tables the size of Debian's libc's.
	DefaultCacheMaxBytes = 128 << 20
	// CacheOff as Config.CacheDir keeps no tables on disk.
	CacheOff = "off"
	// MaxMappings is MAX_PROC_MAPPINGS in bpf/native.bpf.h: executable
	// mappings per process beyond it are left out (frame pointers there).
	MaxMappings = 256
	// maxFileID is MAX_FILES in bpf/native.bpf.h.
	maxFileID = 65536
)

// ErrTooLarge means a file's table alone exceeds Config.MaxRowBytes.
var ErrTooLarge = errors.New("unwind table larger than the row budget")

// Mapping is one executable mapping of a process as the walker sees it
// (struct proc_mapping): pc in [Start, End) is ELF address pc - Bias of
// file FileID (0: no table, frame pointers).
type Mapping struct {
	Start, End, Bias uint64
	FileID           uint32
}

// Tables is the kernel side of the loader (the unwind_rows, unwind_files
// and pid_maps maps). agent/sampler implements it; samplertest.Fake is
// the in-memory fake.
type Tables interface {
	// WriteRows stores rows at unwind_rows[first, first+len(rows)).
	WriteRows(first uint32, rows []Row) error
	// SetFile points file id at unwind_rows[first, first+count); count 0
	// means no table.
	SetFile(id, first, count uint32) error
	// SetProcess replaces pid's mappings (sorted by Start).
	SetProcess(pid uint32, maps []Mapping) error
	// DeleteProcess forgets pid's mappings.
	DeleteProcess(pid uint32) error
}

// Config configures a Loader. Zero fields mean "default".
type Config struct {
	// MaxRowBytes is the size of the unwind_rows array in bytes (RowSize
	// per row); least recently used tables are evicted to stay within it.
	MaxRowBytes int
	// MaxFiles is the number of file ids (unwind_files entries).
	MaxFiles int
	// ProcRoot is where proc is mounted (default /proc).
	ProcRoot string
	// MaxCFIBytes skips files whose .eh_frame plus .debug_frame exceed it
	// (default DefaultMaxCFIBytes, at most MaxRowBytes): their table could
	// not fit anyway, and compiling them costs seconds and tens of MB.
	MaxCFIBytes int
	// BuildQueue is how many files may wait for their table (default
	// 256); files beyond it are queued again at their next sample.
	BuildQueue int
	// LargeCFIBytes: files with more CFI (.eh_frame plus .debug_frame)
	// are compiled in a goroutine of their own (default
	// DefaultLargeCFIBytes), so small files' tables are never queued
	// behind them.
	LargeCFIBytes int
	// CacheDir keeps compiled tables across restarts, one file per build
	// id (format in cache.go); "" or CacheOff: no cache. Files without a
	// build id are never cached.
	CacheDir string
	// CacheMaxBytes bounds CacheDir (default DefaultCacheMaxBytes): after a
	// write goes over it, the least recently used files are removed.
	CacheMaxBytes int64
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.MaxRowBytes == 0 {
		c.MaxRowBytes = DefaultMaxRowBytes
	}
	if c.MaxFiles == 0 {
		c.MaxFiles = DefaultMaxFiles
	}
	if c.ProcRoot == "" {
		c.ProcRoot = "/proc"
	}
	if c.MaxCFIBytes == 0 {
		c.MaxCFIBytes = min(DefaultMaxCFIBytes, c.MaxRowBytes)
	}
	if c.BuildQueue == 0 {
		c.BuildQueue = DefaultBuildQueue
	}
	if c.CacheMaxBytes == 0 {
		c.CacheMaxBytes = DefaultCacheMaxBytes
	}
	if c.LargeCFIBytes == 0 {
		c.LargeCFIBytes = DefaultLargeCFIBytes
	}
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.MaxRowBytes < RowSize:
		return fmt.Errorf("max row bytes %d below one row (%d)", c.MaxRowBytes, RowSize)
	case c.MaxRowBytes/RowSize > 1<<24:
		return fmt.Errorf("max row bytes %d above 2^24 rows (the walker's search depth)", c.MaxRowBytes)
	case c.MaxCFIBytes < 0:
		return fmt.Errorf("max cfi bytes %d must not be negative", c.MaxCFIBytes)
	case c.LargeCFIBytes < 0:
		return fmt.Errorf("large cfi bytes %d must not be negative", c.LargeCFIBytes)
	case c.CacheMaxBytes < 0:
		return fmt.Errorf("cache max bytes %d must not be negative", c.CacheMaxBytes)
	case c.BuildQueue < 1:
		return fmt.Errorf("build queue %d must be positive", c.BuildQueue)
	case c.MaxFiles < 2 || c.MaxFiles > maxFileID:
		return fmt.Errorf("max files %d out of range [2, %d]", c.MaxFiles, maxFileID)
	}
	return nil
}

// Rows is the number of rows of c.MaxRowBytes.
func (c Config) Rows() int { return c.MaxRowBytes / RowSize }

// Stats are the loader's counters and gauges.
type Stats struct {
	Files         int           // files with a table in the kernel
	Rows          int           // rows in the kernel
	Bytes         int           // Rows × RowSize
	Builds        uint64        // tables compiled
	BuildTime     time.Duration // total compile time
	Evictions     uint64        // tables evicted to fit the row budget
	CompileErrors uint64        // files whose CFI could not be compiled or did not fit
	NoCFI         uint64        // files without CFI (frame pointers)
	Refreshes     uint64        // process maps refreshed (Refresh, SetMaps)
	RefreshErrors uint64        // process maps that Refresh could not read, or that could not be written
	OutOfIDs      uint64        // files left without a table because every file id is taken
	Pending       int           // sampled files waiting for their table
	Queued        uint64        // tables asked for because a sample landed in a file without one
	QueuedOnWant  uint64        // of those, asked for by the walker's EVENT_WANT_TABLE (before a drain)
	CacheHits     uint64        // tables read from the disk cache instead of compiled
	CacheErrors   uint64        // cache files corrupt (removed, rebuilt) or not writable
	CacheBytes    int64         // bytes in the disk cache
	CacheEvicted  uint64        // cache files removed (least recently used) to stay within CacheMaxBytes
}

// segment is a PT_LOAD of a file, to turn a mapping into a load bias.
type segment struct{ off, vaddr, filesz uint64 }

// file is one ELF file known to the loader.
type file struct {
	id          uint32
	first, rows uint32 // rows in unwind_rows; rows 0: none loaded
	segs        []segment
	lastUse     uint64
	noTable     bool // no CFI, unsupported or failed: never retried
	queued      bool // waiting in the build queue
	hits        int  // pcs in it sampled while queued: build order
	cfiBytes    uint64
	sampled     bool // a sample has landed in it
	path        string
	buildID     string
	image       []byte // the vDSO's: compiled from this copy, not opened
}

// job asks the builder for f's table, opening it through the mapping m
// of pid that a sample landed in.
type job struct {
	f   *file
	pid uint32
	m   Mapping
}

// span is a free range of unwind_rows.
type span struct{ first, n uint32 }

// Loader compiles and loads unwind tables for processes. Its methods are
// safe for concurrent use.
type Loader struct {
	cfg Config
	tab Tables

	mu      sync.Mutex
	byKey   map[string]*file     // dev:inode of the mapping; the vDSO: vdso.Path
	byBuild map[string]*file     // GNU build id
	byID    []*file              // by file id
	procs   map[uint32][]*file   // files of each process's last refresh
	maps    map[uint32][]Mapping // mappings last written for each process
	// exited keeps the mappings of exited processes for the drains that
	// may still hold their samples (exitedDrains), so the files of
	// processes gone before a flush still get tables.
	exited map[uint32]exitedProc
	nextID uint32
	free   []span // sorted by first, merged
	tick   uint64
	drains uint64 // Sampled calls
	stats  Stats
	queue  map[*file]job    // files waiting for their table
	wake   [2]chan struct{} // a job was queued, by lane
	cache  *diskCache       // nil: none
	// vdso is the vDSO's file, from the agent's own image (vdsoRead: tried).
	vdso     *file
	vdsoRead bool
}

// NewLoader returns a Loader writing to tab.
func NewLoader(cfg Config, tab Tables) (*Loader, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid unwind config: %w", err)
	}
	l := &Loader{
		cfg: cfg, tab: tab,
		byKey: map[string]*file{}, byBuild: map[string]*file{}, procs: map[uint32][]*file{}, maps: map[uint32][]Mapping{}, exited: map[uint32]exitedProc{},
		byID:   []*file{nil},
		nextID: 1,
		free:   []span{{0, uint32(cfg.Rows())}},
		queue:  map[*file]job{},
		wake:   [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)},
	}
	if cfg.CacheDir != "" && cfg.CacheDir != CacheOff {
		l.cache = &diskCache{dir: cfg.CacheDir, maxBytes: cfg.CacheMaxBytes}
	}
	return l, nil
}

// Stats returns a snapshot of the counters.
func (l *Loader) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.stats
	st.Bytes = st.Rows * RowSize
	st.Pending = len(l.queue)
	return st
}

// exitedProc is an exited process's last mappings and the drain count
// (Loader.drains) when it exited.
type exitedProc struct {
	maps   []Mapping
	drains uint64
}

// exitedDrains is how many drains after its exit a process's samples are
// still matched to its files: its last samples are in the first drain after
// the exit is handled, or in the one running meanwhile.
const exitedDrains = 2

// ProcessExited forgets pid's mappings in the kernel; they are kept for
// Sampled until its samples are drained.
func (l *Loader) ProcessExited(pid uint32) error {
	l.mu.Lock()
	if ms, ok := l.maps[pid]; ok {
		l.exited[pid] = exitedProc{maps: ms, drains: l.drains}
	}
	delete(l.procs, pid)
	delete(l.maps, pid)
	l.mu.Unlock()
	return l.tab.DeleteProcess(pid)
}

// Sampled takes the user stacks (pid, leaf-first pcs) of one drain: each
// file a pc lands in is marked as used now, so eviction takes tables of
// files nothing runs, and a file without its table yet is queued for Run.
// Tables are only built for files samples land in; until then the walker
// steps by frame pointers there.
func (l *Loader) Sampled(stacks iter.Seq2[uint32, []uint64]) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tick++
	l.drains++
	defer func() {
		for pid, e := range l.exited {
			if l.drains-e.drains >= exitedDrains {
				delete(l.exited, pid)
			}
		}
	}()
	for pid, pcs := range stacks {
		ms, ok := l.maps[pid]
		if !ok {
			ms = l.exited[pid].maps
		}
		if len(ms) == 0 {
			continue
		}
		last := -1 // neighbouring frames are mostly in the same file
		for _, pc := range pcs {
			i := last
			if i < 0 || pc < ms[i].Start || pc >= ms[i].End {
				i = sort.Search(len(ms), func(i int) bool { return ms[i].End > pc })
				if i == len(ms) || pc < ms[i].Start || ms[i].FileID == 0 {
					continue
				}
				last = i
			}
			f := l.byID[ms[i].FileID]
			if f.queued {
				f.hits++
			}
			if f.lastUse == l.tick {
				continue // handled in this drain already
			}
			f.lastUse = l.tick
			f.sampled = true
			l.enqueue(f, pid, ms[i])
		}
	}
}

// Wanted queues the table of file id fileID, which the walker met in pid
// without a table, at once rather than at the next drain.
func (l *Loader) Wanted(pid, fileID uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.byID[fileID]
	if f == nil {
		return
	}
	ms, ok := l.maps[pid]
	if !ok {
		ms = l.exited[pid].maps
	}
	for _, m := range ms {
		if m.FileID == fileID {
			f.sampled = true
			if l.enqueue(f, pid, m) {
				l.stats.QueuedOnWant++
			}
			return
		}
	}
}

// enqueue queues f's build through pid's mapping m unless it is queued,
// built, never to be, or the queue is full (its next sample asks again);
// it reports whether it queued (l.mu held).
func (l *Loader) enqueue(f *file, pid uint32, m Mapping) bool {
	if f.queued || f.rows > 0 || f.noTable || len(l.queue) >= l.cfg.BuildQueue {
		return false
	}
	l.queue[f] = job{f: f, pid: pid, m: m}
	f.queued, f.hits = true, 1
	l.stats.Queued++
	select {
	case l.wake[l.lane(f)] <- struct{}{}:
	default:
	}
	return true
}

// Build lanes: files with more CFI than Config.LargeCFIBytes are compiled
// by their own goroutine, so a small hot file never waits for them.
const (
	laneSmall = 0
	laneLarge = 1
	laneAny   = -1
)

func (l *Loader) lane(f *file) int {
	if f.cfiBytes > uint64(l.cfg.LargeCFIBytes) {
		return laneLarge
	}
	return laneSmall
}

// next takes the queued file of lane (or laneAny) with the most samples
// per byte of CFI since it was queued: the tables that complete the most
// stacks soonest come first.
func (l *Loader) next(lane int) (job, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var best *file
	for f := range l.queue {
		if (lane == laneAny || l.lane(f) == lane) && (best == nil || f.before(best)) {
			best = f
		}
	}
	if best == nil {
		return job{}, false
	}
	j := l.queue[best]
	delete(l.queue, best)
	return j, true
}

// before reports whether f is built before o: more samples per byte of
// CFI to compile, so a small hot file does not wait for a big one.
func (f *file) before(o *file) bool {
	a, b := uint64(f.hits)*(o.cfiBytes+cfiCostFloor), uint64(o.hits)*(f.cfiBytes+cfiCostFloor)
	return a > b || a == b && f.id < o.id
}

// cfiCostFloor is the fixed cost of a build in bytes of CFI (opening the
// file): tiny files are not ranked by their size alone.
const cfiCostFloor = 4096

// Mappings returns pid's mappings as last written for the walker.
func (l *Loader) Mappings(pid uint32) []Mapping {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.maps[pid])
}

// Ready reports whether every file of pid's last refresh that samples
// have landed in has its table loaded or is known to have none.
func (l *Loader) Ready(pid uint32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	fs, ok := l.procs[pid]
	if !ok {
		return false
	}
	for _, f := range fs {
		if f.sampled && f.id != 0 && !f.noTable && f.rows == 0 {
			return false
		}
	}
	return true
}

// Run compiles queued tables until ctx is done, in two goroutines (small
// and large files). Refresh never waits for a compile: a process's
// mappings name their file ids at once, and the walker uses frame pointers
// for a file until its rows are in.
func (l *Loader) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.runLane(ctx, laneLarge)
	}()
	l.runLane(ctx, laneSmall)
	wg.Wait()
	return nil
}

func (l *Loader) runLane(ctx context.Context, lane int) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.wake[lane]:
			for ctx.Err() == nil {
				j, ok := l.next(lane)
				if !ok {
					break
				}
				l.build(j)
			}
		}
	}
}

// BuildPending compiles every queued table now (tests without Run).
func (l *Loader) BuildPending() {
	for {
		j, ok := l.next(laneAny)
		if !ok {
			return
		}
		l.build(j)
	}
}

// Refresh reads pid's executable mappings, gives files it has not seen a
// file id (their tables are built once sampled, see Sampled) and writes
// the process's mappings. changed reports whether
// they differ from the previous refresh of pid (a new process, or code
// mapped or unmapped since). Call it when a process
// starts and whenever the walker reports a pc outside its known mappings.
func (l *Loader) Refresh(pid uint32) (changed bool, err error) {
	ms, err := procmaps.Read(l.cfg.ProcRoot, pid)
	if err != nil {
		l.mu.Lock()
		l.stats.Refreshes++
		l.stats.RefreshErrors++
		l.mu.Unlock()
		return false, err
	}
	return l.SetMaps(pid, ms)
}

// SetMaps is Refresh with pid's maps already read (procmaps.Read), so the
// agent reads them once for the loader and the symbolizer.
func (l *Loader) SetMaps(pid uint32, maps []procmaps.Mapping) (changed bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stats.Refreshes++
	changed, err = l.refresh(pid, maps)
	if err != nil {
		l.stats.RefreshErrors++
	}
	return changed, err
}

func (l *Loader) refresh(pid uint32, maps []procmaps.Mapping) (bool, error) {
	dir := filepath.Join(l.cfg.ProcRoot, strconv.FormatUint(uint64(pid), 10))
	ms := execMaps(maps)
	l.tick++
	var out []Mapping
	var files []*file
	for _, m := range ms {
		if len(out) == MaxMappings {
			break
		}
		f := l.fileFor(dir, m)
		if f != nil && (len(files) == 0 || files[len(files)-1] != f) {
			files = append(files, f)
		}
		wm := Mapping{Start: m.start, End: m.end}
		if f != nil && f.id != 0 && !f.noTable {
			if bias, ok := f.bias(m); ok {
				wm.Bias, wm.FileID = bias, f.id
			}
		}
		out = append(out, wm)
	}
	l.procs[pid] = files
	delete(l.exited, pid) // pid reused
	old, known := l.maps[pid]
	if known && slices.Equal(old, out) {
		return false, nil
	}
	if err := l.tab.SetProcess(pid, out); err != nil {
		return false, fmt.Errorf("write mappings of %d: %w", pid, err)
	}
	l.maps[pid] = out
	return true, nil
}

// bias returns pc - vaddr for pcs in m.
func (f *file) bias(m procMap) (uint64, bool) {
	for _, s := range f.segs {
		if m.off >= s.off && m.off < s.off+max(s.filesz, 1) {
			return m.start - m.off + s.off - s.vaddr, true
		}
	}
	return 0, false
}

// fileFor returns the file of m, identifying it on first sight, or nil.
func (l *Loader) fileFor(dir string, m procMap) *file {
	if m.path == vdso.Path {
		return l.vdsoFile(m)
	}
	key := m.dev + ":" + strconv.FormatUint(m.inode, 10)
	f := l.byKey[key]
	if f == nil {
		f = l.open(dir, m)
		if f == nil {
			return nil
		}
		l.byKey[key] = f
	}
	f.lastUse = l.tick
	return f
}

// openELF opens the file behind m: through map_files (works for deleted
// files and other mount namespaces), else through the process's root.
func openELF(dir string, m procMap) (*elf.File, error) {
	f, err := elf.Open(filepath.Join(dir, "map_files", fmt.Sprintf("%x-%x", m.start, m.end)))
	if err == nil {
		return f, nil
	}
	return elf.Open(filepath.Join(dir, "root", m.path))
}

// vdsoFile returns the vDSO's file for a process's [vdso] mapping m, or nil
// if the agent's own vDSO cannot be read or m is not the same image (a
// 32-bit process maps another): the kernel maps one vDSO image into every
// 64-bit process, so the agent's copy stands for theirs.
func (l *Loader) vdsoFile(m procMap) *file {
	if !l.vdsoRead {
		l.vdsoRead = true
		img, err := vdso.Image(l.cfg.ProcRoot)
		if err != nil {
			return nil
		}
		ef, err := elf.NewFile(bytes.NewReader(img))
		if err != nil {
			return nil
		}
		l.vdso = l.identify(ef, vdso.Path)
		l.vdso.image = img
		l.byKey[vdso.Path] = l.vdso
	}
	if l.vdso == nil || m.off != 0 || m.end-m.start != uint64(len(l.vdso.image)) {
		return nil
	}
	l.vdso.lastUse = l.tick
	return l.vdso
}

// open identifies a new file (by build id where it has one) without
// building its table.
func (l *Loader) open(dir string, m procMap) *file {
	ef, err := openELF(dir, m)
	if err != nil {
		return nil // gone or not ELF: next refresh tries again
	}
	defer ef.Close()
	return l.identify(ef, m.path)
}

// identify returns the file of ef (found at path), known by its build id or
// given a file id now.
func (l *Loader) identify(ef *elf.File, path string) *file {
	bid := buildID(ef)
	if bid != "" {
		if f := l.byBuild[bid]; f != nil {
			return f
		}
	}
	f := &file{path: path, buildID: bid, cfiBytes: cfiSize(ef)}
	// Both known before any build, so the process's mappings never change
	// from "table coming" to "frame pointers".
	if !hasCFI(ef) {
		l.stats.NoCFI++
		f.noTable = true
		return f
	}
	if f.cfiBytes > uint64(l.cfg.MaxCFIBytes) {
		l.stats.CompileErrors++
		f.noTable = true
		return f
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD {
			f.segs = append(f.segs, segment{off: p.Off, vaddr: p.Vaddr, filesz: p.Filesz})
		}
	}
	if int(l.nextID) >= l.cfg.MaxFiles {
		l.stats.OutOfIDs++
		f.noTable = true
		return f
	}
	f.id = l.nextID
	l.nextID++
	l.byID = append(l.byID, f)
	if bid != "" {
		l.byBuild[bid] = f
	}
	return f
}

// build reads j's table from the cache or compiles it, without holding
// the lock, then loads it.
func (l *Loader) build(j job) {
	var (
		rows          compiled
		err           error
		hit           bool
		cacheFailures uint64
	)
	if l.cache != nil && j.f.buildID != "" {
		var cerr error
		rows.rows, hit, cerr = l.cache.get(j.f.buildID)
		if cerr != nil {
			cacheFailures++ // corrupt: removed, compiled again below
		}
	}
	if !hit {
		rows, err = compileFile(j, l.cfg)
		if err == nil && l.cache != nil && j.f.buildID != "" && len(rows.rows) <= l.cfg.Rows() {
			if cerr := l.cache.put(j.f.buildID, rows.rows); cerr != nil {
				cacheFailures++
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	j.f.queued = false
	l.stats.CacheErrors += cacheFailures
	if l.cache != nil {
		l.stats.CacheBytes, l.stats.CacheEvicted = l.cache.counters()
	}
	if hit {
		l.stats.CacheHits++
	} else {
		l.stats.Builds++
		l.stats.BuildTime += rows.took
	}
	switch {
	case errors.Is(err, errGone):
		return // queued again at its next sample
	case errors.Is(err, ErrNoCFI):
		l.stats.NoCFI++
		j.f.noTable = true
		return
	case err == nil && len(rows.rows) > l.cfg.Rows():
		err = ErrTooLarge
	}
	if err != nil {
		l.stats.CompileErrors++
		j.f.noTable = true
		return
	}
	l.load(j.f, rows.rows)
}

// errGone means the file could not be opened any more.
var errGone = errors.New("file gone")

type compiled struct {
	rows []Row
	took time.Duration
}

// openJob opens j's file through the sampled process, or when it is gone
// (a short-lived process) by its path, if the file there has the same
// build id; the vDSO from the agent's copy.
func openJob(j job, procRoot string) (*elf.File, error) {
	if j.f.image != nil {
		return elf.NewFile(bytes.NewReader(j.f.image))
	}
	dir := filepath.Join(procRoot, strconv.FormatUint(uint64(j.pid), 10))
	ef, err := openELF(dir, procMap{start: j.m.Start, end: j.m.End, path: j.f.path})
	if err == nil || j.f.buildID == "" {
		return ef, err
	}
	ef, herr := elf.Open(j.f.path)
	if herr != nil {
		return nil, errors.Join(err, herr)
	}
	if buildID(ef) != j.f.buildID {
		_ = ef.Close()
		return nil, fmt.Errorf("%s: build id changed: %w", j.f.path, err)
	}
	return ef, nil
}

// compileFile opens and compiles j's file.
func compileFile(j job, cfg Config) (compiled, error) {
	ef, err := openJob(j, cfg.ProcRoot)
	if err != nil {
		return compiled{}, fmt.Errorf("%w: %w", errGone, err)
	}
	defer ef.Close()
	if !hasCFI(ef) {
		return compiled{}, ErrNoCFI
	}
	if size := cfiSize(ef); size > uint64(cfg.MaxCFIBytes) {
		return compiled{}, fmt.Errorf("%w: %d bytes of CFI", ErrTooLarge, size)
	}
	start := time.Now()
	rows, err := Build(ef)
	return compiled{rows: rows, took: time.Since(start)}, err
}

// cfiSize returns the bytes of f's .eh_frame and .debug_frame.
func cfiSize(f *elf.File) uint64 {
	var size uint64
	for _, name := range []string{".eh_frame", ".debug_frame"} {
		if s := f.Section(name); s != nil {
			size += s.Size
		}
	}
	return size
}

// hasCFI reports whether f has CFI worth compiling: Go code keeps frame
// pointers (and its .debug_frame is large).
func hasCFI(f *elf.File) bool {
	if f.Section(".gopclntab") != nil || f.Section(".go.buildinfo") != nil {
		return false
	}
	for _, name := range []string{".eh_frame", ".debug_frame"} {
		if s := f.Section(name); s != nil && s.Type != elf.SHT_NOBITS && s.Size > 0 {
			return true
		}
	}
	return false
}

// load writes rows as f's table, evicting others to make room.
func (l *Loader) load(f *file, rows []Row) {
	first, ok := l.alloc(uint32(len(rows)), f)
	if !ok {
		l.stats.CompileErrors++
		return
	}
	if err := l.tab.WriteRows(first, rows); err != nil {
		l.release(first, uint32(len(rows)))
		l.stats.CompileErrors++
		return
	}
	if err := l.tab.SetFile(f.id, first, uint32(len(rows))); err != nil {
		l.release(first, uint32(len(rows)))
		l.stats.CompileErrors++
		return
	}
	f.first, f.rows = first, uint32(len(rows))
	l.stats.Files++
	l.stats.Rows += len(rows)
}

// alloc finds n contiguous free rows. When no free range is long enough it
// evicts the tables of one window of n rows (see evictWindow), never
// keep's, and takes the range they leave.
func (l *Loader) alloc(n uint32, keep *file) (uint32, bool) {
	if first, ok := l.bestFit(n); ok {
		return first, true
	}
	if !l.evictWindow(n, keep) {
		return 0, false
	}
	return l.bestFit(n)
}

// bestFit takes n rows from the shortest free range long enough, keeping
// the long ones for large tables.
func (l *Loader) bestFit(n uint32) (uint32, bool) {
	best := -1
	for i, s := range l.free {
		if s.n >= n && (best < 0 || s.n < l.free[best].n) {
			best = i
		}
	}
	if best < 0 {
		return 0, false
	}
	s := l.free[best]
	l.free[best] = span{s.first + n, s.n - n}
	if l.free[best].n == 0 {
		l.free = slices.Delete(l.free, best, best+1)
	}
	return s.first, true
}

// region is a free range (f nil) or a loaded table of unwind_rows.
type region struct {
	first, n uint32
	f        *file
	barrier  bool // keep's table, or rows neither free nor a table's
}

// evictWindow evicts the tables of the run of adjacent regions (free
// ranges and tables) that holds n rows and whose most recently used table
// is the least recent, fewest rows evicted on a tie: for a table that fits
// in one victim's rows that is least recently used eviction, and a larger
// table takes neighbours instead of least recently used tables all over
// the array, which left free ranges scattered between the tables in use
// and evicted many more rows than it needed (TestEvictionChurn).
func (l *Loader) evictWindow(n uint32, keep *file) bool {
	regs := l.regions(keep)
	const none = ^uint64(0)
	var (
		bestI, bestJ         = -1, -1
		bestUse, bestEvicted = none, uint32(0)
		j                    int
		have, evicted        uint32
		newest               []int // tables of regs[i:j], lastUse decreasing
	)
	for i := range regs {
		if j < i { // regs[i-1] was a barrier
			j, have, evicted, newest = i, 0, 0, newest[:0]
		}
		if regs[i].barrier {
			continue
		}
		for have < n && j < len(regs) && !regs[j].barrier {
			r := regs[j]
			have += r.n
			if r.f != nil {
				evicted += r.n
				for len(newest) > 0 && regs[newest[len(newest)-1]].f.lastUse <= r.f.lastUse {
					newest = newest[:len(newest)-1]
				}
				newest = append(newest, j)
			}
			j++
		}
		if have >= n {
			use := uint64(0)
			if len(newest) > 0 {
				use = regs[newest[0]].f.lastUse
			}
			if use < bestUse || use == bestUse && evicted < bestEvicted {
				bestI, bestJ, bestUse, bestEvicted = i, j, use, evicted
			}
		}
		have -= regs[i].n
		if regs[i].f != nil {
			evicted -= regs[i].n
		}
		if len(newest) > 0 && newest[0] == i {
			newest = newest[1:]
		}
	}
	if bestI < 0 {
		return false
	}
	for _, r := range regs[bestI:bestJ] {
		if r.f != nil && !l.evict(r.f) {
			return false
		}
	}
	return true
}

// regions returns unwind_rows as free ranges and tables in row order, keep's
// table and any rows unaccounted for as barriers.
func (l *Loader) regions(keep *file) []region {
	regs := make([]region, 0, len(l.free)+l.stats.Files)
	for _, s := range l.free {
		regs = append(regs, region{first: s.first, n: s.n})
	}
	for _, f := range l.byID[1:] {
		if f.rows > 0 {
			regs = append(regs, region{first: f.first, n: f.rows, f: f, barrier: f == keep})
		}
	}
	slices.SortFunc(regs, func(a, b region) int { return cmpU32(a.first, b.first) })
	out := regs[:0:0]
	next := uint32(0)
	for _, r := range regs {
		if r.first > next {
			out = append(out, region{first: next, n: r.first - next, barrier: true})
		}
		out = append(out, r)
		next = r.first + r.n
	}
	return out
}

// evict unloads victim's table.
func (l *Loader) evict(victim *file) bool {
	// Unlink before the rows are reused so no walk follows foreign rows.
	if err := l.tab.SetFile(victim.id, 0, 0); err != nil {
		return false
	}
	l.release(victim.first, victim.rows)
	l.stats.Files--
	l.stats.Rows -= int(victim.rows)
	l.stats.Evictions++
	victim.first, victim.rows = 0, 0
	return true
}

// release returns rows to the free list, merging neighbours.
func (l *Loader) release(first, n uint32) {
	i, _ := slices.BinarySearchFunc(l.free, first, func(s span, f uint32) int { return cmpU32(s.first, f) })
	l.free = slices.Insert(l.free, i, span{first, n})
	if i+1 < len(l.free) && l.free[i].first+l.free[i].n == l.free[i+1].first {
		l.free[i].n += l.free[i+1].n
		l.free = slices.Delete(l.free, i+1, i+2)
	}
	if i > 0 && l.free[i-1].first+l.free[i-1].n == l.free[i].first {
		l.free[i-1].n += l.free[i].n
		l.free = slices.Delete(l.free, i, i+1)
	}
}

// buildID returns the hex GNU build id of f, or "".
func buildID(f *elf.File) string {
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOTE {
			continue
		}
		data, err := s.Data()
		if err != nil {
			continue
		}
		for len(data) >= 12 {
			nameSz := int(f.ByteOrder.Uint32(data))
			descSz := int(f.ByteOrder.Uint32(data[4:]))
			typ := f.ByteOrder.Uint32(data[8:])
			nameEnd := 12 + (nameSz+3)&^3
			descEnd := nameEnd + (descSz+3)&^3
			if nameSz < 0 || descSz < 0 || descEnd > len(data) {
				break
			}
			if typ == 3 && nameSz == 4 && bytes.Equal(data[12:15], []byte("GNU")) {
				return hex.EncodeToString(data[nameEnd : nameEnd+descSz])
			}
			data = data[descEnd:]
		}
	}
	return ""
}

// procMap is one executable file mapping of /proc/PID/maps.
type procMap struct {
	start, end, off uint64
	dev             string
	inode           uint64
	path            string
}

// execMaps returns the executable file-backed mappings of ms and the
// vDSO's, sorted by start (as the kernel lists them).
func execMaps(ms []procmaps.Mapping) []procMap {
	var out []procMap
	for _, m := range ms {
		if !m.Exec || !m.FileBacked() && m.Path != vdso.Path || m.End <= m.Start {
			continue
		}
		out = append(out, procMap{start: m.Start, end: m.End, off: m.Offset, dev: m.Dev, inode: m.Inode, path: m.Path})
	}
	slices.SortFunc(out, func(a, b procMap) int { return cmp.Compare(a.start, b.start) })
	return out
}
