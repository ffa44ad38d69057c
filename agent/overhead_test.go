package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/agent/ship/shiptest"
	"github.com/fleetprof/fleetprof/internal/testenv"
)

// Parameters of BenchmarkAgentCPU.
const (
	// cpuWarmup is how long a child agent runs before its CPU is counted:
	// past loading BPF and reading every process already running.
	cpuWarmup = 3 * time.Second
	// cpuWindow is how long its CPU is counted in each scenario.
	cpuWindow = 8 * time.Second
	// churnScript execs short commands in a loop, the shell-script
	// pattern (sed, grep, awk, cat) that made per-exec work dominate.
	churnScript = `while :; do sed -n 1p /etc/hostname >/dev/null; grep -q . /etc/hostname; awk 'BEGIN{}'; cat /etc/hostname >/dev/null; done`
	// steadyScript is a long-lived busy process (no exec).
	steadyScript = `while :; do :; done`
)

// BenchmarkAgentCPU measures the real agent (a child process, see
// runChildAgent) while the whole host is profiled: its CPU as a fraction
// of one core (user+system from /proc/PID/stat over cpuWindow) and its RSS
// (VmRSS at the end of the window, and the peak), at 19 Hz and 99 Hz, with
// steady processes and with a shell loop exec'ing short commands. Each
// child keeps its unwind-table cache in a fresh directory, so the figures
// include building every table it needs. FLEETPROF_BENCH_PPROF=dir writes
// each child's CPU and heap profiles there (go tool pprof).
func BenchmarkAgentCPU(b *testing.B) {
	needRoot(b)
	sh := testenv.LookPath(b, "sh", "sh")
	srv := shiptest.NewServer()
	addr, err := srv.Serve("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	profDir := os.Getenv("FLEETPROF_BENCH_PPROF")
	scenarios := []struct {
		name, script string
		n            int // copies of the script
	}{
		{"steady", steadyScript, 2},
		{"churn", churnScript, 1},
	}
	for range b.N {
		for _, sc := range scenarios {
			for _, hz := range []int{19, 99} {
				name := fmt.Sprintf("%s-%dhz", sc.name, hz)
				var load []*exec.Cmd
				for range sc.n {
					cmd := exec.CommandContext(context.Background(), sh, "-c", sc.script)
					if err := cmd.Start(); err != nil {
						b.Fatal(err)
					}
					load = append(load, cmd)
				}
				var env []string
				if profDir != "" {
					env = append(env, envChildProfile+"="+filepath.Join(profDir, name))
				}
				c := startChildAgent(b, addr, hz, env...)
				time.Sleep(cpuWarmup)
				cpu0 := procCPU(b, c.cmd.Process.Pid)
				execs0 := procForks(b)
				time.Sleep(cpuWindow)
				cpu := procCPU(b, c.cmd.Process.Pid) - cpu0
				execs := procForks(b) - execs0
				rss := procRSS(b, c.cmd.Process.Pid)
				_, peak := c.stop(b)
				for _, l := range load {
					_ = l.Process.Signal(syscall.SIGKILL)
					_ = l.Wait()
				}
				b.ReportMetric(cpu.Seconds()/cpuWindow.Seconds(), "cpu-frac-"+name)
				b.ReportMetric(float64(rss)/(1<<20), "rss-MiB-"+name)
				b.Logf("%s: agent %.2f%% of a core, RSS %.0f MiB (peak %.0f MiB), host forks %.0f/s",
					name, 100*cpu.Seconds()/cpuWindow.Seconds(), float64(rss)/(1<<20), float64(peak)/(1<<20),
					float64(execs)/cpuWindow.Seconds())
			}
		}
	}
}

// procRSS returns the resident set of a live process in bytes (VmRSS).
func procRSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	return procStatusKB(tb, fmt.Sprintf("/proc/%d/status", pid), "VmRSS:") << 10
}

// procForks returns the processes created on the host since boot.
func procForks(tb testing.TB) int64 {
	tb.Helper()
	return procStatusKB(tb, "/proc/stat", "processes")
}

// procStatusKB returns the first number after key in a /proc file.
func procStatusKB(tb testing.TB, path, key string) int64 {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	for line := range bytes.Lines(b) {
		if f := bytes.Fields(line); len(f) >= 2 && string(f[0]) == key {
			n, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	tb.Fatalf("no %s in %s", key, path)
	return 0
}
