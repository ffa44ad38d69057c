package unwind

import (
	"slices"
	"testing"

	"github.com/fleetprof/fleetprof/agent/procmaps"
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
