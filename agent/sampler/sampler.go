package sampler

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/fleetprof/fleetprof/bpf"
)

// maxStackDepth matches MAX_STACK_DEPTH in profiler.bpf.c (the stack map's value size).
const maxStackDepth = 127

// batchSize is the number of count map entries per batch syscall. Hash map
// batches fail with ENOSPC if a bucket holds more, which at this size needs
// an absurdly bad hash.
const batchSize = 1024

// Sample is the number of times one thread was seen on CPU with one pair
// of stacks since the previous Drain.
type Sample struct {
	PID  uint32 // thread id (the kernel's pid)
	TGID uint32 // process id
	Comm string // thread command name
	// User and Kernel are instruction pointers, leaf first, as the kernel
	// returns them. Nil when the stack is missing (kernel thread, or a
	// loss counted in Stats.Drops).
	User   []uint64
	Kernel []uint64
	// Interp is the user stack's interpreter section, leaf first (Python
	// frames of the sampled thread, see InterpFrame); nil for native-only.
	Interp []InterpFrame
	Count  uint64
}

// Sampler samples stacks on every online CPU. Drain and Close may be
// called from different goroutines; Events is read by one consumer.
type Sampler struct {
	cfg     Config
	objs    bpf.ProfilerObjects
	links   []link.Link
	perfFDs []int
	ring    *ringbuf.Reader
	events  chan ProcEvent
	done    chan struct{}
	wg      sync.WaitGroup

	// stacks and counts are the two buffers; the kernel writes to
	// buffer active while Drain empties the other.
	stacks  [2]*ebpf.Map
	ustacks [2]*ebpf.Map // user stack records keyed by their hash
	counts  [2]*ebpf.Map

	mu        sync.Mutex // guards the fields below and serializes Drain/Close
	closed    bool
	active    uint32
	noBatch   bool // batch ops unsupported (or disabled by tests)
	drained   uint64
	truncated uint64
	walkEnds  [NumWalkEnds]uint64
	missing   uint64

	malformed atomic.Uint64 // written by the event goroutine

	// procMaps is the pid_maps value buffer of SetProcess and SetPython
	// (guarded by procMapsMu, which also keeps their read-modify-writes of
	// one entry apart): the value is 8 KiB, and SetProcess runs for every
	// exec'd process.
	procMapsMu sync.Mutex
	procMaps   bpf.ProfilerProcMaps
}

// ErrUnavailable is wrapped by every error of New that comes from the host rather
// than the Config: a missing capability, a kernel without BTF or a needed feature, a
// failed load or attach. Callers test it to explain the host (or run without the
// sampler) instead of matching error text.
var ErrUnavailable = errors.New("sampler unavailable")

func unavailable(err error) error { return fmt.Errorf("%w: %w", ErrUnavailable, err) }

// New loads and attaches the sampler. It needs root (or CAP_BPF and
// CAP_PERFMON) and a kernel with BTF.
func New(cfg Config) (*Sampler, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid sampler config: %w", err)
	}
	// Say exactly which capability is missing rather than the EPERM that
	// loading would give. An unreadable status is left to the load error.
	if missing, err := CheckOwnCapabilities(); err == nil {
		if err := CapabilityError(missing); err != nil {
			return nil, unavailable(err)
		}
	}
	cpus, err := onlineCPUs()
	if err != nil {
		return nil, err
	}
	// Only kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK. If
	// raising it fails, loading tells whether that mattered.
	memlockErr := rlimit.RemoveMemlock()

	spec, err := bpf.LoadProfiler()
	if err != nil {
		return nil, fmt.Errorf("parse bpf objects: %w", err)
	}
	for _, name := range []string{bpf.ProfilerMapStacks0, bpf.ProfilerMapStacks1, bpf.ProfilerMapUserStacks0, bpf.ProfilerMapUserStacks1} {
		spec.Maps[name].MaxEntries = uint32(cfg.StackMapEntries)
	}
	for _, name := range []string{bpf.ProfilerMapCounts0, bpf.ProfilerMapCounts1} {
		spec.Maps[name].MaxEntries = uint32(cfg.CountMapEntries)
	}
	spec.Maps[bpf.ProfilerMapEvents].MaxEntries = uint32(cfg.EventRingSize)
	spec.Maps[bpf.ProfilerMapUnwindRows].MaxEntries = uint32(cfg.UnwindRows)
	spec.Maps[bpf.ProfilerMapUnwindFiles].MaxEntries = uint32(cfg.UnwindFiles)
	spec.Maps[bpf.ProfilerMapPidMaps].MaxEntries = uint32(cfg.UnwindProcs)
	if err := spec.Variables[bpf.ProfilerVarUseTables].Set(!cfg.FramePointersOnly); err != nil {
		return nil, fmt.Errorf("set use_tables: %w", err)
	}
	// pid_maps also marks python processes (SetPython): room for them
	// whatever the unwind configuration asks.
	if m := spec.Maps[bpf.ProfilerMapPidMaps]; m.MaxEntries < pythonProcs {
		m.MaxEntries = pythonProcs
	}
	if err := spec.Variables[bpf.ProfilerVarSkipIdle].Set(!cfg.SampleIdle); err != nil {
		return nil, fmt.Errorf("set skip_idle: %w", err)
	}

	s := &Sampler{
		cfg:    cfg,
		events: make(chan ProcEvent, cfg.EventBuffer),
		done:   make(chan struct{}),
	}
	if err := spec.LoadAndAssign(&s.objs, nil); err != nil {
		if memlockErr != nil {
			return nil, unavailable(fmt.Errorf("%w; remove memlock rlimit: %w (needs CAP_SYS_RESOURCE before Linux 5.11)", loadError(err), memlockErr))
		}
		return nil, unavailable(loadError(err))
	}
	// The Python walker is a tail call of do_sample (slot kind - 1).
	if err := s.objs.InterpWalkers.Put(uint32(bpf.ProfilerInterpKindINTERP_PYTHON-1), s.objs.PythonWalk); err != nil {
		return nil, errors.Join(fmt.Errorf("install python walker: %w", err), s.release())
	}
	s.stacks = [2]*ebpf.Map{s.objs.Stacks0, s.objs.Stacks1}
	s.ustacks = [2]*ebpf.Map{s.objs.UserStacks0, s.objs.UserStacks1}
	s.counts = [2]*ebpf.Map{s.objs.Counts0, s.objs.Counts1}
	if err := s.attach(cpus); err != nil {
		return nil, errors.Join(unavailable(err), s.release())
	}
	s.ring, err = ringbuf.NewReader(s.objs.Events)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open event ring buffer: %w", err), s.release())
	}
	s.wg.Add(1)
	go s.readEvents()
	return s, nil
}

// loadError explains the usual reasons loading fails.
func loadError(err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("load bpf objects: %w (needs CAP_BPF and CAP_PERFMON)", err)
	case errors.Is(err, btf.ErrNotFound), errors.Is(err, btf.ErrNotSupported):
		return fmt.Errorf("load bpf objects: %w (needs kernel BTF at /sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF=y)", err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("load bpf objects: %w (needs Linux 5.8+ with ring buffers and tp_btf)", err)
	}
	return fmt.Errorf("load bpf objects: %w", err)
}

func (s *Sampler) attach(cpus []int) error {
	tps := []struct {
		name string
		prog *ebpf.Program
	}{
		{"sched_process_exec", s.objs.HandleExec},
		{"sched_process_exit", s.objs.HandleExit},
		{"sched_process_fork", s.objs.HandleFork},
	}
	for _, tp := range tps {
		l, err := link.AttachTracing(link.TracingOptions{Program: tp.prog, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			return fmt.Errorf("attach tp_btf/%s: %w (needs BTF-enabled tracepoints, Linux 5.5+)", tp.name, err)
		}
		s.links = append(s.links, l)
	}
	for _, cpu := range cpus {
		if err := s.attachCPU(cpu); err != nil {
			return err
		}
	}
	return nil
}

// attachCPU opens a cpu-clock perf event on cpu and attaches do_sample.
func (s *Sampler) attachCPU(cpu int) error {
	attr := unix.PerfEventAttr{
		Type:   unix.PERF_TYPE_SOFTWARE,
		Config: unix.PERF_COUNT_SW_CPU_CLOCK,
		Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Sample: uint64(s.cfg.Hz),
		Bits:   unix.PerfBitFreq | unix.PerfBitDisabled,
	}
	fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		hint := ""
		switch {
		case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
			hint = " (needs CAP_PERFMON, or kernel.perf_event_paranoid <= 0)"
		case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EOPNOTSUPP):
			hint = " (software cpu-clock perf event not supported)"
		case errors.Is(err, unix.EINVAL):
			hint = " (hz above kernel.perf_event_max_sample_rate?)"
		}
		return fmt.Errorf("open perf event on cpu %d: %w%s", cpu, err, hint)
	}
	s.perfFDs = append(s.perfFDs, fd)

	l, err := link.AttachRawLink(link.RawLinkOptions{Target: fd, Program: s.objs.DoSample, Attach: ebpf.AttachPerfEvent})
	if err == nil {
		s.links = append(s.links, l)
	} else if ioErr := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_SET_BPF, s.objs.DoSample.FD()); ioErr != nil {
		// Kernels before 5.15 have no perf_event bpf_link; the ioctl is the
		// old way and is undone by closing fd.
		return fmt.Errorf("attach perf event on cpu %d: %w (ioctl fallback: %w)", cpu, err, ioErr)
	}
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
		return fmt.Errorf("enable perf event on cpu %d: %w", cpu, err)
	}
	return nil
}

// release detaches and frees everything New created, except the event goroutine.
func (s *Sampler) release() error {
	var errs []error
	// Perf events first so no more samples arrive while links go away.
	for _, fd := range s.perfFDs {
		if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_DISABLE, 0); err != nil {
			errs = append(errs, fmt.Errorf("disable perf event: %w", err))
		}
	}
	for _, l := range s.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach: %w", err))
		}
	}
	s.links = nil
	for _, fd := range s.perfFDs {
		if err := unix.Close(fd); err != nil {
			errs = append(errs, fmt.Errorf("close perf event: %w", err))
		}
	}
	s.perfFDs = nil
	if s.ring != nil {
		if err := s.ring.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close event ring: %w", err))
		}
	}
	if err := s.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close bpf objects: %w", err))
	}
	return errors.Join(errs...)
}

// Close detaches all programs, stops the event goroutine (closing the
// Events channel) and frees kernel objects. It is safe to call twice.
func (s *Sampler) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.done)
	// Closing the reader interrupts a blocked ReadInto.
	var ringErr error
	if err := s.ring.Close(); err != nil {
		ringErr = fmt.Errorf("close event ring: %w", err)
	}
	s.wg.Wait()
	s.ring = nil
	return errors.Join(ringErr, s.release())
}

// Events returns process lifecycle events. The channel is closed by Close.
func (s *Sampler) Events() <-chan ProcEvent {
	return s.events
}

func (s *Sampler) readEvents() {
	defer s.wg.Done()
	defer close(s.events)
	var rec ringbuf.Record
	for {
		if err := s.ring.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) {
				return
			}
			// Deadline or flush wake-ups carry no record; anything else
			// means the ring is unusable.
			if errors.Is(err, ringbuf.ErrFlushed) {
				continue
			}
			return
		}
		ev, err := decodeEvent(rec.RawSample)
		if err != nil {
			s.malformed.Add(1)
			continue
		}
		select {
		case s.events <- ev:
		case <-s.done:
			return
		}
	}
}

// Drain removes everything the kernel counted since the previous Drain and
// returns it with cumulative Stats.
//
// It first switches the kernel to the other buffer and waits until no
// sampling program still uses the old one, so the old buffer is drained
// and its stack map cleared without racing with new samples.
func (s *Sampler) Drain() ([]Sample, Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, Stats{}, errors.New("drain: sampler closed")
	}
	old := s.active
	if err := s.objs.ActiveBuf.Set(1 - old); err != nil {
		return nil, Stats{}, fmt.Errorf("switch sample buffer: %w", err)
	}
	s.active = 1 - old
	waitForRunningPrograms()

	keys, counts, err := s.drainCounts(s.counts[old])
	if err != nil {
		return nil, Stats{}, err
	}
	stackMap := s.stacks[old]
	stacks := make(map[int32][]uint64)
	missing := make(map[int32]bool)
	resolve := func(id int32) ([]uint64, error) {
		if id < 0 || missing[id] {
			return nil, nil
		}
		if st, ok := stacks[id]; ok {
			return st, nil
		}
		var buf [maxStackDepth]uint64
		if err := stackMap.Lookup(uint32(id), &buf); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				missing[id] = true
				return nil, nil
			}
			return nil, fmt.Errorf("look up stack %d: %w", id, err)
		}
		// Nothing writes to this buffer now: free the slot right away so
		// clearStacks only has leftovers to find.
		if err := stackMap.Delete(uint32(id)); err != nil {
			return nil, fmt.Errorf("delete stack %d: %w", id, err)
		}
		n := 0
		for n < len(buf) && buf[n] != 0 {
			n++
		}
		st := append([]uint64(nil), buf[:n]...)
		stacks[id] = st
		return st, nil
	}

	ustackMap := s.ustacks[old]
	type userRec struct {
		pcs    []uint64
		interp []InterpFrame
	}
	ustacks := make(map[uint64]userRec)
	resolveUser := func(h uint64) ([]uint64, []InterpFrame, error) {
		if h == 0 {
			return nil, nil, nil
		}
		if st, ok := ustacks[h]; ok {
			return st.pcs, st.interp, nil
		}
		var rec bpf.ProfilerUserStack
		if err := ustackMap.Lookup(h, &rec); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				ustacks[h] = userRec{}
				return nil, nil, nil
			}
			return nil, nil, fmt.Errorf("look up user stack: %w", err)
		}
		n := min(int(rec.Len), len(rec.Pcs))
		st := userRec{pcs: append([]uint64(nil), rec.Pcs[:n]...)}
		for _, f := range rec.Interp[:min(int(rec.InterpLen), len(rec.Interp))] {
			st.interp = append(st.interp, InterpFrame{Kind: f.Kind, Aux: f.Aux, Addr: f.Addr})
		}
		ustacks[h] = st
		return st.pcs, st.interp, nil
	}

	samples := make([]Sample, 0, len(keys))
	for i, k := range keys {
		user, interp, err := resolveUser(k.UserStack)
		if err != nil {
			return nil, Stats{}, err
		}
		kernel, err := resolve(k.KernelStackId)
		if err != nil {
			return nil, Stats{}, err
		}
		c := counts[i]
		if (k.UserStack != 0 && user == nil) || (k.KernelStackId >= 0 && kernel == nil) {
			s.missing += c
		}
		if k.UserStack != 0 && k.UserEnd < NumWalkEnds {
			s.walkEnds[k.UserEnd] += c
			if WalkEnd(k.UserEnd) != WalkRoot {
				s.truncated += c
			}
		}
		s.drained += c
		samples = append(samples, Sample{
			PID:    k.Pid,
			TGID:   k.Tgid,
			Comm:   commString(k.Comm),
			User:   user,
			Kernel: kernel,
			Interp: interp,
			Count:  c,
		})
	}
	if err := clearStacks(stackMap); err != nil {
		return nil, Stats{}, err
	}
	if err := clearUserStacks(ustackMap); err != nil {
		return nil, Stats{}, err
	}
	st, err := s.stats()
	if err != nil {
		return nil, Stats{}, err
	}
	return samples, st, nil
}

// membarrierCmdGlobal is MEMBARRIER_CMD_GLOBAL from linux/membarrier.h.
const membarrierCmdGlobal = 1

// waitForRunningPrograms returns once every sampling program that started
// before the call has finished. They run under rcu_read_lock (perf
// overflow handler), and membarrier(MEMBARRIER_CMD_GLOBAL) waits for an RCU
// grace period.
func waitForRunningPrograms() {
	if _, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdGlobal, 0, 0); errno != 0 {
		// Refused on nohz_full kernels. A program runs for microseconds
		// in interrupt context, so a pause covers it in practice.
		time.Sleep(10 * time.Millisecond)
	}
}

// clearStacks deletes every stack left in a buffer no program writes to:
// stacks of samples that were themselves lost (count map full).
func clearStacks(m *ebpf.Map) error {
	var ids []uint32
	var id uint32
	key := any(nil) // nil starts at the first key
	for {
		if err := m.NextKey(key, &id); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				break
			}
			return fmt.Errorf("iterate stack map: %w", err)
		}
		ids = append(ids, id)
		next := id
		key = &next
	}
	for _, id := range ids {
		if err := m.Delete(id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete stack %d: %w", id, err)
		}
	}
	return nil
}

// clearUserStacks empties a user stack map no program writes to.
func clearUserStacks(m *ebpf.Map) error {
	var keys []uint64
	var k uint64
	it := m.Iterate()
	var rec bpf.ProfilerUserStack
	for it.Next(&k, &rec) {
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate user stack map: %w", err)
	}
	for _, k := range keys {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete user stack: %w", err)
		}
	}
	return nil
}

// drainCounts takes all entries of a count map.
func (s *Sampler) drainCounts(m *ebpf.Map) ([]bpf.ProfilerSampleKey, []uint64, error) {
	if !s.noBatch {
		keys, counts, err := drainCountsBatch(m)
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return keys, counts, err
		}
		s.noBatch = true
		// Nothing was deleted if the first batch call is unsupported.
	}
	return drainCountsIterate(m)
}

func drainCountsBatch(m *ebpf.Map) ([]bpf.ProfilerSampleKey, []uint64, error) {
	var (
		allKeys   []bpf.ProfilerSampleKey
		allCounts []uint64
		cursor    ebpf.MapBatchCursor
		keys      = make([]bpf.ProfilerSampleKey, batchSize)
		counts    = make([]uint64, batchSize)
	)
	for {
		n, err := m.BatchLookupAndDelete(&cursor, keys, counts, nil)
		allKeys = append(allKeys, keys[:n]...)
		allCounts = append(allCounts, counts[:n]...)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return allKeys, allCounts, nil
		}
		if err != nil {
			if len(allKeys) > 0 && errors.Is(err, ebpf.ErrNotSupported) {
				// Cannot happen after a successful call; don't lose data.
				return allKeys, allCounts, nil
			}
			return nil, nil, fmt.Errorf("drain count map: %w", err)
		}
	}
}

// drainCountsIterate is the fallback for kernels without batch map ops
// (before 5.6). No program writes to the map meanwhile.
func drainCountsIterate(m *ebpf.Map) ([]bpf.ProfilerSampleKey, []uint64, error) {
	var (
		keys   []bpf.ProfilerSampleKey
		counts []uint64
		k      bpf.ProfilerSampleKey
		v      uint64
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, k)
		counts = append(counts, v)
	}
	if err := it.Err(); err != nil {
		return nil, nil, fmt.Errorf("iterate count map: %w", err)
	}
	for _, k := range keys {
		if err := m.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil, nil, fmt.Errorf("delete count map entry: %w", err)
		}
	}
	return keys, counts, nil
}

// stats sums the per-CPU kernel counters and adds user-space ones.
func (s *Sampler) stats() (Stats, error) {
	var kern [bpf.ProfilerStatIdxSTAT_MAX]uint64
	var perCPU []uint64
	var err error
	for i := range kern {
		if err := s.objs.Stats.Lookup(uint32(i), &perCPU); err != nil {
			return Stats{}, fmt.Errorf("read stats: %w", err)
		}
		for _, v := range perCPU {
			kern[i] += v
		}
	}
	st := Stats{
		Samples:             kern[bpf.ProfilerStatIdxSTAT_SAMPLES],
		IdleSkipped:         kern[bpf.ProfilerStatIdxSTAT_IDLE_SKIPPED],
		UserMode:            kern[bpf.ProfilerStatIdxSTAT_USER_MODE],
		Drained:             s.drained,
		TruncatedUserStacks: s.truncated,
		WalkEnds:            s.walkEnds,
	}
	if st.Python, err = s.pythonStats(); err != nil {
		return Stats{}, err
	}
	st.Drops[DropCountMapFull] = kern[bpf.ProfilerStatIdxSTAT_COUNT_MAP_FULL]
	st.Drops[DropCountMapError] = kern[bpf.ProfilerStatIdxSTAT_COUNT_MAP_ERROR]
	st.Drops[DropUserStackCollision] = kern[bpf.ProfilerStatIdxSTAT_USER_STACK_COLLISION]
	st.Drops[DropKernelStackCollision] = kern[bpf.ProfilerStatIdxSTAT_KERNEL_STACK_COLLISION]
	st.Drops[DropUserStackFault] = kern[bpf.ProfilerStatIdxSTAT_USER_STACK_FAULT]
	st.Drops[DropUserStackError] = kern[bpf.ProfilerStatIdxSTAT_USER_STACK_ERROR]
	st.Drops[DropKernelStackError] = kern[bpf.ProfilerStatIdxSTAT_KERNEL_STACK_ERROR]
	st.Drops[DropStackMissing] = s.missing
	st.Drops[DropEventsLost] = kern[bpf.ProfilerStatIdxSTAT_EVENTS_LOST]
	st.Drops[DropEventMalformed] = s.malformed.Load()
	return st, nil
}
