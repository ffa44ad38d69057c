package agent

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/agent/sampler"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// Fidelity against perf record --call-graph dwarf (issue #11): both
// profilers sample the same run of each workload.
const (
	// fidelityHz is both profilers' rate, agreementHz's: 3,000 samples of
	// a workload on a full CPU keep the sampling noise of a self share
	// (about sqrt(2p(1-p)/N), 1.2 points at p = 0.3) below fidelityTopAim;
	// on a busy host the table's noise column says how far it is.
	fidelityHz = agreementHz
	// fidelityRun is how long each workload burns CPU.
	fidelityRun = 3 * time.Second
	// fidelityCompleteAim is the aim for completeness: within this
	// many points of perf's.
	fidelityCompleteAim = 2.0
	// fidelityTopAim is the aim for the largest difference of a
	// top-5 self share, in points.
	fidelityTopAim = 3.0
	// fidelityNoiseSigmas is how many standard errors of sampling noise
	// a top-5 difference may exceed fidelityTopAim by to count as
	// "within noise" rather than missed.
	fidelityNoiseSigmas = 2.0
)

// rootFrames (or their aliases) make a stack complete: the program's
// entry, or libc's call of main (perf's DWARF walk may stop there).
var rootFrames = []string{"main", "__libc_start_call_main", "__libc_start_main", "_start"}

// fidelityWorkload is one program both profilers sample.
type fidelityWorkload struct {
	name string   // comm
	argv []string // command line, binary first
	// feed starts the workload once its unwind tables are in: it blocks
	// on stdin until then.
	feed func(w io.Writer) error
	// leaf and chain are a nativeFixture's: the share of samples in leaf
	// that carry chain. Empty for a program without a known chain.
	leaf, chain string
}

// fidelity is one workload's comparison.
type fidelity struct {
	name                        string
	perfN, fleetN               int64
	perfComplete, fleetComplete float64 // % of samples with a root frame
	perfChain, fleetChain       float64 // % of leaf samples with the chain; NaN without one
	top                         agreement
	// perfIncomplete and fleetIncomplete are each side's most frequent
	// stack without a root frame.
	perfIncomplete, fleetIncomplete string
}

func (f fidelity) completeGap() float64 { return f.perfComplete - f.fleetComplete }

// topNoise is one standard error of the sampling noise of the share that
// differs most (two independent profiles), in points.
func (f fidelity) topNoise() float64 {
	for _, s := range f.top.shares {
		if s.diff == f.top.maxDiff {
			p := (s.perf + s.fleet) / 200
			return 100 * math.Sqrt(p*(1-p)*(1/float64(max(f.top.perfTotal, 1))+1/float64(max(f.top.fleetTotal, 1))))
		}
	}
	return 0
}

// BenchmarkFidelity runs the native unwind fixtures (gcc -O2 PIE and
// non-PIE, clang -O2 -fomit-frame-pointer, a frame-pointer build with a
// frameless leaf, qsort through Debian's libc) and Debian's gzip
// compressing generated text, each under perf record --call-graph dwarf
// while the real agent profiles the host at the same rate, and reports per
// workload the share of complete stacks, of the exact chain where one is
// known, and the largest top-5 self-share difference.
func BenchmarkFidelity(b *testing.B) {
	needRoot(b)
	perf := needPerf(b)
	dir := b.TempDir()
	var workloads []fidelityWorkload
	for _, fx := range nativeFixtures {
		workloads = append(workloads, fixtureWorkload(b, fx, dir))
	}
	gzip := testenv.LookPath(b, "gzip", "gzip") // Debian: Essential, always installed
	workloads = append(workloads, fidelityWorkload{name: "gzip", argv: []string{gzip, "-9", "-c"}, feed: func(w io.Writer) error {
		return feedText(w, fidelityRun)
	}})

	// One agent for every workload: starting one costs seconds on a busy
	// host.
	a := startComparisonAgent(b, fidelityHz, false)
	defer a.stop()
	var rs []fidelity
	for _, w := range workloads {
		b.Run(w.name, func(b *testing.B) {
			for b.Loop() {
				data := filepath.Join(dir, w.name+".data")
				pid := runUnderPerf(b, a, perf, data, w)
				flushDelivered(b, a)
				fleet := storedStacks(b, a.srv.Stored(), func(l samplebatch.Labels) bool { return l.PID == pid && l.Comm == w.name })
				r := compareFidelity(w, perfAliases(b, perf, data), perfStacks(b, perf, data), fleet)
				st := a.Stats()
				b.Logf("pid %d; agent so far: %d events handled, %d lost, %d start errors, %d forks dropped, %d of %d frames unknown",
					pid, st.EventsHandled, st.Sampler.Drops[sampler.DropEventsLost], st.StartErrors, st.ForksDropped, st.UnknownFrames, st.Frames)
				b.ReportMetric(r.fleetComplete, "complete-pct")
				b.ReportMetric(r.completeGap(), "complete-gap-points")
				if !math.IsNaN(r.fleetChain) {
					b.ReportMetric(r.fleetChain, "chain-pct")
				}
				b.ReportMetric(r.top.maxDiff, "top5-diff-points")
				b.ReportMetric(float64(r.fleetN), "fleetprof-samples")
				rs = append(rs, r)
			}
		})
	}
	b.Logf("\n%s", fidelityTable(rs))
}

// aliases maps every function name of the files a perf.data file
// samples to one name per address (the smallest), so that perf and
// fleetprof picking different aliases of one function (glibc's
// "__GI___qsort_r" and "qsort_r", the memcpy and memmove variants sharing
// code) compare equal.
type aliases map[string]string

// perfAliases reads the symbols of the files perf recorded (by perf
// buildid-list) and of their debug files under /usr/lib/debug/.build-id.
func perfAliases(tb testing.TB, perf, data string) aliases {
	tb.Helper()
	out, err := exec.CommandContext(context.Background(), perf, "buildid-list", "-i", data).Output()
	if err != nil {
		tb.Fatalf("perf buildid-list: %v", err)
	}
	al := aliases{}
	for line := range strings.Lines(string(out)) {
		id, file, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || len(id) < 3 || !strings.HasPrefix(file, "/") {
			continue
		}
		al.add(file, "/usr/lib/debug/.build-id/"+id[:2]+"/"+id[2:]+".debug")
	}
	return al
}

// add records the aliases among the function symbols of one object: its
// ELF files (the file and its debug file share addresses); files that
// cannot be read add nothing.
func (al aliases) add(paths ...string) {
	byAddr := map[uint64][]string{}
	for _, path := range paths {
		ef, err := elf.Open(path)
		if err != nil {
			continue
		}
		for _, get := range []func() ([]elf.Symbol, error){ef.Symbols, ef.DynamicSymbols} {
			syms, _ := get() // a stripped file has no .symtab
			for _, sym := range syms {
				if elf.ST_TYPE(sym.Info) == elf.STT_FUNC && sym.Value != 0 {
					byAddr[sym.Value] = append(byAddr[sym.Value], sym.Name)
				}
			}
		}
		ef.Close()
	}
	for _, names := range byAddr {
		first := slices.Min(names)
		for _, n := range names {
			if _, ok := al[n]; !ok {
				al[n] = first
			}
		}
	}
}

// name is f's comparable name: without a symbol version ("@@GLIBC_2.34",
// which perf shows), then its address's first alias.
func (al aliases) name(f string) string {
	if i := strings.IndexByte(f, '@'); i > 0 && !strings.HasPrefix(f, "[unknown]") {
		f = f[:i]
	}
	if c, ok := al[f]; ok {
		return c
	}
	return f
}

// names renames every frame of ";"-joined frames.
func (al aliases) names(frames string) string {
	fs := strings.Split(frames, ";")
	for i, f := range fs {
		fs[i] = al.name(f)
	}
	return strings.Join(fs, ";")
}

// stacks renames every frame of stacks.
func (al aliases) stacks(stacks map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(stacks))
	for s, n := range stacks {
		out[al.names(s)] += n
	}
	return out
}

// fixtureWorkload builds fx into dir; it runs for fidelityRun once a byte
// arrives on its stdin (FIXTURE_WAIT).
func fixtureWorkload(tb testing.TB, fx nativeFixture, dir string) fidelityWorkload {
	tb.Helper()
	return fidelityWorkload{
		name: fx.name, argv: []string{buildNative(tb, fx, dir), strconv.FormatInt(fidelityRun.Milliseconds(), 10)},
		feed: func(w io.Writer) error { _, err := w.Write([]byte{1}); return err },
		leaf: fx.leaf, chain: fx.chain,
	}
}

// compareFidelity compares the stacks perf and fleetprof recorded of w,
// frames named by al.
func compareFidelity(w fidelityWorkload, al aliases, perf, fleet map[string]int64) fidelity {
	perf, fleet = al.stacks(perf), al.stacks(fleet)
	roots := make([]string, len(rootFrames))
	for i, r := range rootFrames {
		roots[i] = al.name(r)
	}
	f := fidelity{name: w.name, perfChain: math.NaN(), fleetChain: math.NaN(), top: compareShares(selfSamples(perf), selfSamples(fleet), 5)}
	f.perfN, f.perfComplete, f.perfIncomplete = completeShare(perf, roots)
	f.fleetN, f.fleetComplete, f.fleetIncomplete = completeShare(fleet, roots)
	if w.chain != "" {
		leaf, chain := al.names(w.leaf), al.names(w.chain)
		f.perfChain, f.fleetChain = chainShare(perf, leaf, chain), chainShare(fleet, leaf, chain)
	}
	return f
}

// completeShare returns the number of samples, the percentage of them
// whose stack has one of roots and the most frequent other stack.
func completeShare(stacks map[string]int64, roots []string) (total int64, pct float64, incomplete string) {
	var complete, worst int64
	for s, n := range stacks {
		total += n
		if slices.ContainsFunc(strings.Split(s, ";"), func(f string) bool { return slices.Contains(roots, f) }) {
			complete += n
		} else if n > worst || n == worst && s < incomplete {
			worst, incomplete = n, s
		}
	}
	return total, 100 * float64(complete) / float64(max(total, 1)), incomplete
}

// chainShare is the percentage of the samples through leaf (";name") whose
// stack has chain (";main;a;...;name"), as TestNativeUnwind counts them.
func chainShare(stacks map[string]int64, leaf, chain string) float64 {
	var inLeaf, withChain int64
	for s, n := range stacks {
		s = ";" + s + ";"
		if !strings.Contains(s, leaf+";") {
			continue
		}
		inLeaf += n
		if strings.Contains(s, chain+";") {
			withChain += n
		}
	}
	return 100 * float64(withChain) / float64(max(inLeaf, 1))
}

func fidelityTable(rs []fidelity) string {
	var b strings.Builder
	pct := func(v float64) string {
		if math.IsNaN(v) {
			return "—"
		}
		return fmt.Sprintf("%.1f", v)
	}
	fmt.Fprintf(&b, "%-15s %13s %21s %15s %10s %6s  %s\n", "workload", "samples p/f", "complete % perf/fleet", "chain % p/f", "top-5 diff", "noise", "aims (complete ±2, top-5 ≤3)")
	for _, r := range rs {
		aims := "met"
		switch {
		case r.completeGap() > fidelityCompleteAim:
			aims = "missed"
		case r.top.maxDiff > fidelityTopAim+fidelityNoiseSigmas*r.topNoise():
			aims = "missed"
		case r.top.maxDiff > fidelityTopAim:
			aims = "within noise"
		}
		fmt.Fprintf(&b, "%-15s %6d/%-6d %10.1f / %-8.1f %7s/%-7s %10.2f %6.2f  %s\n", r.name, r.perfN, r.fleetN,
			r.perfComplete, r.fleetComplete, pct(r.perfChain), pct(r.fleetChain), r.top.maxDiff, r.topNoise(), aims)
	}
	for _, r := range rs {
		fmt.Fprintf(&b, "\n%s top-5 self shares, %s", r.name, r.top)
		if r.fleetIncomplete != "" {
			fmt.Fprintf(&b, "most frequent incomplete stack: fleetprof %q, perf %q\n", shorten(r.fleetIncomplete), shorten(r.perfIncomplete))
		}
	}
	return b.String()
}

// runUnderPerf runs w under perf record --call-graph dwarf (see runFed)
// and returns its pid.
func runUnderPerf(tb testing.TB, a *comparisonAgent, perf, data string, w fidelityWorkload) uint32 {
	tb.Helper()
	args := append([]string{"record", "-F", strconv.Itoa(fidelityHz), "-e", "cpu-clock", "--call-graph", "dwarf", "-o", data, "--"}, w.argv...)
	return runFed(tb, a, exec.CommandContext(context.Background(), perf, args...), true, w, nil)
}

// runFed starts cmd (w's command line, or perf running it as its child
// when underPerf), waits until the agent has the unwind tables of every
// file w's process maps, calls started (if not nil), feeds the process
// and waits for cmd to exit. It returns the process's pid.
func runFed(tb testing.TB, a *comparisonAgent, cmd *exec.Cmd, underPerf bool, w fidelityWorkload, started func()) uint32 {
	tb.Helper()
	cmd.Env = append(os.Environ(), "FIXTURE_WAIT=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }() // no-op once waited for
	pid := uint32(cmd.Process.Pid)
	if underPerf {
		pid = waitChild(tb, cmd.Process.Pid, w.name)
	}
	waitTables(tb, a, pid)
	if started != nil {
		started()
	}
	if err := w.feed(in); err != nil {
		tb.Fatalf("%s: %v", w.name, err)
	}
	_ = in.Close()
	if err := cmd.Wait(); err != nil {
		tb.Fatalf("%s %s: %v\n%s", cmd.Path, w.name, err, stderr.Bytes())
	}
	return pid
}

// waitChild returns the child of parent whose comm is comm (perf's
// workload, once it has exec'd).
func waitChild(tb testing.TB, parent int, comm string) uint32 {
	tb.Helper()
	for deadline := time.Now().Add(readyTimeout); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", parent, parent))
		for k := range strings.FieldsSeq(string(kids)) {
			if c, _ := os.ReadFile("/proc/" + k + "/comm"); strings.TrimSpace(string(c)) == comm {
				pid, _ := strconv.ParseUint(k, 10, 32)
				return uint32(pid)
			}
		}
	}
	tb.Fatalf("no child %q of perf (pid %d) after %v", comm, parent, readyTimeout)
	return 0
}

// waitTables waits until the agent has the unwind tables of every file pid
// maps (until then the walker uses frame pointers). It refreshes the maps
// itself: blocked on stdin, the process sends no EVENT_REFRESH, and its
// exec-time maps lack libc.
func waitTables(tb testing.TB, a *comparisonAgent, pid uint32) {
	tb.Helper()
	for deadline := time.Now().Add(readyTimeout); ; time.Sleep(10 * time.Millisecond) {
		if _, err := a.loader.Refresh(pid); err != nil {
			tb.Fatal(err)
		}
		if a.loader.Ready(pid) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pid %d: unwind tables not loaded after %v: %+v", pid, readyTimeout, a.loader.Stats())
		}
	}
}

// feedText writes text-like data (pseudo-random words from a fixed
// vocabulary, so a compressor works as on real text) to w for d.
func feedText(w io.Writer, d time.Duration) error {
	r := rand.New(rand.NewPCG(1, 2))
	words := make([][]byte, 5000)
	for i := range words {
		for range 2 + r.IntN(8) {
			words[i] = append(words[i], byte('a'+r.IntN(16)))
		}
	}
	buf := make([]byte, 0, 64<<10)
	for end := time.Now().Add(d); time.Now().Before(end); {
		buf = buf[:0]
		for i := 0; len(buf) < cap(buf)-16; i++ {
			buf = append(buf, words[r.IntN(len(words))]...)
			sep := byte(' ')
			if i%13 == 12 {
				sep = '\n'
			}
			buf = append(buf, sep)
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("feed: %w", err)
		}
	}
	return nil
}
