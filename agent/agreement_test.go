package agent

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/agent/sampler"
	"github.com/fleetprof/fleetprof/agent/ship/shiptest"
	"github.com/fleetprof/fleetprof/agent/symbolize"
	"github.com/fleetprof/fleetprof/agent/unwind"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// Agreement with perf (see AGREEMENT.md): both profilers sample the same run
// of testdata/weights.c at agreementHz; the self shares of the top functions
// must agree within agreementTolerance percentage points.
const (
	// agreementHz is above the production default so that sampling noise
	// (about sqrt(2p(1-p)/N) between two independent profiles of N samples)
	// stays well below the tolerance even when the workload gets only part
	// of a CPU on a busy machine.
	agreementHz        = 999
	agreementTolerance = 4.0 // percentage points
	agreementMinimum   = 1000
)

// share is one function's share of self samples, in percent.
type share struct {
	name          string
	perf, fleet   float64
	diff          float64 // |perf - fleet|
	perfN, fleetN int64
}

type agreement struct {
	shares                []share // union of both top-5 lists, by perf share
	perfTotal, fleetTotal int64
	maxDiff               float64
}

// tolerance is agreementTolerance, or 3.5 standard errors of the
// difference of two independent share estimates if that is larger (a busy
// machine gives the workload, and so both profilers, fewer samples).
func (s share) tolerance(r agreement) float64 {
	p := (s.perf + s.fleet) / 200
	se := 100 * math.Sqrt(p*(1-p)*(1/float64(r.perfTotal)+1/float64(r.fleetTotal)))
	return max(agreementTolerance, 3.5*se)
}

func (r agreement) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "samples: perf %d, fleetprof %d\n%-12s %8s %10s %6s %6s\n", r.perfTotal, r.fleetTotal, "function", "perf %", "fleetprof %", "diff", "tol")
	for _, s := range r.shares {
		fmt.Fprintf(&b, "%-12s %8.2f %10.2f %6.2f %6.2f\n", s.name, s.perf, s.fleet, s.diff, s.tolerance(r))
	}
	return b.String()
}

// TestAgreementWithPerf checks that on a C workload with frame pointers the
// top-5 self functions and their shares match perf record on the same run.
func TestAgreementWithPerf(t *testing.T) {
	r := runAgreement(t, 8*time.Second)
	t.Logf("\n%s", r)
	if r.perfTotal < agreementMinimum || r.fleetTotal < agreementMinimum {
		t.Fatalf("too few samples to compare (want %d each): perf %d, fleetprof %d", agreementMinimum, r.perfTotal, r.fleetTotal)
	}
	for _, s := range r.shares {
		if tol := s.tolerance(r); s.diff > tol {
			t.Errorf("%s: perf %.2f%%, fleetprof %.2f%%: differ by %.2f points (tolerance %.1f)", s.name, s.perf, s.fleet, s.diff, tol)
		}
	}
}

// BenchmarkAgreementWithPerf reports the largest difference of a top-5 self
// share between perf and fleetprof, in percentage points.
func BenchmarkAgreementWithPerf(b *testing.B) {
	for range b.N {
		r := runAgreement(b, 8*time.Second)
		b.Logf("\n%s", r)
		b.ReportMetric(r.maxDiff, "max-share-diff-points")
		b.ReportMetric(float64(r.fleetTotal), "fleetprof-samples")
		b.ReportMetric(float64(r.perfTotal), "perf-samples")
	}
}

// runAgreement runs testdata/weights.c for d under perf record while the
// real agent pipeline profiles the host, and compares self shares.
func runAgreement(tb testing.TB, d time.Duration) agreement {
	tb.Helper()
	needRoot(tb)
	perf := needPerf(tb)
	bin := buildC(tb, "weights")
	a := startComparisonAgent(tb, agreementHz, false)

	data := filepath.Join(tb.TempDir(), "perf.data")
	ms := strconv.FormatInt(d.Milliseconds(), 10)
	if out, err := exec.Command(perf, "record", "-F", strconv.Itoa(agreementHz), "-g", "-e", "cpu-clock", "-o", data, "--", bin, ms).CombinedOutput(); err != nil {
		tb.Fatalf("perf record: %v\n%s", err, out)
	}
	flushDelivered(tb, a)
	fleet := storedStacks(tb, a.srv.Stored(), func(l samplebatch.Labels) bool { return l.Comm == "weights" })
	return compareShares(selfSamples(perfStacks(tb, perf, data)), selfSamples(fleet), 5)
}

// comparisonFlush is how often a comparisonAgent flushes.
const comparisonFlush = time.Second

// comparisonAgent is the real agent pipeline (eBPF sampler, symbolizer,
// unwind loader) shipping to an in-process ingest server. Its flushes are
// made by the test, one at a time, so that flushDelivered knows when
// everything sampled is stored (the agent's own flush loop would run
// concurrently with it).
type comparisonAgent struct {
	*Agent
	srv  *shiptest.Server
	mu   sync.Mutex // held during each Flush
	stop func()
}

// startComparisonAgent starts a comparisonAgent sampling at hz until stop
// is called or the test ends. fpOnly makes the kernel walk frame pointers
// only.
func startComparisonAgent(tb testing.TB, hz int, fpOnly bool) *comparisonAgent {
	tb.Helper()
	c := &comparisonAgent{srv: shiptest.NewServer()}
	c.srv.Rows = rowsOf
	addr, err := c.srv.Serve("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.srv.Stop)
	sym, err := symbolize.New(symbolize.Config{ExitGrace: 30 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	src, err := sampler.New(sampler.Config{Hz: hz, DrainInterval: comparisonFlush, UnwindRows: testRowBytes / unwind.RowSize, FramePointersOnly: fpOnly})
	if err != nil {
		tb.Fatalf("start sampler: %v", err)
	}
	c.Agent, err = New(Config{
		// The agent's own flush loop is as good as off.
		Aggregator: addr, Hz: hz, FlushInterval: 24 * time.Hour, SpoolDir: filepath.Join(tb.TempDir(), "spool"),
		NodeName: "node-test", MetricsAddr: MetricsOff, Kube: KubeOff, Ship: fastRetry,
		// Room for every file a busy host runs meanwhile: the comparison
		// measures unwinding, not eviction.
		Unwind: unwind.Config{MaxRowBytes: testRowBytes},
	}, src, sym)
	if err != nil {
		tb.Fatal(err)
	}
	stopAgent := runInBackground(tb, c.Agent)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(comparisonFlush)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := c.flush(); err != nil {
					tb.Error(err)
				}
			}
		}
	}()
	c.stop = sync.OnceFunc(func() {
		close(done)
		wg.Wait()
		stopAgent()
	})
	tb.Cleanup(c.stop)
	return c
}

func (c *comparisonAgent) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Flush(time.Now())
}

// flushDelivered flushes everything sampled so far and waits until the
// ingest server has acknowledged it.
func flushDelivered(tb testing.TB, c *comparisonAgent) {
	tb.Helper()
	if err := c.flush(); err != nil {
		tb.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st := c.Stats()
		if st.Ship.Acked >= st.Batches {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("batches not delivered in 30s: %+v", st)
		}
	}
}

// storedStacks returns samples per stack (frames root first, joined by
// ";") of the stored rows whose labels keep accepts.
func storedStacks(tb testing.TB, stored []shiptest.Batch, keep func(samplebatch.Labels) bool) map[string]int64 {
	tb.Helper()
	out := map[string]int64{}
	for _, sb := range stored {
		b, err := samplebatch.Decode(sb.Data, samplebatch.Limits{})
		if err != nil {
			tb.Fatal(err)
		}
		for _, r := range b.Rows {
			if keep(r.Labels) {
				out[strings.Join(b.Stacks[r.StackID], ";")] += r.Value
			}
		}
	}
	return out
}

// selfSamples returns samples per self (leaf) function of stacks as
// storedStacks and perfStacks return them.
func selfSamples(stacks map[string]int64) map[string]int64 {
	self := map[string]int64{}
	for s, n := range stacks {
		self[s[strings.LastIndexByte(s, ';')+1:]] += n
	}
	return self
}

// compareShares compares the union of both top-n lists.
func compareShares(perf, fleet map[string]int64, n int) agreement {
	var r agreement
	for _, v := range perf {
		r.perfTotal += v
	}
	for _, v := range fleet {
		r.fleetTotal += v
	}
	top := func(m map[string]int64) []string {
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(m[b], m[a]), strings.Compare(a, b)) })
		return names[:min(n, len(names))]
	}
	pct := func(v, total int64) float64 {
		if total == 0 {
			return 0
		}
		return 100 * float64(v) / float64(total)
	}
	names := top(perf)
	for _, name := range top(fleet) {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	for _, name := range names {
		s := share{name: name, perf: pct(perf[name], r.perfTotal), fleet: pct(fleet[name], r.fleetTotal), perfN: perf[name], fleetN: fleet[name]}
		s.diff = math.Abs(s.perf - s.fleet)
		r.maxDiff = max(r.maxDiff, s.diff)
		r.shares = append(r.shares, s)
	}
	return r
}

// perfStacks returns samples per stack (root first, joined by ";") of
// a perf.data file, frames named as the symbolizer names them: kernel
// frames suffixed "_[k]", unknown user frames "[unknown] <file>+0x<addr>".
// Inlined frames are not expanded (perf script --no-inline).
func perfStacks(tb testing.TB, perf, data string) map[string]int64 {
	tb.Helper()
	out, err := exec.Command(perf, "script", "-i", data, "-F", "comm,tid,ip,sym,dso", "--no-inline").Output()
	if err != nil {
		tb.Fatalf("perf script: %v", err)
	}
	stacks := parsePerfScript(out)
	if len(stacks) == 0 {
		tb.Fatalf("perf script has no samples:\n%.2000s", out)
	}
	return stacks
}

// perfFrame is a callchain line of perf script: "\t  4330 name (dso)",
// the address relative to its file for user frames.
var perfFrame = regexp.MustCompile(`^\s+([0-9a-f]+) (.*) \((.*)\)$`)

// parsePerfScript parses perf script's samples: a header line, the
// callchain leaf first, a blank line.
func parsePerfScript(out []byte) map[string]int64 {
	stacks := map[string]int64{}
	var leafFirst []string
	end := func() {
		if len(leafFirst) > 0 {
			slices.Reverse(leafFirst)
			stacks[strings.Join(leafFirst, ";")]++
		}
		leafFirst = leafFirst[:0]
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		m := perfFrame.FindStringSubmatch(line)
		if m == nil {
			end()
			continue
		}
		addr, name, dso := m[1], m[2], m[3]
		switch {
		case dso == "[kernel.kallsyms]" || strings.HasPrefix(dso, "[kernel"):
			name += "_[k]"
		case name == "[unknown]" && dso != "[unknown]":
			a, _ := strconv.ParseUint(addr, 16, 64)
			name = "[unknown] " + filepath.Base(dso) + "+0x" + strconv.FormatUint(a, 16)
		}
		leafFirst = append(leafFirst, name)
	}
	end()
	return stacks
}

// needPerf returns the perf binary, skipping if it cannot record here.
func needPerf(tb testing.TB) string {
	tb.Helper()
	perf := testenv.LookPath(tb, "perf", "linux-perf")
	data := filepath.Join(tb.TempDir(), "probe.data")
	if out, err := exec.Command(perf, "record", "-e", "cpu-clock", "-F", "99", "-g", "-o", data, "--", "true").CombinedOutput(); err != nil {
		testenv.Skip(tb, testenv.MissingTool, "perf record does not work here (%v), nothing to compare with:\n%s", err, out)
	}
	return perf
}

// buildC compiles testdata/<name>.c like the agreement docs say.
func buildC(tb testing.TB, name string) string {
	tb.Helper()
	gcc := testenv.LookPath(tb, "gcc", "gcc")
	bin := filepath.Join(tb.TempDir(), name)
	out, err := exec.Command(gcc, "-O1", "-fno-omit-frame-pointer", "-o", bin, "testdata/"+name+".c").CombinedOutput()
	if err != nil {
		tb.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}
