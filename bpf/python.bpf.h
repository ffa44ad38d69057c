// SPDX-License-Identifier: GPL-2.0
// CPython frame walker, included by profiler.bpf.c after finish_sample.
// python_walk is tail-called from do_sample (interp_walkers slot
// INTERP_PYTHON - 1) for processes user space marked as CPython; it finds
// the sampled thread's PyThreadState and appends its frames to the
// sample's interpreter section. Formats: doc.go ("Python frames").

#define PY_MAX_FRAMES 63       // python frames per sample; one slot is left for the end marker
#define PY_MAX_SEARCH 1024     // thread states (over all interpreters) examined per search
#define PY_FRAME_BUF 128       // bytes of a frame read at once; every frame field lies below
#define PY_LINENO_MASK 0xffff  // aux: low 16 bits of co_firstlineno (the name cache's generation check)
#define PY_INSTR_SHIFT 16      // aux: code-unit index of the instruction, 15 bits, saturated
#define PY_INSTR_MAX 0x7fff
#define PY_ENTRY_BIT 0x80000000U // aux: oldest frame of one native eval call

// How frames are linked (agent/interp/python.FrameKind).
enum py_frame_kind {
	PY_FRAME_OBJECTS = 0,  // 3.10: PyFrameObject.f_back, one frame per eval call
	PY_FRAMES_IS_ENTRY = 1, // 3.11: _PyInterpreterFrame.previous, is_entry ends an eval call
	PY_FRAMES_SHIM = 2,    // 3.12+: a C-stack-owned shim frame below each eval call
};

// How a python walk ended; recorded in the end marker entry (addr 0,
// aux = the reason) when not PY_END_OK.
enum py_end {
	PY_END_OK = 0,        // reached the thread's first frame
	PY_END_DEPTH = 1,     // PY_MAX_FRAMES reached with older frames left
	PY_END_BAD_READ = 2,  // a frame or code object was unreadable
};

// Indexes into python_stats (per CPU).
enum py_stat_idx {
	PY_STAT_WALKS = 0,    // samples of python processes walked
	PY_STAT_NO_PROC,      // process marked python but without python_procs entry
	PY_STAT_NO_THREAD,    // thread has no thread state (not a python thread, or not yet/no longer)
	PY_STAT_TSTATE_CACHED, // thread state found through python_threads
	PY_STAT_SEARCH_FAULT, // thread-state search hit an unreadable pointer
	PY_STAT_DEPTH,        // walks truncated at PY_MAX_FRAMES
	PY_STAT_BAD_READ,     // walks ended by an unreadable frame or code object
	PY_STAT_FRAMES,       // python frames recorded
	PY_STAT_MAX,
};

// Per process, filled by user space from agent/interp/python.Detect.
// Offsets are bytes; < 0 means the field does not exist in this version.
struct python_proc {
	u64 runtime; // address of _PyRuntime
	u32 version; // major << 8 | minor
	u32 frame_kind; // enum py_frame_kind
	u32 runtime_interp_head;
	u32 interp_next;
	u32 interp_threads_head;
	u32 tstate_next;
	u32 tstate_thread_id;
	u32 tstate_native_id; // 1: tstate_thread_id holds the kernel thread id
	u32 tstate_frame;
	s32 cframe_current;
	s32 frame_code;      // all frame_* offsets < PY_FRAME_BUF - 8
	s32 frame_previous;
	s32 frame_instr;
	s32 frame_is_entry;
	s32 frame_owner;
	u32 owner_cstack;
	u32 code_firstlineno;
	s32 code_adaptive;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, u32);
	__type(value, struct python_proc);
} python_procs SEC(".maps");

// Thread id -> its thread state, checked on use (the state's thread id
// field must still name the thread), so a search runs once per thread.
struct python_thread {
	u64 tstate;
	u32 tgid;
	u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, struct python_thread);
} python_threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, u32);
	__type(value, u64);
	__uint(max_entries, PY_STAT_MAX);
} python_stats SEC(".maps");

// Code objects already reported to user space (EVENT_PYTHON_CODE), so it
// names each while the process still runs: a short-lived process is gone
// by the time its samples are drained.
struct py_code_key {
	u32 tgid;
	u32 lineno;
	u64 code;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct py_code_key);
	__type(value, u8);
} python_codes_seen SEC(".maps");

static __always_inline void py_report_code(u32 tgid, u64 code, u32 lineno)
{
	struct py_code_key k = {.tgid = tgid, .lineno = lineno, .code = code};
	if (bpf_map_lookup_elem(&python_codes_seen, &k))
		return;
	u8 one = 1;
	bpf_map_update_elem(&python_codes_seen, &k, &one, BPF_ANY);
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_inc(STAT_EVENTS_LOST);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->kind = EVENT_PYTHON_CODE;
	e->pid = tgid;
	e->start_ns = code;
	e->ppid = lineno;
	e->ts_ns = bpf_ktime_get_boot_ns();
	bpf_ringbuf_submit(e, 0);
}

struct py_frame_buf {
	u8 b[PY_FRAME_BUF];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct py_frame_buf);
} python_frame_buf SEC(".maps");

static __always_inline void py_stat(u32 idx)
{
	u64 *v = bpf_map_lookup_elem(&python_stats, &idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline int py_read(u64 *dst, u64 addr)
{
	return bpf_probe_read_user(dst, sizeof(*dst), (const void *)addr);
}

struct py_search {
	u64 interp, ts, want, found;
	u32 started, fault;
	u32 interp_next, threads_head, tstate_next, tstate_thread_id;
};

static long py_search_step(u32 i, void *arg)
{
	struct py_search *s = arg;
	if (s->ts == 0) {
		// Next interpreter (the first step starts at the head).
		if (s->started && py_read(&s->interp, s->interp + s->interp_next)) {
			s->fault = 1;
			return 1;
		}
		s->started = 1;
		if (s->interp == 0)
			return 1;
		if (py_read(&s->ts, s->interp + s->threads_head)) {
			s->fault = 1;
			return 1;
		}
		return 0;
	}
	u64 id;
	if (py_read(&id, s->ts + s->tstate_thread_id)) {
		s->fault = 1;
		return 1;
	}
	if (id == s->want) {
		s->found = s->ts;
		return 1;
	}
	if (py_read(&s->ts, s->ts + s->tstate_next)) {
		s->fault = 1;
		return 1;
	}
	return 0;
}

// py_thread_id is what the thread state's thread id field holds for the
// current thread: the kernel tid (3.11+) or pthread_self (3.10, x86-64
// only: the fs base is glibc's thread pointer).
static __always_inline u64 py_thread_id(struct python_proc *pp, u32 tid)
{
	if (pp->tstate_native_id)
		return tid;
#if defined(__TARGET_ARCH_x86)
	struct task_struct *task = bpf_get_current_task_btf();
	return task->thread.fsbase;
#else
	return 0;
#endif
}

// py_tstate returns the current thread's PyThreadState, or 0.
static __always_inline u64 py_tstate(struct python_proc *pp, u32 tid, u32 tgid)
{
	u64 want = py_thread_id(pp, tid);
	if (want == 0)
		return 0;
	struct python_thread *pt = bpf_map_lookup_elem(&python_threads, &tid);
	if (pt && pt->tgid == tgid) {
		u64 id;
		if (!py_read(&id, pt->tstate + pp->tstate_thread_id) && id == want) {
			py_stat(PY_STAT_TSTATE_CACHED);
			return pt->tstate;
		}
	}
	struct py_search s = {
		.want = want,
		.interp_next = pp->interp_next,
		.threads_head = pp->interp_threads_head,
		.tstate_next = pp->tstate_next,
		.tstate_thread_id = pp->tstate_thread_id,
	};
	if (py_read(&s.interp, pp->runtime + pp->runtime_interp_head)) {
		py_stat(PY_STAT_SEARCH_FAULT);
		return 0;
	}
	bpf_loop(PY_MAX_SEARCH, py_search_step, &s, 0);
	if (s.fault)
		py_stat(PY_STAT_SEARCH_FAULT);
	if (s.found) {
		struct python_thread v = {.tstate = s.found, .tgid = tgid};
		bpf_map_update_elem(&python_threads, &tid, &v, BPF_ANY);
	}
	return s.found;
}

struct py_walk {
	u64 frame;
	u32 tgid;
	u32 pad;
	u32 end;
	u32 pending_entry; // the last recorded frame gets PY_ENTRY_BIT if a shim follows
	u32 frame_kind;
	u32 owner_cstack;
	s32 frame_code, frame_previous, frame_instr, frame_is_entry, frame_owner;
	u32 code_firstlineno;
	s32 code_adaptive;
};

static __always_inline u64 buf_u64(struct py_frame_buf *fb, s32 off)
{
	u64 v;
	u32 o = (u32)off;
	if (o > PY_FRAME_BUF - 8)
		return 0;
	__builtin_memcpy(&v, &fb->b[o], sizeof(v));
	return v;
}

static long py_frame_step(u32 i, void *arg)
{
	struct py_walk *w = arg;
	u32 zero = 0;
	struct sample_scratch *sc = bpf_map_lookup_elem(&sample_scratch, &zero);
	struct py_frame_buf *fb = bpf_map_lookup_elem(&python_frame_buf, &zero);
	if (!sc || !fb)
		return 1;
	if (w->frame == 0)
		return 1;
	u32 n = sc->stack.interp_len;
	if (n >= PY_MAX_FRAMES) {
		w->end = PY_END_DEPTH;
		return 1;
	}
	if (bpf_probe_read_user(fb->b, sizeof(fb->b), (const void *)w->frame)) {
		w->end = PY_END_BAD_READ;
		return 1;
	}
	u64 prev = buf_u64(fb, w->frame_previous);
	if (w->frame_kind == PY_FRAMES_SHIM && w->frame_owner >= 0 &&
	    fb->b[w->frame_owner & (PY_FRAME_BUF - 1)] == w->owner_cstack) {
		// The shim below one eval call's frames: the frame above was its oldest.
		if (n > 0)
			sc->stack.interp[(n - 1) & (MAX_INTERP_FRAMES - 1)].aux |= PY_ENTRY_BIT;
		w->frame = prev;
		return 0;
	}
	u64 code = buf_u64(fb, w->frame_code);
	u32 lineno = 0;
	if (bpf_probe_read_user(&lineno, sizeof(lineno), (const void *)(code + w->code_firstlineno))) {
		w->end = PY_END_BAD_READ;
		return 1;
	}
	u64 instr;
	if (w->frame_kind == PY_FRAME_OBJECTS) {
		instr = (u32)buf_u64(fb, w->frame_instr); // f_lasti, in code units
	} else {
		u64 p = buf_u64(fb, w->frame_instr);
		u64 start = code + w->code_adaptive;
		instr = p >= start ? (p - start) / 2 : 0; // _Py_CODEUNIT is 2 bytes
	}
	if (instr > PY_INSTR_MAX)
		instr = PY_INSTR_MAX;
	py_report_code(w->tgid, code, lineno & PY_LINENO_MASK);
	u32 aux = (lineno & PY_LINENO_MASK) | (u32)instr << PY_INSTR_SHIFT;
	if (w->frame_kind == PY_FRAME_OBJECTS ||
	    (w->frame_kind == PY_FRAMES_IS_ENTRY && w->frame_is_entry >= 0 &&
	     fb->b[w->frame_is_entry & (PY_FRAME_BUF - 1)]))
		aux |= PY_ENTRY_BIT;
	struct interp_frame *f = &sc->stack.interp[n & (MAX_INTERP_FRAMES - 1)];
	f->kind = INTERP_PYTHON;
	f->aux = aux;
	f->addr = code;
	sc->stack.interp_len = n + 1;
	py_stat(PY_STAT_FRAMES);
	w->frame = prev;
	return 0;
}

SEC("perf_event")
int python_walk(struct bpf_perf_event_data *ctx)
{
	u32 zero = 0;
	struct sample_scratch *sc = bpf_map_lookup_elem(&sample_scratch, &zero);
	if (!sc)
		return 0;
	py_stat(PY_STAT_WALKS);
	u32 tgid = sc->key.tgid;
	struct python_proc *pp = bpf_map_lookup_elem(&python_procs, &tgid);
	if (!pp) {
		py_stat(PY_STAT_NO_PROC);
		return finish_sample(ctx);
	}
	u64 ts = py_tstate(pp, sc->key.pid, tgid);
	if (ts == 0) {
		py_stat(PY_STAT_NO_THREAD);
		return finish_sample(ctx);
	}
	struct py_walk w = {
		.tgid = tgid,
		.end = PY_END_OK,
		.frame_kind = pp->frame_kind,
		.owner_cstack = pp->owner_cstack,
		.frame_code = pp->frame_code,
		.frame_previous = pp->frame_previous,
		.frame_instr = pp->frame_instr,
		.frame_is_entry = pp->frame_is_entry,
		.frame_owner = pp->frame_owner,
		.code_firstlineno = pp->code_firstlineno,
		.code_adaptive = pp->code_adaptive,
	};
	int bad = py_read(&w.frame, ts + pp->tstate_frame);
	if (!bad && pp->cframe_current >= 0 && w.frame != 0)
		bad = py_read(&w.frame, w.frame + pp->cframe_current);
	if (bad) {
		w.end = PY_END_BAD_READ;
	} else {
		bpf_loop(2 * PY_MAX_FRAMES, py_frame_step, &w, 0);
		if (w.end == PY_END_OK && w.frame != 0)
			w.end = PY_END_DEPTH;
	}
	if (w.end != PY_END_OK) {
		py_stat(w.end == PY_END_DEPTH ? PY_STAT_DEPTH : PY_STAT_BAD_READ);
		u32 n = sc->stack.interp_len;
		if (n < MAX_INTERP_FRAMES) {
			struct interp_frame *f = &sc->stack.interp[n & (MAX_INTERP_FRAMES - 1)];
			f->kind = INTERP_PYTHON;
			f->aux = w.end;
			f->addr = 0;
			sc->stack.interp_len = n + 1;
		}
	}
	return finish_sample(ctx);
}

const struct python_proc *unused_python_proc __attribute__((unused));
const enum py_end unused_py_end __attribute__((unused));
const enum py_stat_idx unused_py_stat_idx __attribute__((unused));
const enum py_frame_kind unused_py_frame_kind __attribute__((unused));
