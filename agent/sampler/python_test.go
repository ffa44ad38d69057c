package sampler

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/agent/interp/python"
	"github.com/fleetprof/fleetprof/internal/testenv"
)

// Kernel Python walk test parameters.
const (
	// pyWantSamples is how many samples of each role thread to collect.
	pyWantSamples = 150
	// pyMaxCollect bounds the collection on a loaded machine (then the
	// test fails for too few samples rather than hanging).
	pyMaxCollect = 60 * time.Second
	// pyMinShare is the share of a thread's samples that must show its chain.
	pyMinShare = 0.9
	// pyMinLibzShare is the share of the zlib thread's samples whose leaf
	// must be in libz: the rest is the interpreter and the extension's own
	// code around each call (about 60% of it on 3.10, less on 3.11+).
	pyMinLibzShare = 0.25
	pyTestHz       = 499
)

// pythons are the CPythons to test: Debian's python3 (required) and any
// pyenv-installed 3.10+.
func pythons(t *testing.T) []string {
	t.Helper()
	// Debian's own python3, not a pyenv shim earlier in PATH.
	debian := "/usr/bin/python3"
	if _, err := os.Stat(debian); err != nil {
		debian = testenv.LookPath(t, "python3", "python3")
	}
	out := []string{debian}
	root := os.Getenv("PYENV_ROOT")
	if root == "" {
		root = filepath.Join(os.Getenv("HOME"), ".pyenv")
	}
	extra, _ := filepath.Glob(filepath.Join(root, "versions", "3.1[0-9]*", "bin", "python3"))
	return append(out, extra...)
}

func startPyWorkload(t *testing.T, py string) (int, map[string]uint32) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, py, "../interp/python/testdata/workload.py")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	roles := map[string]uint32{}
	sc := bufio.NewScanner(out)
	for len(roles) < 5 && sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "ready" {
			continue
		}
		id, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			t.Fatal(err)
		}
		roles[f[1]] = uint32(id)
	}
	if len(roles) < 5 {
		t.Fatalf("workload reported %v", roles)
	}
	return cmd.Process.Pid, roles
}

// pyChain names a sample's Python frames root first; the bool reports the
// end marker's reason (0: none).
func pyChain(t *testing.T, mem *os.File, p python.Process, n *python.Namer, fs []InterpFrame) ([]string, PythonEnd, error) {
	t.Helper()
	var names []string
	var end PythonEnd
	for _, f := range fs {
		if f.Kind != InterpPython {
			return nil, 0, fmt.Errorf("entry of kind %d", f.Kind)
		}
		if f.Addr == 0 {
			end = PythonEnd(f.Aux)
			continue
		}
		lineno, _, entry := PythonFrame(f)
		c, err := n.Name(mem, p.Layout, p.PID, python.RawFrame{Code: f.Addr, FirstLineno: uint32(lineno), Entry: entry})
		if err != nil {
			return nil, 0, err
		}
		names = append([]string{c.Name}, names...)
	}
	return names, end, nil
}

// TestPythonKernelWalk samples a real CPython workload with the real eBPF
// walker and checks each thread's Python chain as the kernel recorded it.
func TestPythonKernelWalk(t *testing.T) {
	for _, py := range pythons(t) {
		name := filepath.Base(filepath.Dir(filepath.Dir(py)))
		if !strings.Contains(py, "pyenv") {
			name = "system"
		}
		t.Run(name, func(t *testing.T) { pythonKernelWalk(t, py) })
	}
}

func pythonKernelWalk(t *testing.T, py string) {
	s := newTestSampler(t, Config{Hz: pyTestHz})
	pid, roles := startPyWorkload(t, py)
	p, err := python.Detect("/proc", uint32(pid))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetPython(p); err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	byTID := map[uint32][]Sample{}
	deadline := time.Now().Add(pyMaxCollect)
	if _, _, err := s.Drain(); err != nil { // samples from before SetPython
		t.Fatal(err)
	}
	for {
		time.Sleep(time.Second)
		samples, _, err := s.Drain()
		if err != nil {
			t.Fatal(err)
		}
		for _, sm := range samples {
			if sm.TGID == uint32(pid) {
				byTID[sm.PID] = append(byTID[sm.PID], sm)
			}
		}
		enough := true
		for _, tid := range roles {
			c := uint64(0)
			for _, sm := range byTID[tid] {
				c += sm.Count
			}
			enough = enough && c >= pyWantSamples
		}
		if enough {
			break
		}
		if time.Now().After(deadline) {
			testenv.Skip(t, testenv.TooFewSamples, "fewer than %d samples per thread in %s", pyWantSamples, pyMaxCollect)
		}
	}
	_, st, err := s.Drain()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s %s: python walker stats %+v", p.Path, p.Version, st.Python)

	n := python.NewNamer(python.DefaultCacheEntries)
	allRecurse := func(c []string) bool {
		for _, f := range c {
			if f != "workload.recurse" {
				return false
			}
		}
		return len(c) == PythonMaxFrames
	}
	tests := []struct {
		role  string
		check func([]string, PythonEnd) bool
	}{
		{"main", func(c []string, e PythonEnd) bool {
			return e == 0 && strings.HasSuffix(strings.Join(c, ";"), "workload.outer;workload.middle;workload.inner")
		}},
		{"a", func(c []string, e PythonEnd) bool { return e == 0 && len(c) > 0 && c[len(c)-1] == "workload.spin_a" }},
		{"b", func(c []string, e PythonEnd) bool { return e == 0 && len(c) > 0 && c[len(c)-1] == "workload.spin_b" }},
		{"zlib", func(c []string, e PythonEnd) bool {
			return e == 0 && len(c) > 0 && c[len(c)-1] == "workload.compress_caller"
		}},
		{"recurse", func(c []string, e PythonEnd) bool { return e == PythonEndDepth && allRecurse(c) }},
	}
	// zlib.compress is C: the zlib thread's leaf pc is mostly in libz,
	// below its Python caller.
	libz := libzRanges(t, pid)
	var inZ, zTotal uint64
	for _, sm := range byTID[roles["zlib"]] {
		zTotal += sm.Count
		for _, r := range libz {
			if len(sm.User) > 0 && sm.User[0] >= r[0] && sm.User[0] < r[1] {
				inZ += sm.Count
				break
			}
		}
	}
	t.Logf("zlib thread: %d of %d samples with the leaf in libz", inZ, zTotal)
	if float64(inZ) < pyMinLibzShare*float64(zTotal) {
		t.Errorf("only %d of %d zlib thread samples have their leaf in libz", inZ, zTotal)
	}
	for _, tc := range tests {
		t.Run(tc.role, func(t *testing.T) {
			var ok, total, failed uint64
			var last []string
			for _, sm := range byTID[roles[tc.role]] {
				total += sm.Count
				c, end, err := pyChain(t, mem, p, n, sm.Interp)
				if err != nil {
					failed += sm.Count
					continue
				}
				last = c
				if len(c) > 8 {
					last = append([]string{fmt.Sprintf("...%d more", len(c)-8)}, c[len(c)-8:]...)
				}
				if tc.check(c, end) {
					ok += sm.Count
				}
			}
			share := float64(ok) / float64(total)
			t.Logf("%s: %d of %d samples (%.1f%%) as expected, %d unnamed; e.g. %s", tc.role, ok, total, 100*share, failed, strings.Join(last, ";"))
			if share < pyMinShare {
				t.Fatalf("%.1f%% of samples as expected, want >= %.0f%%", 100*share, 100*pyMinShare)
			}
		})
	}
}

// libzRanges returns the address ranges of libz's mappings in pid.
func libzRanges(t *testing.T, pid int) [][2]uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out [][2]uint64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.Contains(filepath.Base(f[5]), "libz.so") {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		z, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil {
			out = append(out, [2]uint64{a, z})
		}
	}
	return out
}

// pyBenchPhase is how long each phase of BenchmarkPythonSampleCost samples.
const pyBenchPhase = 3 * time.Second

// BenchmarkPythonSampleCost measures do_sample's in-kernel time per sample
// (BPF run-time stats, tail calls included) on a python3 workload, first
// with the process not handed to the Python walker (native walk only), then
// with it. The run stats cover every sample on the host; the Python
// walker's own counters say how many of them walked Python frames, so the
// cost of one Python sample is the native cost plus the extra time of the
// second phase spread over its Python walks.
func BenchmarkPythonSampleCost(b *testing.B) {
	testenv.Root(b, "CAP_BPF and CAP_PERFMON to load eBPF programs")
	s, err := New(Config{Hz: pyTestHz})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	stats, err := EnableRunTimeStats()
	if err != nil {
		testenv.Skip(b, testenv.KernelFeature, "bpf run-time stats: %v", err)
	}
	defer stats.Close()
	py := "/usr/bin/python3"
	cmd := exec.CommandContext(b.Context(), py, "../interp/python/testdata/workload.py")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(time.Second) // threads started
	// phase returns the run stats and Python walks of one pyBenchPhase.
	phase := func() (ProgramStats, uint64) {
		st0, err := s.SampleProgramStats()
		if err != nil {
			b.Fatal(err)
		}
		py0, err := s.pythonStats()
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(pyBenchPhase)
		st1, err := s.SampleProgramStats()
		if err != nil {
			b.Fatal(err)
		}
		py1, err := s.pythonStats()
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := s.Drain(); err != nil {
			b.Fatal(err)
		}
		return st1.Sub(st0), py1.Walks - py0.Walks
	}
	for b.Loop() {
		native, _ := phase()
		p, err := python.Detect("/proc", uint32(cmd.Process.Pid))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.SetPython(p); err != nil {
			b.Fatal(err)
		}
		withPy, walks := phase()
		_, st, err := s.Drain()
		if err != nil {
			b.Fatal(err)
		}
		nativeNS := float64(native.PerRun().Nanoseconds())
		b.ReportMetric(nativeNS, "ns/sample-native")
		b.ReportMetric(float64(withPy.PerRun().Nanoseconds()), "ns/sample-python")
		if walks > 0 {
			extra := (float64(withPy.RunTime.Nanoseconds()) - nativeNS*float64(withPy.Runs)) / float64(walks)
			b.ReportMetric(nativeNS+extra, "ns/python-sample")
			b.ReportMetric(float64(walks)/float64(max(withPy.Runs, 1)), "python-walks/sample")
		}
		b.ReportMetric(float64(st.Python.Frames)/float64(max(st.Python.Walks, 1)), "pyframes/walk")
		if err := s.ForgetPython(p.PID); err != nil {
			b.Fatal(err)
		}
	}
}
