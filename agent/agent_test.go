package agent

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/fleetprof/fleetprof/agent/procmaps"
	"github.com/fleetprof/fleetprof/agent/sampler"
	"github.com/fleetprof/fleetprof/agent/sampler/samplertest"
	"github.com/fleetprof/fleetprof/agent/ship"
	"github.com/fleetprof/fleetprof/agent/ship/shiptest"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// fakeSymbolizer names address N "fN" (kernel: "kN_[k]"), 0xdead is unknown.
type fakeSymbolizer struct {
	mu      sync.Mutex
	started []uint32
	exited  []uint32
}

func (f *fakeSymbolizer) ProcessMapped(pid uint32, _ []procmaps.Mapping) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = append(f.started, pid)
	return nil
}

func (f *fakeSymbolizer) NextDrain() {}

func (f *fakeSymbolizer) ProcessExited(pid uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exited = append(f.exited, pid)
}

func (f *fakeSymbolizer) Symbolize(pid uint32, user, kernel []uint64) []string {
	var out []string
	name := func(a uint64, k bool) string {
		switch {
		case a == 0xdead:
			return "[unknown]"
		case k:
			return fmt.Sprintf("k%d_[k]", a)
		}
		return fmt.Sprintf("f%d", a)
	}
	for i := len(user) - 1; i >= 0; i-- {
		out = append(out, name(user[i], false))
	}
	for i := len(kernel) - 1; i >= 0; i-- {
		out = append(out, name(kernel[i], true))
	}
	return out
}

func (f *fakeSymbolizer) calls() (started, exited []uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.started), slices.Clone(f.exited)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func testConfig(t *testing.T, addr, spool string) Config {
	return Config{
		Aggregator: addr, Hz: 100, FlushInterval: time.Second, SpoolDir: spool,
		NodeName: "node-a", MetricsAddr: MetricsOff, Kube: KubeOff,
		Ship: ship.Config{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond},
	}
}

func newTestAgent(t *testing.T, cfg Config) (*Agent, *samplertest.Fake, *fakeSymbolizer) {
	t.Helper()
	src := samplertest.New(16)
	sym := &fakeSymbolizer{}
	a, err := New(cfg, src, sym)
	if err != nil {
		t.Fatal(err)
	}
	return a, src, sym
}

func decode(t *testing.T, data []byte) *samplebatch.Batch {
	t.Helper()
	b, err := samplebatch.Decode(data, samplebatch.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// spooled returns the spooled batch payloads, oldest first.
func spooled(t *testing.T, dir string) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.batch"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"defaults", func(*Config) {}, ""},
		{"hz", func(c *Config) { c.Hz = -1 }, "hz"},
		{"flush", func(c *Config) { c.FlushInterval = time.Millisecond }, "flush interval"},
		{"token twice", func(c *Config) { c.Token, c.TokenFile = "a", "b" }, "token"},
		{"kube mode", func(c *Config) { c.Kube = "maybe" }, "kubernetes mode"},
		{"metrics", func(c *Config) { c.MetricsAddr = "nonsense" }, "metrics address"},
		{"pprof without metrics", func(c *Config) { c.Pprof, c.MetricsAddr = true, MetricsOff }, "pprof"},
		{"aggregator", func(c *Config) { c.Aggregator = "no-port" }, "aggregator address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			tt.mod(&c)
			err := c.WithDefaults().Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate: %v, want %q", err, tt.want)
			}
		})
	}
	d := Config{}.WithDefaults()
	if d.Aggregator != "127.0.0.1:7071" || d.Hz != 19 || d.FlushInterval != 10*time.Second || d.MetricsAddr != "127.0.0.1:7072" || d.NodeName == "" {
		t.Fatalf("defaults %+v", d)
	}
}

func TestFlushAggregates(t *testing.T) {
	spool := t.TempDir()
	a, src, _ := newTestAgent(t, testConfig(t, freeAddr(t), spool))
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	a.mem = mem
	self := uint32(os.Getpid())
	src.Add(
		// Two threads, same stack: one row.
		sampler.Sample{PID: self, TGID: self, Comm: "worker-1", User: []uint64{3, 2, 1}, Count: 2},
		sampler.Sample{PID: self + 1, TGID: self, Comm: "worker-2", User: []uint64{3, 2, 1}, Count: 5},
		// Kernel frames come after user frames.
		sampler.Sample{PID: self, TGID: self, User: []uint64{2, 1}, Kernel: []uint64{8, 7}, Count: 1},
		// Unknown frames are kept and counted.
		sampler.Sample{PID: self, TGID: self, User: []uint64{0xdead, 1}, Count: 1},
		// No stack at all (both lost): still one frame.
		sampler.Sample{PID: self, TGID: self, Count: 4},
		// A process that is gone: labelled with the thread's comm.
		sampler.Sample{PID: 0x7ffffff0, TGID: 0x7ffffff0, Comm: "ghost", User: []uint64{9}, Count: 3},
	)
	src.Drop(sampler.DropUserStackCollision, 2)
	start := time.Unix(1_700_000_000, 0)
	a.lastFlush = start
	if err := a.Flush(start.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	mem.AssertSize(t, 0)
	batches := spooled(t, spool)
	if len(batches) != 1 {
		t.Fatalf("%d batches spooled, want 1", len(batches))
	}
	b := decode(t, batches[0])
	type got struct {
		pid   uint32
		comm  string
		stack string
		value int64
	}
	var rows []got
	selfComm := a.resolver.Resolve(self).Comm
	for _, r := range b.Rows {
		if r.TS != start.Unix() || r.PeriodNS != 10_000_000 || r.Labels.Host != "node-a" {
			t.Errorf("row %+v: want ts %d, period 10ms, host node-a", r, start.Unix())
		}
		if r.Labels.Service != r.Labels.Comm {
			t.Errorf("row %+v: service should fall back to comm", r.Labels)
		}
		rows = append(rows, got{r.Labels.PID, r.Labels.Comm, strings.Join(b.Stacks[r.StackID], ";"), r.Value})
	}
	want := []got{
		{self, selfComm, "[unknown]", 4},
		{self, selfComm, "f1;[unknown]", 1},
		{self, selfComm, "f1;f2;f3", 7},
		{self, selfComm, "f1;f2;k7_[k];k8_[k]", 1},
		{0x7ffffff0, "ghost", "f9", 3},
	}
	if !slices.Equal(rows, want) {
		t.Fatalf("rows\n%v\nwant\n%v", rows, want)
	}
	st := a.Stats()
	if st.UnknownFrames != 1 || st.Samples != 16 || st.Rows != 5 || st.Batches != 1 || st.Sampler.Drops[sampler.DropUserStackCollision] != 2 {
		t.Fatalf("stats %+v", st)
	}

	// Nothing sampled: no batch.
	if err := a.Flush(start.Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := len(spooled(t, spool)); n != 1 {
		t.Fatalf("%d batches after an empty flush, want 1", n)
	}
	// A failed drain is an error and loses nothing.
	src.FailNextDrain(fmt.Errorf("boom"))
	if err := a.Flush(start.Add(3 * time.Second)); err == nil || !strings.Contains(err.Error(), "drain samples: boom") {
		t.Fatalf("Flush after failed drain: %v", err)
	}
}

func TestFlushSplitsLargeBatches(t *testing.T) {
	spool := t.TempDir()
	cfg := testConfig(t, freeAddr(t), spool)
	cfg.MaxRowsPerBatch = 2
	a, src, _ := newTestAgent(t, cfg)
	for i := range 5 {
		src.Add(sampler.Sample{TGID: 1, User: []uint64{uint64(i + 1)}, Count: 1})
	}
	if err := a.Flush(time.Now()); err != nil {
		t.Fatal(err)
	}
	var total int64
	batches := spooled(t, spool)
	for _, data := range batches {
		total += decode(t, data).Samples()
	}
	if len(batches) != 3 || total != 5 {
		t.Fatalf("%d batches with %d samples, want 3 with 5", len(batches), total)
	}
}

func TestEventsReadProcessesEarly(t *testing.T) {
	a, src, sym := newTestAgent(t, testConfig(t, freeAddr(t), t.TempDir()))
	self := uint32(os.Getpid())
	for _, ev := range []sampler.ProcEvent{
		{Kind: sampler.EventFork, PID: self},
		{Kind: sampler.EventExec, PID: self, Comm: "x"},
		{Kind: sampler.EventExit, PID: 999999},
	} {
		if !src.Emit(ev) {
			t.Fatal("emit failed")
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for a.Stats().EventsHandled < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	started, exited := sym.calls()
	if !slices.Equal(started, []uint32{self}) || !slices.Equal(exited, []uint32{999999}) {
		t.Fatalf("symbolizer started %v exited %v", started, exited)
	}
}

func TestHandleEventsCoalesces(t *testing.T) {
	const (
		fork = sampler.EventFork
		exec = sampler.EventExec
		exit = sampler.EventExit
	)
	type ev struct {
		kind sampler.EventKind
		pid  uint32
	}
	tests := []struct {
		name            string
		events          []ev
		started, exited []uint32
	}{
		{"fork then exec: read once", []ev{{fork, 5}, {exec, 5}}, []uint32{5}, nil},
		{"exec before fork-only", []ev{{fork, 1}, {fork, 2}, {exec, 3}}, []uint32{3, 1, 2}, nil},
		{"exited in the batch: not read", []ev{{fork, 7}, {exec, 7}, {exit, 7}, {fork, 8}}, []uint32{8}, []uint32{7}},
		{"reused pid after exit", []ev{{exit, 9}, {fork, 9}}, []uint32{9}, []uint32{9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, freeAddr(t), t.TempDir())
			cfg.Unwind.ProcRoot = fakeProcRoot(t, 1, 2, 3, 5, 7, 8, 9)
			a, _, sym := newTestAgent(t, cfg)
			var batch []sampler.ProcEvent
			for _, e := range tt.events {
				batch = append(batch, sampler.ProcEvent{Kind: e.kind, PID: e.pid})
			}
			a.handleEvents(batch)
			for len(a.forks) > 0 {
				a.startOneFork()
			}
			started, exited := sym.calls()
			if !slices.Equal(started, tt.started) || !slices.Equal(exited, tt.exited) {
				t.Fatalf("started %v exited %v, want %v %v", started, exited, tt.started, tt.exited)
			}
		})
	}
}

func rowsOf(data []byte) (int64, error) {
	b, err := samplebatch.Decode(data, samplebatch.Limits{})
	if err != nil {
		return 0, err
	}
	return int64(len(b.Rows)), nil
}

func samplesIn(t *testing.T, stored []shiptest.Batch) int64 {
	var n int64
	for _, b := range stored {
		n += decode(t, b.Data).Samples()
	}
	return n
}

// TestSpoolEndToEnd: the aggregator is down while the agent flushes several
// batches and restarts; once it is up every sample is stored exactly once.
func TestSpoolEndToEnd(t *testing.T) {
	addr, spool := freeAddr(t), t.TempDir()
	cfg := testConfig(t, addr, spool)
	var want int64
	flush := func(a *Agent, src *samplertest.Fake, n int) {
		for i := range n {
			src.Add(sampler.Sample{TGID: 1, Comm: "init", User: []uint64{1, uint64(i + 2)}, Count: uint64(i + 1)})
			want += int64(i + 1)
			if err := a.Flush(time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	a1, src1, _ := newTestAgent(t, cfg)
	stop1 := runInBackground(t, a1)
	flush(a1, src1, 5)
	deadline := time.Now().Add(10 * time.Second)
	for a1.Stats().Ship.Failed < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	stop1()

	a2, src2, _ := newTestAgent(t, cfg)
	flush(a2, src2, 3)
	srv := shiptest.NewServer()
	srv.Rows = rowsOf
	if _, err := srv.Serve(addr); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	stop2 := runInBackground(t, a2)
	defer stop2()
	if !srv.WaitFor(20*time.Second, func(b []shiptest.Batch) bool { return len(b) == 8 }) {
		t.Fatalf("stored %d batches, want 8; stats %+v", len(srv.Stored()), a2.Stats().Ship)
	}
	stored := srv.Stored()
	if got := samplesIn(t, stored); got != want {
		t.Fatalf("stored %d samples, want %d", got, want)
	}
	for id, n := range srv.Received() {
		if n != 1 {
			t.Errorf("batch %s received %d times", id, n)
		}
	}
}

func TestMetrics(t *testing.T) {
	a, src, _ := newTestAgent(t, testConfig(t, freeAddr(t), t.TempDir()))
	src.Add(sampler.Sample{TGID: 1, User: []uint64{0xdead}, Count: 3})
	src.Drop(sampler.DropCountMapFull, 4)
	if err := a.Flush(time.Now()); err != nil {
		t.Fatal(err)
	}
	srv := http.Server{Handler: a.MetricsHandler()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	resp, err := http.Get("http://" + l.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"fleetprof_agent_samples_total 7",
		`fleetprof_agent_drops_total{reason="count_map_full"} 4`,
		"fleetprof_agent_symbolization_misses_total 1",
		"fleetprof_agent_batches_built_total 1",
		"fleetprof_agent_batches_acked_total 0",
		"fleetprof_agent_spool_batches 1",
		"fleetprof_agent_spool_dropped_total 0",
		"fleetprof_agent_python_processes_total 0",
		"fleetprof_agent_python_bad_read_walks_total 0",
		"fleetprof_agent_unwind_files_pending 0",
		"fleetprof_agent_unwind_tables_queued_total 0",
		"fleetprof_agent_unwind_cache_hits_total 0",
		"fleetprof_agent_unwind_cache_bytes 0",
		"process_cpu_seconds_total",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestPprofFlag: --pprof (Config.Pprof) serves the runtime's profiles on the
// metrics address; without it they answer 404 saying how to turn them on, and
// the metrics are served either way.
func TestPprofFlag(t *testing.T) {
	for _, c := range []struct {
		pprof    bool
		path     string
		want     int
		wantBody string
	}{
		{true, "/debug/pprof/goroutine?debug=1", http.StatusOK, "goroutine profile"},
		{true, "/metrics", http.StatusOK, "fleetprof_agent_samples_total"},
		{false, "/debug/pprof/goroutine?debug=1", http.StatusNotFound, "start the agent with --pprof"},
		{false, "/metrics", http.StatusOK, "fleetprof_agent_samples_total"},
	} {
		t.Run(fmt.Sprintf("pprof=%v%s", c.pprof, c.path), func(t *testing.T) {
			cfg := testConfig(t, freeAddr(t), t.TempDir())
			cfg.Pprof, cfg.MetricsAddr = c.pprof, "127.0.0.1:0" // served here through httptest
			a, _, _ := newTestAgent(t, cfg)
			srv := httptest.NewServer(a.HTTPHandler())
			defer srv.Close()
			resp, err := http.Get(srv.URL + c.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.want || !strings.Contains(string(body), c.wantBody) {
				t.Errorf("GET %s: %d %.80q, want %d containing %q", c.path, resp.StatusCode, body, c.want, c.wantBody)
			}
		})
	}
}

// runInBackground runs a until the returned stop is called; stop reports Run's error.
func runInBackground(tb testing.TB, a *Agent) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
	}
}

// fastRetry keeps tests from waiting on production backoff.
var fastRetry = ship.Config{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}

// A flush bigger than MaxBatchBytes is split until every batch fits; a single
// row that cannot fit is dropped and counted, and the rest still ships.
func TestFlushSplitsOversizeBatches(t *testing.T) {
	spool := t.TempDir()
	cfg := testConfig(t, freeAddr(t), spool)
	cfg.MaxBatchBytes = 2 * minBatchBytes
	a, src, _ := newTestAgent(t, cfg)
	var want int64
	for i := range 200 {
		user := make([]uint64, 20)
		for j := range user {
			user[j] = uint64(1000*i + j + 1)
		}
		src.Add(sampler.Sample{TGID: uint32(1 + i%7), User: user, Count: 2})
		want += 2
	}
	huge := make([]uint64, 4000) // one row of about 60 KB
	for j := range huge {
		huge[j] = uint64(1_000_000 + j)
	}
	src.Add(sampler.Sample{TGID: 99, User: huge, Count: 3})
	if err := a.Flush(time.Now()); err != nil {
		t.Fatal(err)
	}
	var total int64
	batches := spooled(t, spool)
	for _, data := range batches {
		if len(data) > cfg.MaxBatchBytes {
			t.Errorf("batch of %d bytes spooled, limit %d", len(data), cfg.MaxBatchBytes)
		}
		total += decode(t, data).Samples()
	}
	st := a.Stats()
	if total != want || st.OversizeDropped != 3 || st.BatchSplits == 0 || len(batches) < 2 {
		t.Fatalf("%d batches with %d samples (want %d), stats %+v", len(batches), total, want, st)
	}
}

// fakeProcRoot returns a proc root where each of pids has empty maps.
func fakeProcRoot(t *testing.T, pids ...uint32) string {
	t.Helper()
	dir := t.TempDir()
	for _, pid := range pids {
		d := filepath.Join(dir, strconv.FormatUint(uint64(pid), 10))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "maps"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
