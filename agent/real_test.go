package agent

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/agent/procmaps"
	"github.com/fleetprof/fleetprof/agent/sampler"
	"github.com/fleetprof/fleetprof/agent/ship/shiptest"
	"github.com/fleetprof/fleetprof/agent/symbolize"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// needRoot skips tests that load the eBPF sampler when not root.
func needRoot(tb testing.TB) {
	tb.Helper()
	testenv.Root(tb, "loading the eBPF sampler needs CAP_BPF and CAP_PERFMON")
}

// buildChain compiles unwind/testdata/chain.c with frame pointers.
func buildChain(tb testing.TB) string {
	tb.Helper()
	gcc := testenv.LookPath(tb, "gcc", "gcc")
	bin := filepath.Join(tb.TempDir(), "chain")
	out, err := exec.Command(gcc, "-O1", "-fno-omit-frame-pointer", "-o", bin, "unwind/testdata/chain.c").CombinedOutput()
	if err != nil {
		tb.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}

// fleetprofSpinner burns CPU until stop is set; its name must appear in the
// shipped stacks.
//
//go:noinline
func fleetprofSpinner(stop *atomic.Bool) uint64 {
	var x uint64
	for !stop.Load() {
		for i := range 1000 {
			x += uint64(i) * 2654435761
		}
	}
	return x
}

type recordingSymbolizer struct {
	*symbolize.Symbolizer
	t     *testing.T
	mu    sync.Mutex
	start map[uint32]string
}

func (r *recordingSymbolizer) ProcessMapped(pid uint32, maps []procmaps.Mapping) error {
	t0 := time.Now()
	err := r.Symbolizer.ProcessMapped(pid, maps)
	r.mu.Lock()
	if r.start == nil {
		r.start = map[uint32]string{}
	}
	r.start[pid] = fmt.Sprintf("at %s took %v err %v", t0.Format("15:04:05.000"), time.Since(t0), err)
	r.mu.Unlock()
	return err
}

// stacksOf returns the stacks (joined by ";") stored for pid.
func stacksOf(tb testing.TB, stored []shiptest.Batch, pid int) []string {
	tb.Helper()
	var out []string
	for _, sb := range stored {
		b, err := samplebatch.Decode(sb.Data, samplebatch.Limits{})
		if err != nil {
			tb.Fatal(err)
		}
		for _, r := range b.Rows {
			if int(r.Labels.PID) == pid {
				out = append(out, strings.Join(b.Stacks[r.StackID], ";"))
			}
		}
	}
	return out
}

func anyStack(stacks []string, ok func(string) bool) bool { return slices.ContainsFunc(stacks, ok) }

// TestRealPipeline runs the real sampler and symbolizer at 99 Hz and checks
// what reaches the ingest server: a Go spinner with its stack to the Go root,
// a C program's known chain main;a;b;c, and a process living 100 ms.
func TestRealPipeline(t *testing.T) {
	needRoot(t)
	chain := buildChain(t)
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
	src, err := sampler.New(sampler.Config{Hz: 99, DrainInterval: time.Second})
	if err != nil {
		t.Fatalf("start sampler: %v", err)
	}
	rec := &recordingSymbolizer{Symbolizer: sym, t: t}
	a, err := New(Config{
		Aggregator: addr, Hz: 99, FlushInterval: time.Second, SpoolDir: t.TempDir(),
		NodeName: "node-test", MetricsAddr: MetricsOff, Kube: KubeOff,
		Ship: fastRetry,
	}, src, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer runInBackground(t, a)()

	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); fleetprofSpinner(&stop) }()
	long := exec.Command(chain, "1500")
	if err := long.Start(); err != nil {
		t.Fatal(err)
	}
	if err := long.Wait(); err != nil {
		t.Fatal(err)
	}
	stop.Store(true)
	wg.Wait()

	self := os.Getpid()
	spinner := "github.com/fleetprof/fleetprof/agent.fleetprofSpinner"
	goRoot := func(s string) bool {
		return strings.Contains(s, spinner) && (strings.HasPrefix(s, "runtime.goexit;") || strings.HasPrefix(s, "runtime.main;"))
	}
	hasChain := func(s string) bool { return strings.Contains(";"+s+";", ";main;a;b;c;") }
	// The first C process also loads libc (and its debug file) into the
	// symbolizer's cache, which can take a second; the short-lived process
	// below is the steady state: its objects are cached, its maps are new.
	ok := srv.WaitFor(30*time.Second, func(stored []shiptest.Batch) bool {
		return anyStack(stacksOf(t, stored, self), goRoot) &&
			anyStack(stacksOf(t, stored, long.Process.Pid), hasChain)
	})
	// On a host busy with other new processes (parallel builds) the exec
	// event of a 100 ms process can still be handled after it exited (the
	// event loop reads maps of every new process). Retry a few times; a
	// quiet host succeeds at once, and the attempts are logged.
	short := exec.Command(chain, "100")
	for attempt := 1; ok && attempt <= 5; attempt++ {
		short = exec.Command(chain, "100")
		if err := short.Run(); err != nil {
			t.Fatal(err)
		}
		pid := short.Process.Pid
		if srv.WaitFor(10*time.Second, func(stored []shiptest.Batch) bool {
			return anyStack(stacksOf(t, stored, pid), hasChain)
		}) {
			t.Logf("100 ms process symbolized at attempt %d", attempt)
			break
		}
		if attempt == 5 {
			ok = false
		}
	}
	stored := srv.Stored()
	if !ok {
		pids := map[string]int{"self": self, "long": long.Process.Pid}
		if short.Process != nil {
			pids["short"] = short.Process.Pid
		}
		for name, pid := range pids {
			st := stacksOf(t, stored, pid)
			rec.mu.Lock()
			t.Logf("%s (pid %d): %d stacks, e.g. %q; started %s", name, pid, len(st), st[:min(len(st), 5)], rec.start[uint32(pid)])
			rec.mu.Unlock()
		}
		for _, sb := range stored {
			b, _ := samplebatch.Decode(sb.Data, samplebatch.Limits{})
			for _, r := range b.Rows {
				if r.Labels.Comm == "chain" || strings.Contains(strings.Join(b.Stacks[r.StackID], ";"), "main;a;b") {
					t.Logf("chain row: pid %d comm %q value %d stack %q", r.Labels.PID, r.Labels.Comm, r.Value, strings.Join(b.Stacks[r.StackID], ";"))
				}
			}
		}
		t.Fatalf("shipped batches lack the expected stacks; agent stats %+v", a.Stats())
	}
	// The spinner's samples nearly all reach the Go root: frame pointers.
	var spin, rooted int
	for _, s := range stacksOf(t, stored, self) {
		if strings.Contains(s, spinner) {
			spin++
			if goRoot(s) {
				rooted++
			}
		}
	}
	t.Logf("spinner stacks %d, reaching the Go root %d; agent stats %+v", spin, rooted, a.Stats())
	var comm string
	// A 100 ms process counts under its parent's service (this test binary's) once
	// it has exited (labels.Config.ShortLived), as its own while it runs.
	parentService := a.resolver.Resolve(uint32(self)).Service
	for _, sb := range stored {
		b, _ := samplebatch.Decode(sb.Data, samplebatch.Limits{})
		for _, r := range b.Rows {
			// Only rows sampled after the exec belong to chain: the forked child
			// runs this test binary's code until then.
			if int(r.Labels.PID) == short.Process.Pid && hasChain(strings.Join(b.Stacks[r.StackID], ";")) {
				comm = r.Labels.Comm
				if (r.Labels.Service != parentService && r.Labels.Service != "chain") || r.Labels.Host != "node-test" || r.PeriodNS != int64(time.Second)/99 {
					t.Errorf("short process row labels %+v period %d", r.Labels, r.PeriodNS)
				}
			}
		}
	}
	if comm != "chain" {
		t.Errorf("short process comm %q, want chain", comm)
	}
}

// workloadSink keeps the workload's result live.
var workloadSink atomic.Uint64

// workload is a CPU-bound loop on every CPU for d; it returns iterations done.
func workload(d time.Duration) uint64 {
	var total atomic.Uint64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n, x uint64
			for !stop.Load() {
				for i := range 1000 {
					x += uint64(i) * 2654435761
				}
				n++
			}
			total.Add(n)
			workloadSink.Add(x)
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	return total.Load()
}

// childAgent is the real agent running in a child process.
type childAgent struct {
	cmd *exec.Cmd
}

// startChildAgent starts the child agent with env added to its environment.
func startChildAgent(b *testing.B, addr string, hz int, env ...string) *childAgent {
	b.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envChild+"=1", envChildAddr+"="+addr, envChildHz+"="+strconv.Itoa(hz), envChildSpool+"="+b.TempDir())
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		b.Fatalf("child agent did not start: %q %v", line, err)
	}
	go io.Copy(io.Discard, out)
	return &childAgent{cmd: cmd}
}

// stop ends the agent and returns its CPU time and peak RSS.
func (c *childAgent) stop(b *testing.B) (cpu time.Duration, maxRSSBytes int64) {
	b.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		b.Fatal(err)
	}
	if err := c.cmd.Wait(); err != nil {
		b.Fatalf("child agent: %v", err)
	}
	ru := c.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return cpu, ru.Maxrss * 1024
}

// procCPU returns the user+system CPU time of a live process.
func procCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)        // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64)        // field 15
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// BenchmarkOverhead measures the throughput of a CPU-bound workload on every
// CPU with the real agent (in a child process, shipping to an in-process
// ingest server) at 19 Hz and 99 Hz, relative to no agent. To resist
// background load, runs are interleaved in rounds (none/19/99, then
// 19/99/none, then 99/none/19, ...), each agent run is compared with the
// no-agent run of its own round, and the median over rounds is reported.
// Also reported: the agent's CPU use while the workload ran (median CPU
// seconds per second), and its largest peak RSS. Run it with -benchtime=1x:
// one iteration takes ~60 s.
func BenchmarkOverhead(b *testing.B) {
	needRoot(b)
	srv := shiptest.NewServer()
	addr, err := srv.Serve("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	const (
		d      = 2 * time.Second
		rounds = 6
	)
	configs := []int{0, 19, 99} // 0: no agent
	for range b.N {
		ratios := map[int][]float64{}
		cpuFrac := map[int][]float64{}
		peakRSS := map[int]float64{}
		for round := range rounds {
			thr := map[int]float64{}
			for k := range configs {
				hz := configs[(round+k)%len(configs)]
				if hz == 0 {
					thr[0] = float64(workload(d))
					continue
				}
				c := startChildAgent(b, addr, hz)
				time.Sleep(2 * time.Second) // past the agent's startup work
				cpu0 := procCPU(b, c.cmd.Process.Pid)
				thr[hz] = float64(workload(d))
				steady := procCPU(b, c.cmd.Process.Pid) - cpu0
				_, rss := c.stop(b)
				cpuFrac[hz] = append(cpuFrac[hz], steady.Seconds()/d.Seconds())
				peakRSS[hz] = max(peakRSS[hz], float64(rss)/(1<<20))
			}
			for _, hz := range configs[1:] {
				ratios[hz] = append(ratios[hz], thr[hz]/thr[0])
			}
		}
		for _, hz := range configs[1:] {
			n := strconv.Itoa(hz)
			b.ReportMetric(median(ratios[hz]), "throughput-ratio-"+n+"hz")
			b.ReportMetric(median(cpuFrac[hz]), "agent-cpu-frac-"+n+"hz")
			b.ReportMetric(peakRSS[hz], "agent-peak-rss-MiB-"+n+"hz")
			b.Logf("%d Hz: throughput ratios %.4f", hz, ratios[hz])
		}
	}
}

// median of xs (which it sorts).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}
