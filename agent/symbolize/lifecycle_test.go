package symbolize

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/internal/testenv"
)

// fakeProc is a procfs tree under a temp dir whose processes map real
// binaries built by the test, so lifecycle cases (pid reuse, exit, maps
// changing) are deterministic.
type fakeProc struct{ root string }

func newFakeProc(t *testing.T) fakeProc {
	return fakeProc{root: t.TempDir()}
}

// set writes pid's stat (with start time) and maps and makes its root "/".
func (f fakeProc) set(t *testing.T, pid uint32, start uint64, maps ...string) {
	t.Helper()
	dir := filepath.Join(f.root, fmt.Sprint(pid))
	if err := os.MkdirAll(filepath.Join(dir, "map_files"), 0o755); err != nil {
		t.Fatal(err)
	}
	stat := fmt.Sprintf("%d (fake) S%s %d 0 0\n", pid, strings.Repeat(" 0", 18), start)
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "maps"), []byte(strings.Join(maps, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "root")); err != nil {
		if err := os.Symlink("/", filepath.Join(dir, "root")); err != nil {
			t.Fatal(err)
		}
	}
}

func (f fakeProc) remove(t *testing.T, pid uint32) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(f.root, fmt.Sprint(pid))); err != nil {
		t.Fatal(err)
	}
}

// mapsLine is the maps line of bin's executable segment loaded at bias,
// shown under path (which may differ from bin, e.g. "(deleted)").
func mapsLine(t *testing.T, bin, path string, bias uint64) (line string, start, end uint64) {
	t.Helper()
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	var st syscall.Stat_t
	if err := syscall.Stat(bin, &st); err != nil {
		t.Fatal(err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 {
			start = bias + p.Vaddr&^0xfff
			end = (bias + p.Vaddr + p.Filesz + 0xfff) &^ 0xfff
			line = fmt.Sprintf("%x-%x r-xp %08x fd:01 %d %s\n", start, end, p.Off&^0xfff, st.Ino, path)
			return line, start, end
		}
	}
	t.Fatalf("%s has no executable segment", bin)
	return "", 0, 0
}

func TestLifecycle(t *testing.T) {
	exe := buildC(t, false)
	pie := buildC(t, true)
	exeA := nmSymbols(t, exe)["a"].addr + 4
	const pieBias = 0x555555554000
	pieA := nmSymbols(t, pie)["a"].addr + pieBias + 4
	exeLine, exeStart, exeEnd := mapsLine(t, exe, exe, 0)
	pieLine, _, _ := mapsLine(t, pie, pie, pieBias)

	sym := func(s *Symbolizer, pid uint32, pc uint64) string {
		got := s.Symbolize(pid, []uint64{pc}, nil)
		if len(got) != 1 {
			t.Fatalf("Symbolize returned %q", got)
		}
		return got[0]
	}

	t.Run("maps re-read on miss (dlopen)", func(t *testing.T) {
		fp := newFakeProc(t)
		s := newTestSymbolizer(t, Config{ProcRoot: fp.root, MinRefresh: time.Nanosecond})
		fp.set(t, 10, 100)
		if err := s.ProcessStarted(10); err != nil {
			t.Fatal(err)
		}
		if got := sym(s, 10, exeA); got != "[unknown]" {
			t.Errorf("before mapping: %q", got)
		}
		// Several misses in one sample re-read the maps once.
		before := s.Stats().MapsReads
		s.Symbolize(10, []uint64{exeA, exeA + 1, exeA + 2}, nil)
		if got := s.Stats().MapsReads - before; got != 1 {
			t.Errorf("maps read %d times for one sample, want 1", got)
		}
		fp.set(t, 10, 100, exeLine)
		if got := sym(s, 10, exeA); got != "a" {
			t.Errorf("after mapping appeared: %q", got)
		}
	})

	t.Run("maps re-read once per drain within MinRefresh", func(t *testing.T) {
		fp := newFakeProc(t)
		s := newTestSymbolizer(t, Config{ProcRoot: fp.root, MinRefresh: time.Hour})
		fp.set(t, 12, 100) // read at exec, before the loader mapped the code
		if err := s.ProcessStarted(12); err != nil {
			t.Fatal(err)
		}
		fp.set(t, 12, 100, exeLine)
		if got := sym(s, 12, exeA); got != "[unknown]" {
			t.Errorf("same drain, within MinRefresh: %q, want [unknown] (no re-read)", got)
		}
		s.NextDrain()
		if got := sym(s, 12, exeA); got != "a" {
			t.Errorf("next drain: %q, want a (maps re-read)", got)
		}
		before := s.Stats().MapsReads
		sym(s, 12, 0x10)
		sym(s, 12, 0x20)
		if got := s.Stats().MapsReads - before; got != 0 {
			t.Errorf("misses after the drain's re-read read maps %d more times, want 0", got)
		}
	})

	t.Run("pid reuse", func(t *testing.T) {
		fp := newFakeProc(t)
		s := newTestSymbolizer(t, Config{ProcRoot: fp.root, MinRefresh: time.Nanosecond})
		fp.set(t, 11, 100, exeLine)
		if got := sym(s, 11, exeA); got != "a" {
			t.Fatalf("first process: %q", got)
		}
		// Same pid, new process without an exec event: the miss-triggered
		// re-read maps the new image.
		fp.set(t, 11, 200, pieLine)
		if got := sym(s, 11, pieA); got != "a" {
			t.Errorf("second process: %q", got)
		}
		if got := sym(s, 11, exeA); got != "[unknown]" {
			t.Errorf("first process's address in the second: %q", got)
		}
	})

	t.Run("exit grace", func(t *testing.T) {
		for _, tt := range []struct {
			grace time.Duration
			want  string
			procs int
		}{
			{time.Hour, "a", 1},
			{time.Nanosecond, "[unknown]", 0},
		} {
			fp := newFakeProc(t)
			s := newTestSymbolizer(t, Config{ProcRoot: fp.root, ExitGrace: tt.grace})
			fp.set(t, 12, 100, exeLine)
			if err := s.ProcessStarted(12); err != nil {
				t.Fatal(err)
			}
			s.ProcessExited(12)
			fp.remove(t, 12)
			if got := sym(s, 12, exeA); got != tt.want {
				t.Errorf("grace %v: after exit %q, want %q", tt.grace, got, tt.want)
			}
			if got := s.Stats().Processes; got != tt.procs {
				t.Errorf("grace %v: Processes = %d, want %d", tt.grace, got, tt.procs)
			}
		}
	})

	t.Run("objects shared and bounded", func(t *testing.T) {
		fp := newFakeProc(t)
		s := newTestSymbolizer(t, Config{ProcRoot: fp.root, MaxFiles: 1})
		fp.set(t, 20, 100, exeLine)
		fp.set(t, 21, 100, exeLine)
		fp.set(t, 22, 100, pieLine)
		for _, pid := range []uint32{20, 21, 22} {
			if err := s.ProcessStarted(pid); err != nil {
				t.Fatal(err)
			}
		}
		st := s.Stats()
		// Both are referenced by live processes: neither is evicted.
		if st.FileMisses != 2 || st.FileHits != 1 || st.FilesCached != 2 {
			t.Errorf("stats = %+v, want 2 misses, 1 hit, 2 cached", st)
		}
		// Evicted from the cache, still referenced by its process.
		if got := sym(s, 20, exeA); got != "a" {
			t.Errorf("evicted object's process: %q", got)
		}
		if got := sym(s, 22, pieA); got != "a" {
			t.Errorf("cached object's process: %q", got)
		}
	})

	t.Run("unreferenced objects evicted", func(t *testing.T) {
		fp := newFakeProc(t)
		s := newTestSymbolizer(t, Config{ProcRoot: fp.root, MaxFiles: 1, ExitGrace: time.Nanosecond})
		fp.set(t, 20, 100, exeLine)
		fp.set(t, 22, 100, pieLine)
		fp.set(t, 23, 100)
		for _, pid := range []uint32{20, 22} {
			if err := s.ProcessStarted(pid); err != nil {
				t.Fatal(err)
			}
		}
		if got := sym(s, 22, pieA); got != "a" {
			t.Errorf("before exit: %q", got)
		}
		s.ProcessExited(20)
		s.ProcessExited(22)
		time.Sleep(time.Millisecond)                 // past the grace period
		if err := s.ProcessStarted(23); err != nil { // sweeps
			t.Fatal(err)
		}
		if st := s.Stats(); st.FilesCached != 1 || st.Processes != 1 {
			t.Errorf("after exits: %+v, want 1 cached object (MaxFiles), 1 process", st)
		}
		// The most recently released one (pie) stays cached.
		fp.set(t, 24, 100, pieLine)
		if err := s.ProcessStarted(24); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.FileMisses != 2 || st.FileHits != 1 {
			t.Errorf("after restart: %+v, want a hit for the cached object", st)
		}
		if got := sym(s, 24, pieA); got != "a" {
			t.Errorf("cached object after restart: %q", got)
		}
	})

	t.Run("deleted file via map_files", func(t *testing.T) {
		fp := newFakeProc(t)
		s := newTestSymbolizer(t, Config{ProcRoot: fp.root})
		line, _, _ := mapsLine(t, exe, "/gone/chain (deleted)", 0)
		fp.set(t, 13, 100, line)
		link := filepath.Join(fp.root, "13", "map_files", fmt.Sprintf("%x-%x", exeStart, exeEnd))
		if err := os.Symlink(exe, link); err != nil {
			t.Fatal(err)
		}
		if got := sym(s, 13, exeA); got != "a" {
			t.Errorf("deleted file: %q", got)
		}
		if err := os.Remove(link); err != nil {
			t.Fatal(err)
		}
		s2 := newTestSymbolizer(t, Config{ProcRoot: fp.root})
		if got := sym(s2, 13, exeA); !strings.HasPrefix(got, "[unknown] chain+0x") {
			t.Errorf("unreadable file: %q, want [unknown] chain+0x...", got)
		}
	})

	t.Run("known file found by dev and inode", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "chain")
		copyFile(t, exe, bin)
		line, _, _ := mapsLine(t, bin, bin, 0)
		fp := newFakeProc(t)
		s := newTestSymbolizer(t, Config{ProcRoot: fp.root})
		fp.set(t, 30, 100, line)
		if err := s.ProcessStarted(30); err != nil {
			t.Fatal(err)
		}
		// Gone by its path: only the maps line's dev and inode can find it
		// (the cache holds it open, so the inode is not reused meanwhile).
		if err := os.Remove(bin); err != nil {
			t.Fatal(err)
		}
		fp.set(t, 31, 100, line)
		if got := sym(s, 31, exeA); got != "a" {
			t.Errorf("second process of a known file: %q", got)
		}
		if st := s.Stats(); st.FileMisses != 1 || st.FileHits != 1 || st.FileErrors != 0 {
			t.Errorf("stats = %+v, want 1 miss, 1 hit, 0 errors", st)
		}
	})

	t.Run("file rewritten in place read again", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "chain")
		copyFile(t, exe, bin)
		line, _, _ := mapsLine(t, bin, bin, 0)
		fp := newFakeProc(t)
		s := newTestSymbolizer(t, Config{ProcRoot: fp.root})
		fp.set(t, 32, 100, line)
		if got := sym(s, 32, exeA); got != "a" {
			t.Fatalf("before the rewrite: %q", got)
		}
		copyFile(t, pie, bin) // same inode, other contents
		line, _, _ = mapsLine(t, bin, bin, pieBias)
		fp.set(t, 33, 100, line)
		if got := sym(s, 33, pieA); got != "a" {
			t.Errorf("after the rewrite: %q (the old contents' symbols?)", got)
		}
		if st := s.Stats(); st.FileMisses != 2 {
			t.Errorf("stats = %+v, want 2 misses (the file parsed again)", st)
		}
	})

	t.Run("frame order", func(t *testing.T) {
		fp := newFakeProc(t)
		s := newTestSymbolizer(t, Config{ProcRoot: fp.root, NoKernel: true})
		fp.set(t, 14, 100, exeLine)
		syms := nmSymbols(t, exe)
		user := []uint64{syms["c"].addr + 4, 0, syms["b"].addr + 5, syms["main"].addr + 5}
		want := []string{"main", "b", "c", "[unknown]_[k]", "[unknown]_[k]"}
		if got := s.Symbolize(14, user, []uint64{0xffffffff81000001, 0xffffffff81000002}); !slices.Equal(got, want) {
			t.Errorf("Symbolize = %q, want %q", got, want)
		}
		if st := s.Stats(); st.Frames != 5 || st.UnknownFrames != 2 {
			t.Errorf("stats = %+v, want 5 frames, 2 unknown", st)
		}
	})
}

// TestConcurrentUse runs the public methods from several goroutines; run
// with -race.
func TestConcurrentUse(t *testing.T) {
	exe := buildC(t, false)
	exeA := nmSymbols(t, exe)["a"].addr + 4
	line, _, _ := mapsLine(t, exe, exe, 0)
	fp := newFakeProc(t)
	for pid := uint32(30); pid < 34; pid++ {
		fp.set(t, pid, 100, line)
	}
	s := newTestSymbolizer(t, Config{ProcRoot: fp.root, NoKernel: true})
	done := make(chan string)
	for pid := uint32(30); pid < 34; pid++ {
		go func() {
			var last string
			for i := range 200 {
				if i%50 == 0 {
					if err := s.ProcessStarted(pid); err != nil {
						done <- err.Error()
						return
					}
				}
				last = s.Symbolize(pid, []uint64{exeA}, []uint64{1})[0]
				_ = s.Stats()
			}
			s.ProcessExited(pid)
			done <- last
		}()
	}
	for range 4 {
		if got := <-done; got != "a" {
			t.Errorf("goroutine result %q, want a", got)
		}
	}
}

func TestVDSO(t *testing.T) {
	pid := uint32(os.Getpid())
	var vdso *mapping
	for _, m := range readTestMaps(t, pid) {
		if m.path == "[vdso]" {
			vdso = &m
		}
	}
	if vdso == nil {
		testenv.Skip(t, testenv.KernelFeature, "no [vdso] mapping in this process")
	}
	s := newTestSymbolizer(t, Config{})
	o := s.vdsoObject()
	if o == nil {
		t.Fatal("could not parse the vDSO")
	}
	var addr uint64
	for _, sy := range o.syms {
		if strings.Contains(sy.name, "clock_gettime") {
			addr = sy.addr
		}
	}
	if addr == 0 {
		t.Fatalf("no clock_gettime in vDSO symbols %v", o.syms)
	}
	fileOff := uint64(0)
	for _, seg := range o.segments {
		if addr >= seg.vaddr && addr < seg.vaddr+seg.filesz {
			fileOff = addr - seg.vaddr + seg.off
		}
	}
	got := s.Symbolize(pid, []uint64{vdso.start + fileOff - vdso.offset + 2}, nil)
	if len(got) != 1 || !strings.Contains(got[0], "clock_gettime") {
		t.Errorf("vDSO address = %q, want *clock_gettime", got)
	}
}

// copyFile writes src's contents to dst, in place if dst exists (its inode
// stays).
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
