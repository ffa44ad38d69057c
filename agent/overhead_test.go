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
	// past loading BPF and naming every process already running (on a
	// busy host, parsing each sampled binary's symbols once takes seconds).
	cpuWarmup = 8 * time.Second
	// cpuSettle is how long the churning load runs before it is counted.
	cpuSettle = time.Second
	// cpuWindow is how long the agent's CPU is counted in each scenario.
	cpuWindow = 6 * time.Second
	// churnScript execs short commands in a loop, the shell-script
	// pattern (sed, grep, awk, cat) that made per-exec work dominate.
	churnScript = `while :; do sed -n 1p /etc/hostname >/dev/null; grep -q . /etc/hostname; awk 'BEGIN{}'; cat /etc/hostname >/dev/null; done`
	// steadyScript is a long-lived busy process (no exec).
	steadyScript = `while :; do :; done`
	// steadyProcs is how many copies of steadyScript run.
	steadyProcs = 2
)

// BenchmarkAgentCPU measures the real agent (a child process, see
// runChildAgent) while the whole host is profiled: its CPU as a fraction
// of one core (user+system from /proc/PID/stat over cpuWindow) and its RSS
// (VmRSS at the end of the window), at 19 Hz and 99 Hz, first with steady
// processes, then with a shell loop exec'ing short commands, after a
// warm-up. Each child keeps its unwind-table cache in a fresh directory.
// FLEETPROF_BENCH_PPROF=dir writes each child's CPU and heap profiles
// there (go tool pprof), a CPU profile per phase: DIR/<hz>hz-1.cpu.pprof
// is the steady window, -3 the churn window (-0 warm-up, -2 settling, -4
// shutdown). One iteration takes ~45 s.
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
	start := func(script string, n int) []*exec.Cmd {
		var cmds []*exec.Cmd
		for range n {
			cmd := exec.CommandContext(context.Background(), sh, "-c", script)
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			cmds = append(cmds, cmd)
		}
		return cmds
	}
	stop := func(cmds []*exec.Cmd) {
		for _, c := range cmds {
			_ = c.Process.Signal(syscall.SIGKILL)
			_ = c.Wait()
		}
	}
	for range b.N {
		for _, hz := range []int{19, 99} {
			var env []string
			if profDir != "" {
				env = append(env, envChildProfile+"="+filepath.Join(profDir, fmt.Sprintf("%dhz", hz)))
			}
			load := start(steadyScript, steadyProcs)
			c := startChildAgent(b, addr, hz, env...)
			time.Sleep(cpuWarmup)
			measure := func(scenario string) (time.Duration, int64) {
				name := fmt.Sprintf("%s-%dhz", scenario, hz)
				c.nextProfile(b, profDir)
				cpu0, forks0 := procCPU(b, c.cmd.Process.Pid), procForks(b)
				time.Sleep(cpuWindow)
				cpu, forks := procCPU(b, c.cmd.Process.Pid)-cpu0, procForks(b)-forks0
				c.nextProfile(b, profDir)
				rss := procRSS(b, c.cmd.Process.Pid)
				frac := cpu.Seconds() / cpuWindow.Seconds()
				b.ReportMetric(frac, "cpu-frac-"+name)
				b.ReportMetric(float64(rss)/(1<<20), "rss-MiB-"+name)
				b.Logf("%s: agent %.2f%% of a core, RSS %.0f MiB, host forks %.0f/s",
					name, 100*frac, float64(rss)/(1<<20), float64(forks)/cpuWindow.Seconds())
				return cpu, forks
			}
			steadyCPU, steadyForks := measure("steady")
			stop(load)
			load = start(churnScript, 1)
			time.Sleep(cpuSettle)
			churnCPU, churnForks := measure("churn")
			// The agent CPU the churn added, per process it added.
			if extra := churnForks - steadyForks; extra > 0 {
				perExec := float64((churnCPU - steadyCPU).Microseconds()) / float64(extra)
				b.ReportMetric(perExec, fmt.Sprintf("agent-us-per-exec-%dhz", hz))
				b.Logf("%d Hz: %.0f µs of agent CPU per exec'd process", hz, perExec)
			}
			_, peak := c.stop(b)
			stop(load)
			b.Logf("%d Hz: agent peak RSS %.0f MiB", hz, float64(peak)/(1<<20))
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

// nextProfile makes a profiling child agent (profDir set) start its next
// CPU profile window.
func (c *childAgent) nextProfile(b *testing.B, profDir string) {
	b.Helper()
	if profDir == "" {
		return
	}
	if err := c.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		b.Fatal(err)
	}
}
