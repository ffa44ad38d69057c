package unwind

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/fleetprof/fleetprof/agent/procmaps"
	"github.com/fleetprof/fleetprof/agent/vdso"
)

func TestExecMaps(t *testing.T) {
	in := []byte(`55d0c0a00000-55d0c0a01000 r--p 00000000 fd:01 1234 /tmp/chain
55d0c0a01000-55d0c0a02000 r-xp 00001000 fd:01 1234 /tmp/chain
7f0000000000-7f0000020000 r-xp 00028000 fd:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7f1000000000-7f1000001000 r-xp 00000000 00:00 0 [vdso]
7f2000000000-7f2000001000 r-xp 00000000 fd:01 7 /tmp/with space (deleted)
bad line
`)
	ms, err := procmaps.Parse(in)
	if err == nil {
		t.Error("no error for the bad line")
	}
	got := execMaps(ms)
	want := []procMap{
		{start: 0x55d0c0a01000, end: 0x55d0c0a02000, off: 0x1000, dev: "fd:01", inode: 1234, path: "/tmp/chain"},
		{start: 0x7f0000000000, end: 0x7f0000020000, off: 0x28000, dev: "fd:01", inode: 99, path: "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		{start: 0x7f1000000000, end: 0x7f1000001000, dev: "00:00", path: vdso.Path},
		{start: 0x7f2000000000, end: 0x7f2000001000, dev: "fd:01", inode: 7, path: "/tmp/with space (deleted)"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d mappings %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestBias(t *testing.T) {
	f := &file{segs: []segment{{off: 0, vaddr: 0, filesz: 0x1000}, {off: 0x1000, vaddr: 0x401000, filesz: 0x2000}}}
	b, ok := f.bias(procMap{start: 0x401000, off: 0x1000})
	if !ok || b != 0 {
		t.Errorf("non-PIE bias %#x %v, want 0", b, ok)
	}
	f = &file{segs: []segment{{off: 0x1000, vaddr: 0x1000, filesz: 0x2000}}}
	b, ok = f.bias(procMap{start: 0x55d0c0a01000, off: 0x1000})
	if !ok || b != 0x55d0c0a00000 {
		t.Errorf("PIE bias %#x %v", b, ok)
	}
}

func TestAllocRelease(t *testing.T) {
	l := &Loader{free: []span{{0, 100}}}
	a, _ := l.alloc(40, nil)
	b, _ := l.alloc(60, nil)
	if a != 0 || b != 40 || len(l.free) != 0 {
		t.Fatalf("alloc: %d %d free %v", a, b, l.free)
	}
	l.release(0, 40)
	l.release(40, 60)
	if len(l.free) != 1 || l.free[0] != (span{0, 100}) {
		t.Errorf("release did not merge: %v", l.free)
	}
}

// TestNextOrder checks the build order: most samples per byte of CFI
// first, large files only in their own lane.
func TestNextOrder(t *testing.T) {
	l, err := NewLoader(Config{LargeCFIBytes: 1 << 20, CacheDir: CacheOff}, nil)
	if err != nil {
		t.Fatal(err)
	}
	small := &file{id: 1, cfiBytes: 8 << 10, hits: 2}
	hotter := &file{id: 2, cfiBytes: 200 << 10, hits: 100}
	large := &file{id: 3, cfiBytes: 4 << 20, hits: 1000}
	for _, tc := range []struct {
		name string
		lane int
		want []uint32 // file ids in the order taken
	}{
		{"small lane", laneSmall, []uint32{2, 1}},
		{"large lane", laneLarge, []uint32{3}},
		{"any", laneAny, []uint32{2, 3, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l.queue = map[*file]job{}
			for _, f := range []*file{small, hotter, large} {
				l.queue[f] = job{f: f}
			}
			var got []uint32
			for {
				j, ok := l.next(tc.lane)
				if !ok {
					break
				}
				got = append(got, j.f.id)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("order %v, want %v", got, tc.want)
			}
		})
	}
}

// BenchmarkSampled matches one drain's stacks to files: 20,000 stacks of
// 64 frames over 40 mappings (a busy 99 Hz flush), all files built.
func BenchmarkSampled(b *testing.B) {
	l, err := NewLoader(Config{CacheDir: CacheOff}, nil)
	if err != nil {
		b.Fatal(err)
	}
	const pid, nmaps, stacks, depth = 1, 40, 20000, 64
	var ms []Mapping
	for i := range nmaps {
		f := &file{id: uint32(i + 1), rows: 1}
		l.byID = append(l.byID, f)
		ms = append(ms, Mapping{Start: uint64(i+1) << 24, End: uint64(i+1)<<24 + 1<<20, FileID: f.id})
	}
	l.maps[pid] = ms
	pcs := make([][]uint64, stacks)
	for i := range pcs {
		for d := range depth {
			m := ms[(i+d/8)%nmaps]
			pcs[i] = append(pcs[i], m.Start+uint64(i*d)%(m.End-m.Start))
		}
	}
	for b.Loop() {
		l.Sampled(func(yield func(uint32, []uint64) bool) {
			for _, p := range pcs {
				if !yield(pid, p) {
					return
				}
			}
		})
	}
}

// nopTables is a Tables that stores nothing (allocation tests).
type nopTables struct{}

func (nopTables) WriteRows(uint32, []Row) error        { return nil }
func (nopTables) SetFile(uint32, uint32, uint32) error { return nil }
func (nopTables) SetProcess(uint32, []Mapping) error   { return nil }
func (nopTables) DeleteProcess(uint32) error           { return nil }

// churnLoader returns a loader of budget rows and nfiles files of random
// sizes in [minRows, maxRows], none loaded.
func churnLoader(t *testing.T, budget, nfiles int, minRows, maxRows uint32, rng *rand.Rand) (*Loader, []*file, []uint32) {
	t.Helper()
	l, err := NewLoader(Config{MaxRowBytes: budget * RowSize, CacheDir: CacheOff}, nopTables{})
	if err != nil {
		t.Fatal(err)
	}
	files := make([]*file, nfiles)
	sizes := make([]uint32, nfiles)
	for i := range files {
		files[i] = &file{id: uint32(i + 1)}
		sizes[i] = minRows + rng.Uint32N(maxRows-minRows+1)
		l.byID = append(l.byID, files[i])
		l.byKey[strconv.Itoa(i)] = files[i]
	}
	return l, files, sizes
}

// compactingLoads is how many loads the accesses (file indexes) take with
// least recently used eviction into a budget that never fragments (as if
// tables were moved together): the floor for any allocator.
func compactingLoads(sizes []uint32, accesses []int, budget int) int {
	lastUse := map[int]int{}
	used, loads := 0, 0
	for step, f := range accesses {
		if _, ok := lastUse[f]; ok {
			lastUse[f] = step
			continue
		}
		for used+int(sizes[f]) > budget {
			victim := -1
			for v := range lastUse {
				if victim < 0 || lastUse[v] < lastUse[victim] {
					victim = v
				}
			}
			used -= int(sizes[victim])
			delete(lastUse, victim)
		}
		lastUse[f] = step
		used += int(sizes[f])
		loads++
	}
	return loads
}

// TestEvictionChurn loads tables of random sizes into a budget well below
// their total while the files in use drift (processes coming and going),
// and checks what each load evicts: only the tables of one window as long
// as the new table. Evicting least recently used tables one by one until a
// free range was long enough took tables all over the array.
func TestEvictionChurn(t *testing.T) {
	for _, tc := range []struct {
		name             string
		budget, nfiles   int
		minRows, maxRows uint32
		working          int // files in use at a time
		drift            int // steps between one file leaving the working set and the next joining
	}{
		{"mixed", 4096, 48, 16, 512, 12, 50},
		{"few large", 8192, 24, 64, 2048, 5, 40},
		{"many small", 4096, 200, 16, 96, 50, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const steps = 20000
			rng := rand.New(rand.NewPCG(1, 2))
			l, files, sizes := churnLoader(t, tc.budget, tc.nfiles, tc.minRows, tc.maxRows, rng)
			accesses := make([]int, steps)
			for step := range accesses {
				accesses[step] = (step/tc.drift + rng.IntN(tc.working)) % tc.nfiles
			}
			largest := uint64(slices.Max(sizes))
			var loads, loadedRows, evictedRows uint64
			for step, i := range accesses {
				l.tick++
				f := files[i]
				f.lastUse = l.tick
				if f.rows > 0 {
					continue
				}
				n := sizes[i]
				rowsBefore := uint64(l.stats.Rows)
				l.load(f, make([]Row, n))
				if f.rows != n {
					t.Fatalf("step %d: table of %d rows not loaded: %+v", step, n, l.stats)
				}
				evicted := rowsBefore + uint64(n) - uint64(l.stats.Rows)
				loads++
				loadedRows += uint64(n)
				evictedRows += evicted
				if evicted >= uint64(n)+largest {
					t.Errorf("step %d: a table of %d rows evicted %d rows, more than one window's tables", step, n, evicted)
				}
			}
			t.Logf("%d loads (%d without fragmentation), %d evictions, %.2f rows evicted per row loaded",
				loads, compactingLoads(sizes, accesses, tc.budget), l.stats.Evictions, float64(evictedRows)/float64(loadedRows))
		})
	}
}

// TestEvictWindow checks which tables a load evicts when no free range is
// long enough: 40 rows holding tables A-D of 10 rows (or free ranges "-").
func TestEvictWindow(t *testing.T) {
	for _, tc := range []struct {
		name    string
		layout  string   // one letter per 10 rows: a table or "-" (free)
		lastUse []uint64 // of the tables, in layout order
		keep    byte     // table that must stay (0: none)
		n       uint32
		victims string // tables evicted, after "!" if the load fails
		first   uint32 // where the new table goes
	}{
		{"least recently used", "ABCD", []uint64{1, 3, 2, 4}, 0, 10, "A", 0},
		{"neighbours, not scattered", "ABCD", []uint64{1, 3, 2, 4}, 0, 20, "AB", 0},
		{"free range joins", "A-CD", []uint64{5, 1, 2}, 0, 20, "C", 10},
		{"keep is never evicted", "ABCD", []uint64{1, 2, 3, 4}, 'A', 20, "BC", 10},
		{"too large", "ABCD", []uint64{1, 2, 3, 4}, 0, 50, "!", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewLoader(Config{MaxRowBytes: 40 * RowSize, CacheDir: CacheOff}, nopTables{})
			if err != nil {
				t.Fatal(err)
			}
			l.free = nil
			tables := map[byte]*file{}
			var keep *file
			for i := range len(tc.layout) {
				c, first := tc.layout[i], uint32(10*i)
				if c == '-' {
					l.release(first, 10)
					continue
				}
				f := &file{id: uint32(len(l.byID)), first: first, rows: 10, lastUse: tc.lastUse[len(tables)]}
				l.byID = append(l.byID, f)
				l.byKey[string(c)] = f
				l.stats.Files++
				l.stats.Rows += 10
				tables[c] = f
				if c == tc.keep {
					keep = f
				}
			}
			first, ok := l.alloc(tc.n, keep)
			var got []byte
			for c, f := range tables {
				if f.rows == 0 {
					got = append(got, c)
				}
			}
			slices.Sort(got)
			if !ok {
				got = append([]byte("!"), got...)
			}
			if string(got) != tc.victims || ok && first != tc.first {
				t.Errorf("evicted %q, table at %d; want %q at %d", got, first, tc.victims, tc.first)
			}
		})
	}
}

// TestEvictWindowBest compares the window evictWindow takes with every run
// of adjacent regions on random layouts: none holding n rows has an older
// newest table, or as old with fewer rows evicted.
func TestEvictWindowBest(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 500 {
		l, err := NewLoader(Config{MaxRowBytes: 1000 * RowSize, CacheDir: CacheOff}, nopTables{})
		if err != nil {
			t.Fatal(err)
		}
		l.free = nil
		var keep *file
		for first := uint32(0); first < 1000; {
			size := min(1+rng.Uint32N(80), 1000-first)
			switch rng.IntN(4) {
			case 0:
				l.release(first, size)
			case 1: // rows of neither (a failed write's)
			default:
				f := &file{id: uint32(len(l.byID)), first: first, rows: size, lastUse: rng.Uint64N(20)}
				l.byID = append(l.byID, f)
				l.byKey[strconv.Itoa(int(f.id))] = f
				l.stats.Files++
				l.stats.Rows += int(size)
				if keep == nil && rng.IntN(8) == 0 {
					keep = f
				}
			}
			first += size
		}
		n := 1 + rng.Uint32N(300)
		regs := l.regions(keep)
		score := func(rs []region) (uint64, uint32, bool) {
			var have, evicted uint32
			var newest uint64
			for _, r := range rs {
				if r.barrier {
					return 0, 0, false
				}
				have += r.n
				if r.f != nil {
					evicted += r.n
					newest = max(newest, r.f.lastUse)
				}
			}
			return newest, evicted, have >= n
		}
		bestUse, bestEvicted, found := uint64(0), uint32(0), false
		for i := range regs {
			for j := i + 1; j <= len(regs); j++ {
				use, evicted, ok := score(regs[i:j])
				if ok && (!found || use < bestUse || use == bestUse && evicted < bestEvicted) {
					bestUse, bestEvicted, found = use, evicted, true
				}
			}
		}
		before := map[*file]bool{}
		for _, f := range l.byID[1:] {
			before[f] = f.rows > 0
		}
		ok := l.evictWindow(n, keep)
		var use uint64
		var evicted uint32
		for f, loaded := range before {
			if loaded && f.rows == 0 {
				use = max(use, f.lastUse)
				evicted += rowsIn(f, regs)
			}
		}
		if ok != found || ok && (use != bestUse || evicted != bestEvicted) {
			t.Fatalf("round %d, n %d: took %v (newest %d, %d rows), best %v (newest %d, %d rows)", round, n, ok, use, evicted, found, bestUse, bestEvicted)
		}
		if _, fits := l.bestFit(n); ok && !fits {
			t.Fatalf("round %d: no free range of %d rows after evicting", round, n)
		}
	}
}

// rowsIn is f's row count in regs (its rows are 0 once evicted).
func rowsIn(f *file, regs []region) uint32 {
	for _, r := range regs {
		if r.f == f {
			return r.n
		}
	}
	return 0
}
