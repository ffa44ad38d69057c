package python

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

	"github.com/fleetprof/fleetprof/internal/testenv"
)

// liveWalks is how many walks each live check takes of a running thread.
const liveWalks = 200

// minInOrder is the share of walks that must show the expected chain.
const minInOrder = 0.9

// startWorkload runs testdata/workload.py and returns the process and the
// native thread id of each role once all are running.
func startWorkload(t *testing.T, py string) (*exec.Cmd, map[string]uint64) {
	t.Helper()
	testenv.Root(t, "reads another process's memory")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, py, "testdata/workload.py")
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
	roles := map[string]uint64{}
	sc := bufio.NewScanner(out)
	for len(roles) < 5 && sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "ready" {
			continue
		}
		id, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		roles[f[1]] = id
	}
	if len(roles) < 5 {
		t.Fatalf("workload reported %v", roles)
	}
	return cmd, roles
}

// Interpreters returns the CPythons to test: Debian's python3 (required)
// and every pyenv-installed 3.11+ (optional extras; 3.10 matches threads by
// pthread handle, which only the kernel side can see).
func Interpreters(t *testing.T) []string {
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
	extra, _ := filepath.Glob(filepath.Join(root, "versions", "3.1[1-9]*", "bin", "python3"))
	return append(out, extra...)
}

// names walks thread id once and names its frames root first.
func names(t *testing.T, mem *os.File, p Process, n *Namer, id uint64) ([]string, bool, error) {
	ts, err := ThreadState(mem, p, id)
	if err != nil {
		return nil, false, err
	}
	st, err := Walk(mem, p.Layout, ts)
	if err != nil {
		return nil, false, err
	}
	out := make([]string, len(st.Frames))
	for i, f := range st.Frames {
		c, err := n.Name(mem, p.Layout, p.PID, f)
		if err != nil {
			return nil, false, err
		}
		out[len(out)-1-i] = c.Name
	}
	return out, st.Truncated, nil
}

// TestLiveWalk walks the threads of Debian's python3 from user space with
// the offsets Detect picked: the same reads the kernel walker makes.
func TestLiveWalk(t *testing.T) {
	for _, py := range Interpreters(t) {
		t.Run(strings.TrimPrefix(filepath.Base(filepath.Dir(filepath.Dir(py))), "/"), func(t *testing.T) { liveWalk(t, py) })
	}
}

func liveWalk(t *testing.T, py string) {
	cmd, roles := startWorkload(t, py)
	pid := uint32(cmd.Process.Pid)
	p, err := Detect("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("detected %s %s runtime %#x", p.Path, p.Version, p.Runtime)
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	n := NewNamer(DefaultCacheEntries)

	tests := []struct {
		role  string
		check func([]string, bool) bool
	}{
		{"main", func(s []string, _ bool) bool {
			return strings.HasSuffix(strings.Join(s, ";"), "workload.outer;workload.middle;workload.inner")
		}},
		{"a", func(s []string, _ bool) bool { return len(s) > 0 && s[len(s)-1] == "workload.spin_a" }},
		{"b", func(s []string, _ bool) bool { return len(s) > 0 && s[len(s)-1] == "workload.spin_b" }},
		// zlib.compress is C: the Python caller is the leaf Python frame.
		{"zlib", func(s []string, _ bool) bool { return len(s) > 0 && s[len(s)-1] == "workload.compress_caller" }},
		{"recurse", func(s []string, truncated bool) bool {
			if !truncated || len(s) != MaxFrames {
				return false
			}
			for _, f := range s {
				if f != "workload.recurse" {
					return false
				}
			}
			return true
		}},
	}
	for _, tc := range tests {
		t.Run(tc.role, func(t *testing.T) {
			ok, failed := 0, 0
			var last []string
			for range liveWalks {
				s, truncated, err := names(t, mem, p, n, roles[tc.role])
				if err != nil {
					failed++ // a frame changed under the read: counted, not fatal
					continue
				}
				last = s
				if tc.check(s, truncated) {
					ok++
				}
			}
			if float64(ok) < minInOrder*liveWalks {
				t.Fatalf("%d of %d walks as expected (%d failed reads); last %v", ok, liveWalks, failed, last)
			}
			t.Logf("%d of %d walks as expected, %d failed reads; e.g. %s", ok, liveWalks, failed, strings.Join(last, ";"))
		})
	}
	if n.Len() > 16 {
		t.Errorf("namer cached %d code objects for a handful of functions", n.Len())
	}
}
