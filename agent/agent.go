package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/oklog/run"

	"github.com/fleetprof/fleetprof/agent/labels"
	"github.com/fleetprof/fleetprof/agent/procmaps"
	"github.com/fleetprof/fleetprof/agent/sampler"
	"github.com/fleetprof/fleetprof/agent/ship"
	"github.com/fleetprof/fleetprof/agent/symbolize"
	"github.com/fleetprof/fleetprof/agent/unwind"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// Symbolizer names the frames of a sample (agent/symbolize implements it).
type Symbolizer interface {
	// ProcessMapped takes a new process's maps (read while it is alive).
	ProcessMapped(pid uint32, maps []procmaps.Mapping) error
	// ProcessExited lets the symbolizer forget pid after a grace period.
	ProcessExited(pid uint32)
	// Symbolize returns names root first from leaf-first addresses.
	Symbolize(pid uint32, user, kernel []uint64) []string
	// NextDrain says a new drain's samples follow: maps read before it may
	// lack libraries they ran in.
	NextDrain()
}

// Stats are the agent's cumulative counters.
type Stats struct {
	Sampler         sampler.Stats // latest cumulative sampler stats
	Unwind          unwind.Stats
	Ship            ship.Stats
	Flushes         uint64 // drains done
	FlushErrors     uint64 // drains or spool writes that failed
	Batches         uint64 // batches built and spooled
	Rows            uint64 // rows in those batches
	Samples         uint64 // samples in those batches
	Frames          uint64 // frames symbolized
	UnknownFrames   uint64 // frames the symbolizer could not name
	ShortenedNames  uint64 // frame names shortened to Config.MaxFrameNameBytes
	BatchSplits     uint64 // batches split in two for exceeding Config.MaxBatchBytes
	OversizeDropped uint64 // samples in single rows bigger than Config.MaxBatchBytes, dropped
	EventsHandled   uint64 // process events handled
	StartErrors     uint64 // processes whose maps could not be read (already gone)
	ForksDropped    uint64 // fork children not read because the queue was full
	Python          PythonStats
	LastFlushError  string
}

// Agent samples, symbolizes, labels, aggregates and ships. Create it with
// New or Open and call Run once.
type Agent struct {
	cfg      Config
	src      sampler.Source
	sym      Symbolizer
	loader   *unwind.Loader
	py       *pythons
	resolver *labels.Resolver
	kube     *labels.Kube
	shipper  *ship.Shipper
	period   int64
	useComm  bool
	mem      memory.Allocator // batch buffers; tests use a checked allocator
	degraded []sampler.Requirement

	// forks and forkSet (when each was queued) queue fork children to
	// read; only the event loop touches them.
	forks   []uint32
	forkSet map[uint32]time.Time
	// late receives exec'd processes to read again (ExecRefreshDelays);
	// lateTimers are the timers still to fire for each, stopped at its
	// exit: most processes of a churning host are gone before the first,
	// and a re-read that finds the process gone still costs a timer, a
	// wake-up and a failed open. Only the event loop touches lateTimers.
	late       chan uint32
	lateTimers map[uint32]*lateRefresh

	mu           sync.Mutex // guards the fields below
	samplerStats sampler.Stats
	lastFlush    time.Time
	exited       []uint32 // pids to forget after the next flush
	lastErr      string

	flushes, flushErrors, batches, rows, samples, frames, unknown, shortened, splits, oversizeDropped, events, startErrs, forksDropped atomic.Uint64
}

// Open starts the real eBPF sampler and symbolizer and returns an agent
// using them. Errors loading BPF say what is missing (privileges, BTF, kernel).
func Open(cfg Config) (*Agent, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid agent config: %w", err)
	}
	tuneGC(cfg)
	sym, err := symbolize.New(symbolize.Config{
		// Samples of an exited process are drained up to one flush later.
		ExitGrace: 2*cfg.FlushInterval + 5*time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("create symbolizer: %w", err)
	}
	src, err := sampler.New(sampler.Config{
		Hz: cfg.Hz, DrainInterval: cfg.FlushInterval,
		UnwindRows: cfg.Unwind.Rows(), UnwindFiles: cfg.Unwind.MaxFiles,
	})
	if err != nil {
		return nil, fmt.Errorf("start sampler: %w", err)
	}
	a, err := New(cfg, src, sym)
	if err != nil {
		src.Close()
		return nil, err
	}
	// New failed already if a required capability is missing; what is left
	// degrades symbolization (CAP_SYS_PTRACE).
	if missing, err := sampler.CheckOwnCapabilities(); err == nil {
		for _, r := range missing {
			if !r.Required {
				a.degraded = append(a.degraded, r)
			}
		}
	}
	return a, nil
}

// tuneGC applies cfg's memory settings to this process unless the
// environment sets them.
func tuneGC(cfg Config) {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok && cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	if _, ok := os.LookupEnv("GOGC"); !ok && cfg.GCPercent > 0 {
		debug.SetGCPercent(cfg.GCPercent)
	}
}

// New returns an agent reading src and naming frames with sym. The agent
// owns src from now on: Run closes it.
func New(cfg Config, src sampler.Source, sym Symbolizer) (*Agent, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid agent config: %w", err)
	}
	token := cfg.Token
	if cfg.TokenFile != "" {
		b, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("read token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	a := &Agent{cfg: cfg, src: src, sym: sym, period: cfg.periodNS(), mem: memory.DefaultAllocator, lastFlush: time.Now(), forkSet: map[uint32]time.Time{}, late: make(chan uint32, maxPendingForks), lateTimers: map[uint32]*lateRefresh{}, py: newPythons(src)}
	loader, err := unwind.NewLoader(cfg.Unwind, src)
	if err != nil {
		return nil, err
	}
	a.loader = loader
	if cfg.Kube == KubeOn || cfg.Kube == KubeAuto && labels.InCluster() {
		k, err := labels.NewKube(cfg.KubeConfig)
		if err != nil {
			return nil, err
		}
		a.kube = k
	}
	lc := cfg.Labels
	lc.Kube = a.kube
	res, err := labels.NewResolver(lc)
	if err != nil {
		return nil, err
	}
	a.resolver = res
	a.useComm = len(lc.Order) == 0 || slices.Contains(lc.Order, labels.RuleComm)

	sc := cfg.Ship
	sc.Addr, sc.AgentID, sc.Token, sc.TLS = cfg.Aggregator, cfg.NodeName, token, cfg.TLS
	sc.SpoolDir, sc.SpoolMaxBytes = cfg.SpoolDir, cfg.SpoolMaxBytes
	shipper, err := ship.New(sc)
	if err != nil {
		return nil, err
	}
	a.shipper = shipper
	return a, nil
}

// Run runs the agent until ctx is done or an actor fails, then drains once
// more (so nothing sampled is lost), closes the source and returns.
func (a *Agent) Run(ctx context.Context) error {
	defer a.shipper.Close()
	defer a.src.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var g run.Group
	g.Add(func() error { <-ctx.Done(); return nil }, func(error) { cancel() })
	g.Add(func() error { return a.eventLoop(ctx) }, func(error) { cancel() })
	g.Add(func() error { return a.flushLoop(ctx) }, func(error) { cancel() })
	g.Add(func() error { return a.loader.Run(ctx) }, func(error) { cancel() })
	g.Add(func() error { return a.shipper.Run(ctx) }, func(error) { cancel() })
	if a.kube != nil {
		if a.cfg.Kube == KubeOn {
			if err := a.kube.Refresh(ctx); err != nil {
				return fmt.Errorf("list kubernetes pods: %w", err)
			}
		}
		g.Add(func() error { return a.kube.Run(ctx) }, func(error) { cancel() })
	}
	if a.cfg.MetricsAddr != MetricsOff {
		l, err := new(net.ListenConfig).Listen(ctx, "tcp", a.cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listen for metrics: %w", err)
		}
		srv := &http.Server{Handler: a.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second}
		g.Add(func() error {
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve metrics: %w", err)
			}
			return nil
		}, func(error) {
			sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer scancel()
			_ = srv.Shutdown(sctx)
		})
	}
	return g.Run()
}

// maxEventBatch bounds how many queued events are coalesced at once;
// maxPendingForks bounds the fork children waiting to be read.
const (
	maxEventBatch   = 4096
	maxPendingForks = 4096
)

// eventLoop reads process events. Exec'd processes are read at once; fork
// children wait in a queue read one at a time between event batches, so a
// burst of forks (a parallel build) does not delay new images, whose maps
// are the ones that cannot be recovered after a short process exits. A
// fork child is read only once it has waited Config.ForkReadDelay: most
// exec at once (a shell running commands), and are then read as the new
// image only.
func (a *Agent) eventLoop(ctx context.Context) error {
	events := a.src.Events()
	batch := make([]sampler.ProcEvent, 0, maxEventBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		batch = batch[:0]
		if wait, queued := a.forkWait(time.Now()); !queued || wait > 0 {
			var due <-chan time.Time
			if queued {
				timer.Reset(wait)
				due = timer.C
			}
			select {
			case <-ctx.Done():
				return nil
			case pid := <-a.late:
				a.refreshLate(pid)
				timer.Stop()
				continue
			case ev, ok := <-events:
				if !ok {
					return nil
				}
				batch = append(batch, ev)
			case <-due:
			}
			timer.Stop()
		} else if ctx.Err() != nil {
			return nil
		}
	more:
		for len(batch) < maxEventBatch {
			select {
			case ev, ok := <-events:
				if !ok {
					break more
				}
				batch = append(batch, ev)
			default:
				break more
			}
		}
		a.handleEvents(batch)
		if wait, queued := a.forkWait(time.Now()); queued && wait <= 0 {
			a.startOneFork()
		}
	}
}

// forkWait returns how long until the oldest queued fork child is due,
// and whether there is one.
func (a *Agent) forkWait(now time.Time) (time.Duration, bool) {
	if len(a.forks) == 0 {
		return 0, false
	}
	return a.forkSet[a.forks[0]].Add(a.cfg.ForkReadDelay).Sub(now), true
}

// handleEvents coalesces queued events before the slow part (reading maps and
// parsing new objects): a fork followed by exec is read once, as the new
// image; a process that already exited is not read at all. Exec'd processes
// are read now, fork children are queued for startOneFork.
func (a *Agent) handleEvents(batch []sampler.ProcEvent) {
	a.events.Add(uint64(len(batch)))
	type state struct{ exec, exited, refresh bool }
	procs := map[uint32]*state{}
	var order, exits []uint32
	for _, ev := range batch {
		switch ev.Kind {
		case sampler.EventPythonCode:
			a.py.code(ev.PID, ev.Code, ev.Lineno)
			continue
		case sampler.EventWantTable:
			a.loader.Wanted(ev.PID, ev.FileID)
			continue
		}
		st := procs[ev.PID]
		if st == nil {
			st = &state{}
			procs[ev.PID] = st
			order = append(order, ev.PID)
		}
		switch ev.Kind {
		case sampler.EventExec:
			st.exec, st.exited = true, false
			// Exec keeps the start time but changes comm and environment.
			a.resolver.Forget(ev.PID)
		case sampler.EventFork:
			st.exited = false
		case sampler.EventRefresh:
			st.refresh = true
		case sampler.EventExit:
			st.exited = true
			exits = append(exits, ev.PID)
			a.cancelLate(ev.PID) // now: a reused pid's exec later in the batch arms its own
		}
	}
	// Maps of every new image first, read once for the walker, the
	// symbolizer and the Python detector; the walker's mappings are
	// written at once: each sample until then walks without tables, and
	// reading symbols can take much longer.
	maps := map[uint32][]procmaps.Mapping{}
	for _, pid := range order {
		st := procs[pid]
		if st.exited || !st.exec && !st.refresh {
			continue
		}
		ms, err := procmaps.Read(a.cfg.Unwind.ProcRoot, pid)
		if err != nil {
			a.startErrs.Add(1) // gone already
			continue
		}
		maps[pid] = ms
		if st.exec {
			a.py.execed(pid, ms) // a new image: detected again
		}
		_, _ = a.loader.SetMaps(pid, ms) // errors are counted in the loader's stats
	}
	for _, pid := range order {
		st := procs[pid]
		switch {
		case st.exited:
			a.unqueueFork(pid) // gone: its maps cannot be read any more
		case st.exec:
			a.unqueueFork(pid)
			if ms, ok := maps[pid]; ok { // else gone already
				a.readProcess(pid, ms)
				a.scheduleLate(pid)
			}
		case st.refresh:
			a.unqueueFork(pid)
			if ms, ok := maps[pid]; ok {
				a.readProcess(pid, ms)
			}
		default:
			a.queueFork(pid)
		}
	}
	for _, pid := range exits {
		a.sym.ProcessExited(pid)
		_ = a.loader.ProcessExited(pid) // its pid_maps entry is only used while it runs
		a.py.exited(pid)
	}
	a.mu.Lock()
	a.exited = append(a.exited, exits...)
	a.mu.Unlock()
}

// startProcess reads maps and labels now: the process may be gone by the
// next flush.
func (a *Agent) startProcess(pid uint32) {
	ms, err := procmaps.Read(a.cfg.Unwind.ProcRoot, pid)
	if err != nil {
		a.startErrs.Add(1) // gone already
		return
	}
	// Python first: the kernel walks a process only once it is handed over,
	// and the loader's mappings keep the interpreter kind set here.
	a.py.started(pid, ms)
	// Mappings for the walker next: until they are in, its samples have
	// no tables; reading symbols can take much longer. Errors are counted
	// in the loader's stats.
	_, _ = a.loader.SetMaps(pid, ms)
	a.readProcess(pid, ms)
}

// readProcess hands pid's maps to the symbolizer and reads its labels.
func (a *Agent) readProcess(pid uint32, maps []procmaps.Mapping) {
	_ = a.sym.ProcessMapped(pid, maps)
	a.resolver.Resolve(pid)
}

// lateRefresh is an exec'd process's pending ExecRefreshDelays re-reads.
type lateRefresh struct {
	timers []*time.Timer
	left   int // re-reads not yet run
}

// scheduleLate arms pid's ExecRefreshDelays re-reads, replacing those of
// an earlier exec.
func (a *Agent) scheduleLate(pid uint32) {
	a.cancelLate(pid)
	lr := &lateRefresh{left: len(a.cfg.ExecRefreshDelays)}
	for _, d := range a.cfg.ExecRefreshDelays {
		lr.timers = append(lr.timers, time.AfterFunc(d, func() {
			select {
			case a.late <- pid:
			default: // backlog: the walker's refresh request remains
			}
		}))
	}
	a.lateTimers[pid] = lr
}

// cancelLate stops pid's pending re-reads (it exited or exec'd again).
func (a *Agent) cancelLate(pid uint32) {
	lr := a.lateTimers[pid]
	if lr == nil {
		return
	}
	for _, t := range lr.timers {
		t.Stop()
	}
	delete(a.lateTimers, pid)
}

// refreshLate reads an exec'd process's maps again, and hands them to the
// symbolizer if its code changed; it may be gone, which is no error.
func (a *Agent) refreshLate(pid uint32) {
	if lr := a.lateTimers[pid]; lr != nil {
		if lr.left--; lr.left <= 0 {
			delete(a.lateTimers, pid) // the last one: nothing left to stop
		}
	}
	ms, err := procmaps.Read(a.cfg.Unwind.ProcRoot, pid)
	if err != nil {
		return
	}
	if changed, err := a.loader.SetMaps(pid, ms); err == nil && changed {
		_ = a.sym.ProcessMapped(pid, ms)
	}
}

func (a *Agent) queueFork(pid uint32) {
	if _, ok := a.forkSet[pid]; ok {
		return
	}
	if len(a.forks) >= maxPendingForks {
		delete(a.forkSet, a.forks[0])
		a.forks = a.forks[1:]
		a.forksDropped.Add(1)
	}
	a.forkSet[pid] = time.Now()
	a.forks = append(a.forks, pid)
}

func (a *Agent) unqueueFork(pid uint32) {
	if _, ok := a.forkSet[pid]; !ok {
		return
	}
	delete(a.forkSet, pid)
	a.forks = slices.DeleteFunc(a.forks, func(p uint32) bool { return p == pid })
}

// startOneFork reads the oldest queued fork child.
func (a *Agent) startOneFork() {
	if len(a.forks) == 0 {
		return
	}
	pid := a.forks[0]
	a.forks = a.forks[1:]
	delete(a.forkSet, pid)
	a.startProcess(pid)
}

func (a *Agent) flushLoop(ctx context.Context) error {
	t := time.NewTicker(a.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			a.flushOrCount(time.Now())
			return nil
		case now := <-t.C:
			a.flushOrCount(now)
		}
	}
}

// flushOrCount flushes; errors are counted and kept for Stats rather than
// stopping the agent (the next flush retries the drain).
func (a *Agent) flushOrCount(now time.Time) {
	if err := a.Flush(now); err != nil {
		a.flushErrors.Add(1)
		a.mu.Lock()
		a.lastErr = err.Error()
		a.mu.Unlock()
	}
}

// row is one aggregated (process, stack) with its sample count.
type row struct {
	pid    uint32
	stack  string // frames joined by "\n"
	frames []string
	// locations is parallel to frames (interpreter frames' source locations),
	// nil when none is known.
	locations []string
	value     int64
	comm      string // thread comm of a sample, the fallback process name
	// mainComm is the comm the kernel reported for the process's main thread
	// (tid == tgid) when the sample was taken: after an exec it tells a stale
	// label cache from the process as it was sampled.
	mainComm string
}

// Flush drains the source, builds batches of the interval that ends at now
// and spools them for shipping. Run calls it every FlushInterval.
func (a *Agent) Flush(now time.Time) error {
	a.mu.Lock()
	start := a.lastFlush
	a.lastFlush = now
	exited := a.exited
	a.exited = nil
	a.mu.Unlock()

	samples, st, err := a.src.Drain()
	a.flushes.Add(1)
	if err != nil {
		a.mu.Lock()
		a.exited = append(exited, a.exited...) // forget them after a later flush
		a.mu.Unlock()
		return fmt.Errorf("drain samples: %w", err)
	}
	// Tables are built for the files samples land in (the first samples
	// there walk by frame pointers).
	a.loader.Sampled(userStacks(samples))
	a.mu.Lock()
	a.samplerStats = st
	a.mu.Unlock()

	a.sym.NextDrain()
	rows := a.aggregate(samples)
	for _, pid := range exited {
		a.resolver.Forget(pid)
	}
	if len(rows) == 0 {
		return nil
	}
	for chunk := range slices.Chunk(rows, a.cfg.MaxRowsPerBatch) {
		if err := a.spool(chunk, start.Unix()); err != nil {
			return err
		}
	}
	return nil
}

// spool encodes rows into one batch and spools it; a batch over
// Config.MaxBatchBytes is split in halves (rows are sorted by process and
// stack, so halves keep processes together) until each part fits. A single
// row that cannot fit is dropped and counted.
func (a *Agent) spool(rows []*row, ts int64) error {
	data, n, err := a.encode(rows, ts)
	if err != nil {
		return err
	}
	if len(data) > a.cfg.MaxBatchBytes {
		if len(rows) == 1 {
			a.oversizeDropped.Add(uint64(n))
			return nil
		}
		a.splits.Add(1)
		half := len(rows) / 2
		if err := a.spool(rows[:half], ts); err != nil {
			return err
		}
		return a.spool(rows[half:], ts)
	}
	if _, err := a.shipper.Send(data); err != nil {
		return fmt.Errorf("spool batch: %w", err)
	}
	a.batches.Add(1)
	a.rows.Add(uint64(len(rows)))
	a.samples.Add(uint64(n))
	return nil
}

// shortenNames returns frames with every name over Config.MaxFrameNameBytes shortened
// (samplebatch.ShortenName), copying the slice only when a name changes because the
// symbolizer may return cached slices.
func (a *Agent) shortenNames(frames []string) []string {
	out := frames
	for i, f := range frames {
		if len(f) <= a.cfg.MaxFrameNameBytes {
			continue
		}
		if &out[0] == &frames[0] {
			out = append([]string(nil), frames...)
		}
		out[i] = samplebatch.ShortenName(f, a.cfg.MaxFrameNameBytes)
		a.shortened.Add(1)
	}
	return out
}

// userStacks yields the process and user pcs of each sample.
func userStacks(samples []sampler.Sample) iter.Seq2[uint32, []uint64] {
	return func(yield func(uint32, []uint64) bool) {
		for _, s := range samples {
			if len(s.User) > 0 && !yield(s.TGID, s.User) {
				return
			}
		}
	}
}

// aggregate symbolizes samples and sums identical (process, stack) rows;
// rows are sorted so batches are deterministic.
func (a *Agent) aggregate(samples []sampler.Sample) []*row {
	type key struct {
		pid   uint32
		stack string
	}
	byKey := map[key]*row{}
	for _, s := range samples {
		frames, locs := a.py.merge(s, a.sym.Symbolize(s.TGID, s.User, s.Kernel))
		a.frames.Add(uint64(len(frames)))
		for _, f := range frames {
			if strings.HasPrefix(f, "[unknown]") {
				a.unknown.Add(1)
			}
		}
		if len(frames) == 0 {
			frames, locs = []string{"[unknown]"}, nil // the schema needs one frame
		}
		frames = a.shortenNames(frames)
		k := key{s.TGID, strings.Join(frames, "\n")}
		r := byKey[k]
		if r == nil {
			r = &row{pid: s.TGID, stack: k.stack, frames: frames, locations: locs, comm: s.Comm}
			byKey[k] = r
		}
		if s.PID == s.TGID && r.mainComm == "" {
			r.mainComm = s.Comm
		}
		r.value += int64(s.Count)
	}
	a.py.sweep()
	rows := make([]*row, 0, len(byKey))
	for _, r := range byKey {
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(x, y *row) int {
		return cmp.Or(cmp.Compare(x.pid, y.pid), strings.Compare(x.stack, y.stack))
	})
	return rows
}

// encode builds one Arrow batch of rows with bucket start ts (Unix seconds).
func (a *Agent) encode(rows []*row, ts int64) ([]byte, int64, error) {
	b := samplebatch.NewBuilder(a.mem)
	defer b.Release()
	type who struct {
		pid      uint32
		mainComm string
	}
	infos := map[who]samplebatch.Labels{}
	var n int64
	for _, r := range rows {
		k := who{r.pid, r.mainComm}
		l, ok := infos[k]
		if !ok {
			l = a.labelsFor(r.pid, r.comm, r.mainComm)
			infos[k] = l
		}
		b.Append(samplebatch.Sample{TS: ts, Labels: l, Frames: r.frames, Locations: r.locations, Value: r.value, PeriodNS: a.period})
		n += r.value
	}
	rec := b.NewRecord()
	defer rec.Release()
	data, err := samplebatch.EncodeIPC(a.mem, rec)
	if err != nil {
		return nil, 0, err
	}
	return data, n, nil
}

func (a *Agent) labelsFor(pid uint32, threadComm, mainComm string) samplebatch.Labels {
	info := a.resolver.Resolve(pid)
	if mainComm != "" && info.Comm != "" && info.Comm != mainComm {
		// The process exec'd after its labels were cached and its exec event is
		// not handled yet: read it again, or fall back to what the kernel
		// reported if it is gone already.
		a.resolver.Forget(pid)
		info = a.resolver.Resolve(pid)
	}
	comm := cmp.Or(info.Comm, threadComm)
	svc := info.Service
	if svc == "" && a.useComm {
		svc = comm
	}
	return samplebatch.Labels{
		Service: svc, Version: info.Version, Host: a.cfg.NodeName,
		Namespace: info.Namespace, Pod: info.Pod, Container: info.Container,
		Comm: comm, PID: pid,
	}
}

// Warnings names what the agent cannot do with its capabilities, e.g.
// "missing capability CAP_SYS_PTRACE (needed for reading maps ... of other
// users' processes ...)". Commands log them at start; /metrics exports them
// as fleetprof_agent_capability_missing.
func (a *Agent) Warnings() []string {
	var w []string
	for _, r := range a.degraded {
		w = append(w, r.String())
	}
	return w
}

// Stats returns a snapshot of the counters.
func (a *Agent) Stats() Stats {
	a.mu.Lock()
	st, last := a.samplerStats, a.lastErr
	a.mu.Unlock()
	return Stats{
		Sampler:         st,
		Unwind:          a.loader.Stats(),
		Ship:            a.shipper.Stats(),
		Flushes:         a.flushes.Load(),
		FlushErrors:     a.flushErrors.Load(),
		Batches:         a.batches.Load(),
		Rows:            a.rows.Load(),
		Samples:         a.samples.Load(),
		Frames:          a.frames.Load(),
		UnknownFrames:   a.unknown.Load(),
		ShortenedNames:  a.shortened.Load(),
		BatchSplits:     a.splits.Load(),
		OversizeDropped: a.oversizeDropped.Load(),
		EventsHandled:   a.events.Load(),
		StartErrors:     a.startErrs.Load(),
		ForksDropped:    a.forksDropped.Load(),
		Python:          a.py.stats(),
		LastFlushError:  last,
	}
}
