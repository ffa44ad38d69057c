package agent

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/agent/sampler"
	"github.com/fleetprof/fleetprof/agent/ship/shiptest"
	"github.com/fleetprof/fleetprof/agent/symbolize"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// Real Python pipeline test parameters.
const (
	pyRealHz = 299
	// pyRealSamples is how many samples of the workload to wait for.
	pyRealSamples = 1500
	pyRealWait    = 90 * time.Second
	// pyRealMinShare is the share of each role's samples that must be right.
	pyRealMinShare = 0.9
	chainFrames    = "workload.outer;workload.middle;workload.inner"
)

// pyRows returns samples per stack of every row stored for pid.
func pyRows(t *testing.T, stored []shiptest.Batch, pid int) map[string]int64 {
	t.Helper()
	return storedStacks(t, stored, func(l samplebatch.Labels) bool { return int(l.PID) == pid })
}

// TestRealPythonStacks runs the real agent (eBPF sampler, symbolizer,
// Python walker) on Debian's python3 running testdata/workload.py and
// checks the shipped stacks: the main thread's chain in order, each
// thread's own function, the zlib caller below zlib's C frames and the deep
// recursion cut at the limit with a [truncated] marker.
func TestRealPythonStacks(t *testing.T) {
	needRoot(t)
	py := systemPython(t)
	srv := shiptest.NewServer()
	srv.Rows = rowsOf
	addr, err := srv.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	sym, err := symbolize.New(symbolize.Config{ExitGrace: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	src, err := sampler.New(sampler.Config{Hz: pyRealHz, DrainInterval: time.Second})
	if err != nil {
		t.Fatalf("start sampler: %v", err)
	}
	a, err := New(Config{
		Aggregator: addr, Hz: pyRealHz, FlushInterval: time.Second, SpoolDir: t.TempDir(),
		NodeName: "node-test", MetricsAddr: MetricsOff, Kube: KubeOff, Ship: fastRetry,
	}, src, sym)
	if err != nil {
		t.Fatal(err)
	}
	defer runInBackground(t, a)()

	ctx, cancel := context.WithCancel(context.Background())
	const script = "interp/python/testdata/workload.py"
	cmd := exec.CommandContext(ctx, py, script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(out)
	for ready := 0; ready < 5 && sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "ready ") {
			ready++
		}
	}
	pid := cmd.Process.Pid
	// Samples before the process was detected carry no Python frames;
	// count from the first stack that has one.
	named := func(stored []shiptest.Batch) int64 {
		var n int64
		for s, v := range pyRows(t, stored, pid) {
			if strings.Contains(s, "workload.") {
				n += v
			}
		}
		return n
	}
	if !srv.WaitFor(pyRealWait, func(stored []shiptest.Batch) bool { return named(stored) >= pyRealSamples }) {
		testenv.Skip(t, testenv.TooFewSamples, "fewer than %d named samples in %s; agent stats %+v", pyRealSamples, pyRealWait, a.Stats())
	}
	rows := pyRows(t, srv.Stored(), pid)
	// pythonFrames keeps a stack's Python frames (the workload's modules), in
	// order: with native unwinding, the C frames of calls the interpreter
	// does not inline (Thread.run's call of its target) sit between them.
	pythonFrames := func(s string) string {
		var py []string
		for _, f := range strings.Split(s, ";") {
			if strings.HasPrefix(f, "threading.") || strings.HasPrefix(f, "workload.") {
				py = append(py, f)
			}
		}
		return strings.Join(py, ";")
	}
	tests := []struct {
		role   string
		member func(string) bool // the role's samples
		ok     func(string) bool // right
	}{
		{"main", func(s string) bool { return strings.Contains(s, "workload.inner") }, func(s string) bool {
			return strings.Contains(s, "workload.<module>;"+chainFrames)
		}},
		{"a", func(s string) bool { return strings.Contains(s, "workload.spin_a") }, func(s string) bool {
			return strings.Contains(pythonFrames(s), "threading.Thread.run;workload.spin_a") && !strings.Contains(s, "spin_b")
		}},
		{"b", func(s string) bool { return strings.Contains(s, "workload.spin_b") }, func(s string) bool {
			return strings.Contains(pythonFrames(s), "threading.Thread.run;workload.spin_b") && !strings.Contains(s, "spin_a")
		}},
		{"zlib", func(s string) bool { return strings.Contains(s, "workload.compress_caller") }, func(s string) bool {
			return strings.Contains(pythonFrames(s), "threading.Thread.run;workload.compress_caller")
		}},
		{"recurse", func(s string) bool { return strings.Contains(s, "workload.recurse") }, func(s string) bool {
			i := strings.Index(s, "[truncated];")
			return i >= 0 && strings.Count(s[i:], "workload.recurse") == sampler.PythonMaxFrames && !strings.Contains(s[:i], "workload.")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.role, func(t *testing.T) {
			var total, ok int64
			var example, bad string
			for s, v := range rows {
				if !tc.member(s) {
					continue
				}
				total += v
				if tc.ok(s) {
					ok += v
					example = s
				} else {
					bad = s
				}
			}
			share := float64(ok) / float64(max(total, 1))
			t.Logf("%s: %d of %d samples (%.1f%%) right; e.g. %s", tc.role, ok, total, 100*share, shorten(example))
			if share < pyRealMinShare {
				t.Fatalf("%.1f%% right, want >= %.0f%%; a wrong one: %s", 100*share, 100*pyRealMinShare, shorten(bad))
			}
		})
	}
	// Each Python frame carries its function's file and first line: CPython
	// makes the script's path absolute, and inner is defined at "def inner".
	abs, err := filepath.Abs(script)
	if err != nil {
		t.Fatal(err)
	}
	source, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range []string{"inner", "middle", "outer", "spin_a"} {
		line := slices.IndexFunc(strings.Split(string(source), "\n"), func(l string) bool { return strings.HasPrefix(l, "def "+fn+"(") }) + 1
		want := samplebatch.Location(abs, line)
		got := frameLocations(t, srv.Stored(), pid, "workload."+fn)
		t.Logf("workload.%s locations: %v", fn, got)
		// One stack id has one set of locations (proto/samplebatch/SCHEMA.md):
		// another test running this script by another path on the host (the
		// sampler's) may lend its path, so only the line and file name count.
		for loc := range got {
			file, l, ok := model.SplitLocation(loc)
			if !ok || filepath.Base(file) != filepath.Base(abs) || l != line {
				t.Errorf("workload.%s: locations %v, want %s", fn, got, want)
			}
		}
		if len(got) == 0 {
			t.Errorf("workload.%s: no locations, want %s", fn, want)
		}
	}

	// zlib's C code runs above its Python caller: native frames follow it.
	var zl, zlNative int64
	for s, v := range rows {
		if i := strings.Index(s, "workload.compress_caller"); i >= 0 {
			zl += v
			if rest := s[i+len("workload.compress_caller"):]; strings.HasPrefix(rest, ";") {
				zlNative += v
			}
		}
	}
	// With frame-pointer unwinding libz's static functions (no frame
	// pointers, not in .dynsym) end as [unknown] and give way to the Python
	// frames; the sampler test checks the leaf is in libz, and native
	// .eh_frame unwinding keeps these frames.
	t.Logf("zlib caller samples %d, with named native frames above it %d; agent python stats %+v", zl, zlNative, a.Stats().Python)

	// A process living ~200 ms is detected at exec and named. A busy host
	// can handle the exec event late; retry a few times, logging attempts.
	named200 := false
	for attempt := 1; attempt <= shortAttempts && !named200; attempt++ {
		short := exec.CommandContext(ctx, py, "-c", shortLived)
		if err := short.Run(); err != nil {
			t.Fatal(err)
		}
		spid := short.Process.Pid
		named200 = srv.WaitFor(10*time.Second, func(stored []shiptest.Batch) bool {
			for s := range pyRows(t, stored, spid) {
				if strings.Contains(s, "string.<module>;string.shortlived") {
					return true
				}
			}
			return false
		})
		t.Logf("200 ms python process, attempt %d: named %v", attempt, named200)
		if !named200 {
			for s, n := range pyRows(t, srv.Stored(), spid) {
				t.Logf("  %d × %s", n, shorten(s))
			}
		}
	}
	if !named200 {
		t.Errorf("no stack of the 200 ms python process names string.shortlived; agent python stats %+v", a.Stats().Python)
	}

}

// systemPython is Debian's python3, not a pyenv shim earlier in PATH.
func systemPython(tb testing.TB) string {
	tb.Helper()
	if _, err := exec.LookPath("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return testenv.LookPath(tb, "python3", "python3")
}

// shorten keeps long recursive stacks readable in logs.
func shorten(s string) string {
	if len(s) > 400 {
		return s[:150] + " ... " + s[len(s)-250:]
	}
	return s
}

// shortLived spins in one function for 200 ms.
const shortLived = `import time
def shortlived():
    end = time.time() + 0.2
    while time.time() < end:
        pass
shortlived()
`

// shortAttempts bounds the retries of the short-lived process check.
const shortAttempts = 10

// frameLocations returns samples per location of the frames named fn in the
// stacks stored for pid.
func frameLocations(t *testing.T, stored []shiptest.Batch, pid int, fn string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, sb := range stored {
		b, err := samplebatch.Decode(sb.Data, samplebatch.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range b.Rows {
			if int(r.Labels.PID) != pid {
				continue
			}
			for i, f := range b.Stacks[r.StackID] {
				if f != fn {
					continue
				}
				loc := ""
				if locs := b.Locations[r.StackID]; locs != nil {
					loc = locs[i]
				}
				out[loc] += r.Value
			}
		}
	}
	return out
}
