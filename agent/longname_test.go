package agent

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/agent/sampler"
	"github.com/fleetprof/fleetprof/agent/ship/shiptest"
	"github.com/fleetprof/fleetprof/agent/symbolize"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// TestRealLongFrameNames profiles a C++ program in libstdc++'s std::sort over
// std::string (demangled names over 1 KiB) next to a C program: both processes'
// samples must arrive, decoded under the aggregator's default limits, with the
// long names shortened and marked.
func TestRealLongFrameNames(t *testing.T) {
	needRoot(t)
	gxx := testenv.LookPath(t, "g++", "g++")
	bin := filepath.Join(t.TempDir(), "longname")
	if out, err := exec.Command(gxx, "-O2", "-fno-omit-frame-pointer", "-o", bin, "testdata/longname.cc").CombinedOutput(); err != nil {
		t.Fatalf("g++: %v\n%s", err, out)
	}
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
	a, err := New(Config{
		Aggregator: addr, Hz: 99, FlushInterval: time.Second, SpoolDir: t.TempDir(),
		NodeName: "node-test", MetricsAddr: MetricsOff, Kube: KubeOff, Ship: fastRetry,
	}, src, sym)
	if err != nil {
		t.Fatal(err)
	}
	defer runInBackground(t, a)()

	cxx, c := exec.Command(bin, "3000"), exec.Command(chain, "3000")
	for _, cmd := range []*exec.Cmd{cxx, c} {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, cmd := range []*exec.Cmd{cxx, c} {
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	sorts := func(s string) bool {
		return strings.Contains(s, "std::__introsort_loop<") || strings.Contains(s, "std::__insertion_sort<")
	}
	hasChain := func(s string) bool { return strings.Contains(";"+s+";", ";main;a;b;c;") }
	ok := srv.WaitFor(30*time.Second, func(stored []shiptest.Batch) bool {
		return anyStack(stacksOf(t, stored, cxx.Process.Pid), sorts) && anyStack(stacksOf(t, stored, c.Process.Pid), hasChain)
	})
	st := a.Stats()
	if !ok {
		t.Fatalf("samples missing: c++ stacks %q; agent stats %+v", stacksOf(t, srv.Stored(), cxx.Process.Pid), st)
	}
	var sortStacks int
	for _, s := range stacksOf(t, srv.Stored(), cxx.Process.Pid) {
		if !sorts(s) {
			continue
		}
		sortStacks++
		for f := range strings.SplitSeq(s, ";") {
			if len(f) > DefaultMaxFrameNameBytes {
				t.Errorf("frame of %d bytes shipped, limit %d", len(f), DefaultMaxFrameNameBytes)
			}
		}
		if !strings.Contains(s, samplebatch.ElisionMarker) {
			t.Errorf("sort stack without a shortened name: %q", s)
		}
	}
	if st.ShortenedNames == 0 || st.Ship.Rejected != 0 {
		t.Errorf("shortened %d names, %d batches rejected; want > 0 and 0", st.ShortenedNames, st.Ship.Rejected)
	}
	t.Logf("%d sort stacks, %d names shortened, stats %+v", sortStacks, st.ShortenedNames, st)
}
