package unwind_test

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/agent/sampler/samplertest"
	"github.com/fleetprof/fleetprof/agent/unwind"
	"github.com/fleetprof/fleetprof/agent/vdso"
	"github.com/fleetprof/fleetprof/internal/testenv"
)

// startChain compiles testdata/chain.c with gcc -O2 and starts it for a
// few seconds; the process is killed at cleanup.
func startChain(t *testing.T) (bin string, pid uint32) {
	t.Helper()
	gcc := testenv.LookPath(t, "gcc", "gcc")
	bin = filepath.Join(t.TempDir(), "chain")
	if out, err := exec.CommandContext(context.Background(), gcc, "-O2", "-o", bin, "testdata/chain.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(context.Background(), bin, "20000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Ready once the dynamic loader has mapped libc.
	maps := fmt.Sprintf("/proc/%d/maps", cmd.Process.Pid)
	for {
		b, err := os.ReadFile(maps)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("libc")) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	return bin, uint32(cmd.Process.Pid)
}

// sampleAll reports one sample in each of pid's mappings, as if the
// walker had been everywhere, so every file gets its table.
func sampleAll(l *unwind.Loader, pid uint32) {
	var pcs []uint64
	for _, m := range l.Mappings(pid) {
		pcs = append(pcs, m.Start)
	}
	l.Sampled(func(yield func(uint32, []uint64) bool) { yield(pid, pcs) })
}

func rowsOf(t *testing.T, path string) []unwind.Row {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := unwind.Build(f)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestLoaderRefresh loads a live process's tables into the fake and checks
// the mappings point at exactly the rows Build makes for the binary.
func TestLoaderRefresh(t *testing.T) {
	bin, pid := startChain(t)
	fake := samplertest.New(1)
	l, err := unwind.NewLoader(unwind.Config{}, fake)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Refresh(pid); err != nil {
		t.Fatal(err)
	}
	sampleAll(l, pid)
	l.BuildPending()
	maps, ok := fake.Process(pid)
	if !ok || len(maps) < 2 {
		t.Fatalf("mappings of %d: %v", pid, maps)
	}
	if !slices.IsSortedFunc(maps, func(a, b unwind.Mapping) int { return int(a.Start>>12) - int(b.Start>>12) }) {
		t.Errorf("mappings not sorted: %v", maps)
	}
	want := rowsOf(t, bin)
	found := false
	for _, m := range maps {
		if m.FileID != 0 && slices.Equal(fake.FileRows(m.FileID), want) {
			found = true
		}
	}
	if !found {
		t.Errorf("no mapping points at the binary's %d rows: %v", len(want), maps)
	}
	// A second refresh builds nothing new: tables are cached per file.
	before := l.Stats().Builds
	if _, err := l.Refresh(pid); err != nil {
		t.Fatal(err)
	}
	sampleAll(l, pid)
	l.BuildPending()
	if st := l.Stats(); st.Builds != before || st.Files == 0 || st.Bytes != st.Rows*unwind.RowSize {
		t.Errorf("second refresh: stats %+v, builds before %d", st, before)
	}
	if err := l.ProcessExited(pid); err != nil {
		t.Fatal(err)
	}
	if _, ok := fake.Process(pid); ok {
		t.Error("mappings kept after exit")
	}
}

// TestLoaderEviction gives the loader room for fewer rows than the
// process's files need: least recently used tables are evicted, the row
// budget always holds, and an evicted file is rebuilt on demand.
func TestLoaderEviction(t *testing.T) {
	_, pid := startChain(t)
	probe, err := unwind.NewLoader(unwind.Config{}, samplertest.New(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := probe.Refresh(pid); err != nil {
		t.Fatal(err)
	}
	sampleAll(probe, pid)
	probe.BuildPending()
	full := probe.Stats()
	if full.Files < 2 {
		t.Fatalf("want at least 2 files with tables, got %+v", full)
	}
	budget := full.Bytes - unwind.RowSize
	l, err := unwind.NewLoader(unwind.Config{MaxRowBytes: budget}, samplertest.New(1))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := l.Refresh(pid); err != nil {
			t.Fatal(err)
		}
		sampleAll(l, pid)
		l.BuildPending()
		st := l.Stats()
		if st.Bytes > budget {
			t.Fatalf("%d bytes of rows over the %d budget", st.Bytes, budget)
		}
	}
	st := l.Stats()
	if st.Evictions == 0 || st.Files == 0 {
		t.Errorf("no eviction under a budget below the need: %+v (full %+v)", st, full)
	}
}

// BenchmarkBuildLibc compiles Debian's libc: rows per second and bytes of
// table per file.
func BenchmarkBuildLibc(b *testing.B) {
	const path = "/usr/lib/x86_64-linux-gnu/libc.so.6"
	f, err := elf.Open(path)
	if err != nil {
		testenv.Skip(b, testenv.Platform, "no Debian x86-64 libc at %s", path)
	}
	defer f.Close()
	var rows []unwind.Row
	for b.Loop() {
		rows, err = unwind.Build(f)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(rows))*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(len(rows)*unwind.RowSize), "table_bytes")
}

// TestLoaderVDSO checks that the [vdso] mappings of two processes (a C
// fixture and this test) point at one table, the rows Build makes from the
// agent's own copy of the vDSO.
func TestLoaderVDSO(t *testing.T) {
	img, err := vdso.Image("/proc")
	if errors.Is(err, vdso.ErrNotMapped) {
		testenv.Skip(t, testenv.KernelFeature, "no [vdso] mapping in this process")
	}
	if err != nil {
		t.Fatal(err)
	}
	ef, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	want, err := unwind.Build(ef)
	if err != nil {
		t.Fatal(err)
	}
	_, chain := startChain(t)
	fake := samplertest.New(1)
	l, err := unwind.NewLoader(unwind.Config{CacheDir: unwind.CacheOff}, fake)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint32
	for _, pid := range []uint32{chain, uint32(os.Getpid())} {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
		if err != nil {
			t.Fatal(err)
		}
		start, end, err := vdso.Find(raw)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Refresh(pid); err != nil {
			t.Fatal(err)
		}
		sampleAll(l, pid)
		l.BuildPending()
		maps, _ := fake.Process(pid)
		i := slices.IndexFunc(maps, func(m unwind.Mapping) bool { return m.Start == start })
		if i < 0 || maps[i].End != end || maps[i].Bias != start || maps[i].FileID == 0 {
			t.Fatalf("process %d: no table-backed mapping of the vDSO at %#x-%#x: %+v", pid, start, end, maps)
		}
		if got := fake.FileRows(maps[i].FileID); !slices.Equal(got, want) {
			t.Errorf("process %d: vDSO rows %v, want %v", pid, got, want)
		}
		ids = append(ids, maps[i].FileID)
	}
	if ids[0] != ids[1] {
		t.Errorf("vDSO file ids %v, want one table for every process", ids)
	}
	if st := l.Stats(); st.Builds == 0 {
		t.Errorf("vDSO table never built: %+v", st)
	}
}
