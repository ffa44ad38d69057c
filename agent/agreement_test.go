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
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/agent/sampler"
	"github.com/fleetprof/fleetprof/agent/ship/shiptest"
	"github.com/fleetprof/fleetprof/agent/symbolize"
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
	dir := tb.TempDir()

	srv := shiptest.NewServer()
	srv.Rows = rowsOf
	addr, err := srv.Serve("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer srv.Stop()
	sym, err := symbolize.New(symbolize.Config{ExitGrace: 30 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	src, err := sampler.New(sampler.Config{Hz: agreementHz, DrainInterval: time.Second})
	if err != nil {
		tb.Fatalf("start sampler: %v", err)
	}
	a, err := New(Config{
		Aggregator: addr, Hz: agreementHz, FlushInterval: time.Second, SpoolDir: filepath.Join(dir, "spool"),
		NodeName: "node-test", MetricsAddr: MetricsOff, Kube: KubeOff,
		Ship: fastRetry,
	}, src, sym)
	if err != nil {
		tb.Fatal(err)
	}
	defer runInBackground(tb, a)()

	data := filepath.Join(dir, "perf.data")
	ms := strconv.FormatInt(d.Milliseconds(), 10)
	if out, err := exec.Command(perf, "record", "-F", strconv.Itoa(agreementHz), "-g", "-e", "cpu-clock", "-o", data, "--", bin, ms).CombinedOutput(); err != nil {
		tb.Fatalf("perf record: %v\n%s", err, out)
	}
	// Everything sampled so far is in this batch; wait until it is stored.
	if err := a.Flush(time.Now()); err != nil {
		tb.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st := a.Stats()
		if st.Ship.Acked >= st.Batches {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("batches not delivered in 30s: %+v", st)
		}
	}

	perfSelf := perfSelfSamples(tb, perf, data)
	fleetSelf := map[string]int64{}
	for _, sb := range srv.Stored() {
		b, err := samplebatch.Decode(sb.Data, samplebatch.Limits{})
		if err != nil {
			tb.Fatal(err)
		}
		for _, r := range b.Rows {
			if r.Labels.Comm != "weights" {
				continue
			}
			frames := b.Stacks[r.StackID]
			fleetSelf[strings.TrimSuffix(frames[len(frames)-1], "_[k]")] += r.Value
		}
	}
	return compareShares(perfSelf, fleetSelf, 5)
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

// perfReportLine is "    40.12%   1234  [.] w40": perf report -n with
// --sort symbol.
var perfReportLine = regexp.MustCompile(`^\s*[0-9.]+%\s+([0-9]+)\s+\[(.)\]\s+(\S+)`)

// perfSelfSamples returns samples per self function from perf report.
func perfSelfSamples(tb testing.TB, perf, data string) map[string]int64 {
	tb.Helper()
	out, err := exec.Command(perf, "report", "-i", data, "--stdio", "--no-children", "--sort", "symbol", "-g", "none", "--percent-limit", "0", "-n").Output()
	if err != nil {
		tb.Fatalf("perf report: %v", err)
	}
	self := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := perfReportLine.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			self[m[3]] += n
		}
	}
	if len(self) == 0 {
		tb.Fatalf("perf report has no samples:\n%s", out)
	}
	return self
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
