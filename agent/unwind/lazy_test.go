package unwind_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/fleetprof/fleetprof/agent/sampler/samplertest"
	"github.com/fleetprof/fleetprof/agent/unwind"
)

// TestLoaderLazy checks that a refresh builds nothing and that a sample
// builds exactly the table of the file it landed in.
func TestLoaderLazy(t *testing.T) {
	bin, pid := startChain(t)
	fake := samplertest.New(1)
	l, err := unwind.NewLoader(unwind.Config{CacheDir: unwind.CacheOff}, fake)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Refresh(pid); err != nil {
		t.Fatal(err)
	}
	l.BuildPending()
	if st := l.Stats(); st.Builds != 0 || st.Files != 0 || st.Queued != 0 {
		t.Fatalf("refresh without samples built tables: %+v", st)
	}
	maps := l.Mappings(pid)
	if len(maps) < 2 || maps[0].FileID == 0 {
		t.Fatalf("mappings of %d: %+v", pid, maps)
	}
	// The PIE binary is mapped below its libraries.
	exe := maps[0]
	pc := exe.Start + (exe.End-exe.Start)/2
	for range 2 { // a second drain's sample in the same file queues nothing
		l.Sampled(func(yield func(uint32, []uint64) bool) { yield(pid, []uint64{pc, pc}) })
	}
	if st := l.Stats(); st.Queued != 1 || st.Pending != 1 {
		t.Fatalf("after two drains with samples in one file: %+v", st)
	}
	if l.Ready(pid) {
		t.Error("ready before the sampled file's table is built")
	}
	l.BuildPending()
	if got, want := fake.FileRows(exe.FileID), rowsOf(t, bin); !slices.Equal(got, want) {
		t.Errorf("binary's table: %d rows, want %d", len(got), len(want))
	}
	for _, m := range maps {
		if m.FileID != 0 && m.FileID != exe.FileID && len(fake.FileRows(m.FileID)) != 0 {
			t.Errorf("file %d built without a sample in it", m.FileID)
		}
	}
	if st := l.Stats(); st.Builds != 1 || st.Files != 1 || st.Pending != 0 || !l.Ready(pid) {
		t.Errorf("after the build: %+v, ready %v", st, l.Ready(pid))
	}
}

// TestLoaderCache loads a process's tables through a disk cache: a second
// loader (a restart) reads every table instead of compiling it, and a
// corrupt cache file is ignored, compiled again and rewritten.
func TestLoaderCache(t *testing.T) {
	_, pid := startChain(t)
	dir := t.TempDir()
	load := func() (unwind.Stats, map[uint32][]unwind.Row) {
		t.Helper()
		fake := samplertest.New(1)
		l, err := unwind.NewLoader(unwind.Config{CacheDir: dir}, fake)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Refresh(pid); err != nil {
			t.Fatal(err)
		}
		sampleAll(l, pid)
		l.BuildPending()
		tables := map[uint32][]unwind.Row{}
		for _, m := range l.Mappings(pid) {
			if m.FileID != 0 {
				tables[m.FileID] = fake.FileRows(m.FileID)
			}
		}
		return l.Stats(), tables
	}
	first, want := load()
	files, err := filepath.Glob(filepath.Join(dir, "*.rows"))
	if err != nil {
		t.Fatal(err)
	}
	if first.Builds < 2 || first.CacheHits != 0 || len(files) != int(first.Builds) {
		t.Fatalf("first run: %+v, %d cache files", first, len(files))
	}
	slices.Sort(files)
	victim := files[0]
	good, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T)
		errors  uint64
	}{
		{"intact", func(*testing.T) {}, 0},
		{"truncated", func(t *testing.T) {
			if err := os.Truncate(victim, int64(len(good)/2)); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"flipped-row-byte", func(t *testing.T) {
			b := bytes.Clone(good)
			b[len(b)-3] ^= 0xff
			if err := os.WriteFile(victim, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"empty", func(t *testing.T) {
			if err := os.WriteFile(victim, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.corrupt(t)
			st, got := load()
			if st.CacheErrors != tc.errors || st.Builds != tc.errors || st.CacheHits != first.Builds-tc.errors {
				t.Errorf("stats %+v, want %d cache errors and builds, %d hits", st, tc.errors, first.Builds-tc.errors)
			}
			for id, rows := range want {
				if !slices.Equal(got[id], rows) {
					t.Errorf("file %d: %d rows, want %d", id, len(got[id]), len(rows))
				}
			}
			if b, err := os.ReadFile(victim); err != nil || !bytes.Equal(b, good) {
				t.Errorf("cache file not rewritten: %d bytes, want %d (%v)", len(b), len(good), err)
			}
		})
	}
}

// TestLoaderCacheBound keeps the cache below the size of all tables: it
// stays within its bound, and the loader still loads every table.
func TestLoaderCacheBound(t *testing.T) {
	_, pid := startChain(t)
	probe, err := unwind.NewLoader(unwind.Config{CacheDir: unwind.CacheOff}, samplertest.New(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := probe.Refresh(pid); err != nil {
		t.Fatal(err)
	}
	sampleAll(probe, pid)
	probe.BuildPending()
	full := probe.Stats()
	bound := int64(full.Bytes) / 2
	dir := t.TempDir()
	l, err := unwind.NewLoader(unwind.Config{CacheDir: dir, CacheMaxBytes: bound}, samplertest.New(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Refresh(pid); err != nil {
		t.Fatal(err)
	}
	sampleAll(l, pid)
	l.BuildPending()
	var size int64
	files, _ := filepath.Glob(filepath.Join(dir, "*.rows"))
	for _, f := range files {
		if info, err := os.Stat(f); err == nil {
			size += info.Size()
		}
	}
	st := l.Stats()
	if size > bound || st.CacheBytes != size || st.Files != full.Files || st.CacheErrors != 0 {
		t.Errorf("cache %d bytes in %d files (stats %d), bound %d; loader %+v, full %+v", size, len(files), st.CacheBytes, bound, st, full)
	}
}

// TestLoaderSampledAfterExit drains the samples of a process that exited
// (a short-lived process is gone by the next flush): its file still gets
// its table, opened by path, until its samples can no longer be pending.
func TestLoaderSampledAfterExit(t *testing.T) {
	for _, tc := range []struct {
		name        string
		emptyDrains int // drains between the exit and the sample
		queued      uint64
	}{
		{"next drain", 0, 1},
		{"one drain later", 1, 1},
		{"two drains later", 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin, pid := startChain(t)
			fake := samplertest.New(1)
			l, err := unwind.NewLoader(unwind.Config{CacheDir: unwind.CacheOff}, fake)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Refresh(pid); err != nil {
				t.Fatal(err)
			}
			exe := l.Mappings(pid)[0]
			var ws syscall.WaitStatus
			if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if _, err := syscall.Wait4(int(pid), &ws, 0, nil); err != nil {
				t.Fatal(err)
			}
			if err := l.ProcessExited(pid); err != nil {
				t.Fatal(err)
			}
			for range tc.emptyDrains {
				l.Sampled(func(func(uint32, []uint64) bool) {})
			}
			l.Sampled(func(yield func(uint32, []uint64) bool) { yield(pid, []uint64{exe.Start}) })
			l.BuildPending()
			st := l.Stats()
			if st.Queued != tc.queued || st.Files != int(tc.queued) {
				t.Errorf("stats %+v, want %d queued and loaded", st, tc.queued)
			}
			if tc.queued > 0 && !slices.Equal(fake.FileRows(exe.FileID), rowsOf(t, bin)) {
				t.Errorf("exited binary's table: %d rows", len(fake.FileRows(exe.FileID)))
			}
		})
	}
}
