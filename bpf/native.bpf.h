// SPDX-License-Identifier: GPL-2.0
// Table-driven native user-stack walker, included by profiler.bpf.c.
// Formats are documented in doc.go ("Unwind tables" and "Stack records").

#define MAX_USER_FRAMES 128     // frames per user stack (a power of two: used as a mask)
#define MAX_INTERP_FRAMES 64    // interpreter entries per stack (a power of two)
#define MAX_PROC_MAPPINGS 256   // executable mappings per process (a power of two)
#define MAPPING_SEARCH_STEPS 9  // log2(MAX_PROC_MAPPINGS) + 1
#define ROW_SEARCH_STEPS 25     // log2 of the largest row table + 1 (2^24 rows)
#define MAX_FILES 65536         // upper bound of unwind_files entries

// How a user walk ended.
enum walk_end {
	WALK_ROOT = 0,       // stop rule (undefined return address), zero return address or frame pointer
	WALK_NO_RULE = 1,    // the pc has a rule the walker cannot follow and frame pointers failed too
	WALK_BAD_READ = 2,   // a stack slot was unreadable or the stack did not grow
	WALK_DEPTH = 3,      // MAX_USER_FRAMES reached
};

// What a row says about the CFA (the caller's stack pointer).
enum row_kind {
	ROW_GAP = 0,          // no CFI covers the pc: use frame pointers
	ROW_CFA_SP = 1,       // cfa = sp + cfa_off
	ROW_CFA_FP = 2,       // cfa = fp + cfa_off
	ROW_CFA_DEREF_FP = 3, // cfa = *(fp + cfa_off) (stack realignment, e.g. gcc's main)
	ROW_PLT = 4,          // x86-64 PLT: cfa = sp + cfa_off + ((pc & 15) >= fp_off ? 8 : 0)
	ROW_SIGNAL = 5,       // x86-64 signal trampoline: registers from the ucontext at sp
	ROW_STOP = 6,         // outermost frame (return address undefined): the walk ends here
	ROW_UNSUPPORTED = 7,  // CFI the walker cannot follow: use frame pointers
};

#define FP_SAME 0   // the caller's fp is the current fp
#define FP_AT_CFA 1 // caller's fp = *(cfa + fp_off)
#define RA_AT_CFA 0 // return address = *(cfa + ra_off)
#define RA_IN_LR 1  // return address in the link register (arm64, first frame only)

// 16 bytes; rows of one file are sorted by pc and each covers up to the next.
struct unwind_row {
	u32 pc; // ELF virtual address of the first instruction the row covers
	s32 cfa_off;
	u8 kind; // enum row_kind
	u8 fp_rule;
	s16 fp_off;
	u8 ra_rule;
	u8 pad;
	s16 ra_off;
};

// Rows of one file: unwind_rows[first, first+count). count 0: no table (frame pointers).
struct file_rows {
	u32 first;
	u32 count;
};

// One executable mapping: pc in [start, end) is ELF vaddr pc - bias of file file_id.
struct proc_mapping {
	u64 start;
	u64 end;
	u64 bias;
	u32 file_id; // index into unwind_files; 0: no table (frame pointers)
	u32 pad;
};

// Enum of interpreter walkers; INTERP_NONE means native only.
enum interp_kind {
	INTERP_NONE = 0,
	INTERP_PYTHON = 1,
	INTERP_MAX = 2, // number of kinds; the interp_walkers slot of kind k is k - 1
};

// Per process, sorted by start.
struct proc_maps {
	u32 n;
	u32 interp; // enum interp_kind, set by user space for interpreter processes
	struct proc_mapping m[MAX_PROC_MAPPINGS];
};

// One interpreter frame; meaning of addr and aux is the walker's (kind).
struct interp_frame {
	u32 kind;
	u32 aux;
	u64 addr;
};

// The user stack of a sample: native pcs leaf first, then interpreter
// entries leaf first. Only the first len and interp_len entries count.
struct user_stack {
	u32 len;
	u32 interp_len;
	u64 pcs[MAX_USER_FRAMES];
	struct interp_frame interp[MAX_INTERP_FRAMES];
};

// The sample being built; shared by do_sample and interpreter walkers
// (tail calls keep the per-CPU value).
struct sample_scratch {
	struct sample_key key;
	u32 has_user;
	u32 interp; // enum interp_kind of the process
	struct user_stack stack;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct sample_scratch);
} sample_scratch SEC(".maps");

// All rows of all files; max_entries set by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct unwind_row);
} unwind_rows SEC(".maps");

// file id -> its rows; max_entries set by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct file_rows);
} unwind_files SEC(".maps");

// tgid -> executable mappings; max_entries set by the loader.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, u32);
	__type(value, struct proc_maps);
} pid_maps SEC(".maps");

struct walk {
	u64 pc, sp, fp, lr;
	u32 tgid;
	u32 end;
	u32 unknown; // a pc was outside every known mapping
	u32 want_file; // first file met whose table is not loaded (0: none)
};

static __always_inline int read_user(u64 *dst, u64 addr)
{
	return bpf_probe_read_user(dst, sizeof(*dst), (const void *)addr);
}

// fp_step unwinds one frame through the frame-pointer chain.
static __always_inline long fp_step(struct walk *w, u32 fail)
{
	u64 ra, nfp;
	if (w->fp == 0) {
		w->end = WALK_ROOT;
		return 1;
	}
	if (w->fp < w->sp || read_user(&nfp, w->fp) || read_user(&ra, w->fp + 8)) {
		w->end = fail;
		return 1;
	}
	if (ra == 0) {
		w->end = WALK_ROOT;
		return 1;
	}
	w->sp = w->fp + 16;
	w->fp = nfp;
	w->pc = ra;
	stat_inc(STAT_FP_FRAMES);
	return 0;
}

// Binary searches run as bpf_loop callbacks: the verifier checks a
// callback once with unknown bounds, where an open-coded loop would make it
// explore every branch of every step.
struct search {
	u32 lo, hi; // answer (last element <= key) in [lo-1, hi)
	u64 key;
	u32 tgid; // process of a mapping search
};

static long row_search_step(u32 j, void *arg)
{
	struct search *s = arg;
	if (s->lo >= s->hi)
		return 1;
	u32 mid = s->lo + (s->hi - s->lo) / 2;
	struct unwind_row *r = bpf_map_lookup_elem(&unwind_rows, &mid);
	if (!r)
		return 1;
	if (r->pc <= s->key)
		s->lo = mid + 1;
	else
		s->hi = mid;
	return 0;
}

// find_row returns the row covering vaddr in the rows of fr, or NULL.
static __always_inline struct unwind_row *find_row(struct file_rows *fr, u32 vaddr)
{
	struct search s = {.lo = fr->first, .hi = fr->first + fr->count, .key = vaddr};
	u32 first = s.lo;
	bpf_loop(ROW_SEARCH_STEPS, row_search_step, &s, 0);
	if (s.lo == first || s.lo > s.hi)
		return NULL;
	u32 idx = s.lo - 1;
	struct unwind_row *r = bpf_map_lookup_elem(&unwind_rows, &idx);
	if (r && r->pc > vaddr)
		return NULL; // search cut short by a failed lookup
	return r;
}

static long mapping_search_step(u32 j, void *arg)
{
	struct search *s = arg;
	if (s->lo >= s->hi)
		return 1;
	u32 mid = (s->lo + (s->hi - s->lo) / 2) & (MAX_PROC_MAPPINGS - 1);
	struct proc_maps *pm = bpf_map_lookup_elem(&pid_maps, &s->tgid);
	if (!pm)
		return 1;
	if (pm->m[mid].start <= s->key)
		s->lo = mid + 1;
	else
		s->hi = mid;
	return 0;
}

// find_mapping returns the index of the mapping of tgid's pm holding pc, or -1.
static __always_inline int find_mapping(u32 tgid, struct proc_maps *pm, u64 pc)
{
	struct search s = {.lo = 0, .hi = pm->n, .key = pc, .tgid = tgid};
	if (s.hi > MAX_PROC_MAPPINGS)
		s.hi = MAX_PROC_MAPPINGS;
	bpf_loop(MAPPING_SEARCH_STEPS, mapping_search_step, &s, 0);
	if (s.lo == 0)
		return -1;
	u32 i = (s.lo - 1) & (MAX_PROC_MAPPINGS - 1);
	if (pc < pm->m[i].start || pc >= pm->m[i].end)
		return -1;
	return i;
}

// step_frame records w->pc as frame i and unwinds to its caller. bpf_loop
// callback: returns 1 to stop.
static long step_frame(u32 i, void *arg)
{
	struct walk *w = arg;
	u32 zero = 0;
	struct sample_scratch *sc = bpf_map_lookup_elem(&sample_scratch, &zero);
	if (!sc)
		return 1;
	u32 n = sc->stack.len;
	if (n >= MAX_USER_FRAMES) {
		w->end = WALK_DEPTH;
		return 1;
	}
	sc->stack.pcs[n & (MAX_USER_FRAMES - 1)] = w->pc;
	sc->stack.len = n + 1;
	if (n + 1 >= MAX_USER_FRAMES) {
		w->end = WALK_DEPTH;
		return 1;
	}
	if (!use_tables)
		return fp_step(w, WALK_BAD_READ);

	// A return address points after the call, maybe past the caller's end.
	u64 pc = i ? w->pc - 1 : w->pc;
	struct proc_maps *pm = bpf_map_lookup_elem(&pid_maps, &w->tgid);
	if (!pm) {
		w->unknown = 1;
		return fp_step(w, WALK_BAD_READ);
	}
	int mi = find_mapping(w->tgid, pm, pc);
	if (mi < 0) {
		w->unknown = 1;
		return fp_step(w, WALK_BAD_READ);
	}
	struct proc_mapping *m = &pm->m[mi & (MAX_PROC_MAPPINGS - 1)];
	u32 fid = m->file_id;
	u64 vaddr = pc - m->bias;
	if (fid == 0 || vaddr > 0xffffffffULL)
		return fp_step(w, WALK_BAD_READ);
	struct file_rows *fr = bpf_map_lookup_elem(&unwind_files, &fid);
	if (!fr || fr->count == 0) {
		if (!w->want_file)
			w->want_file = fid;
		return fp_step(w, WALK_BAD_READ);
	}
	struct unwind_row *r = find_row(fr, (u32)vaddr);
	if (!r)
		return fp_step(w, WALK_BAD_READ);

	u64 cfa, ra, v;
	switch (r->kind) {
	case ROW_CFA_SP:
		cfa = w->sp + r->cfa_off;
		break;
	case ROW_CFA_FP:
		cfa = w->fp + r->cfa_off;
		break;
	case ROW_CFA_DEREF_FP:
		if (read_user(&cfa, w->fp + r->cfa_off)) {
			w->end = WALK_BAD_READ;
			return 1;
		}
		break;
	case ROW_PLT:
		cfa = w->sp + r->cfa_off + ((w->pc & 15) >= (u64)r->fp_off ? 8 : 0);
		break;
	case ROW_SIGNAL:
		// x86-64 rt_sigframe: sp points at the ucontext; uc_mcontext
		// (struct sigcontext) starts at 40: rbp at +120, rsp +160, rip +168.
		if (read_user(&ra, w->sp + 168) ||
		    read_user(&cfa, w->sp + 160) || read_user(&v, w->sp + 120)) {
			w->end = WALK_BAD_READ;
			return 1;
		}
		w->fp = v;
		w->sp = cfa;
		w->pc = ra;
		stat_inc(STAT_TABLE_FRAMES);
		return ra == 0 ? (w->end = WALK_ROOT, 1) : 0;
	case ROW_STOP:
		w->end = WALK_ROOT;
		return 1;
	case ROW_UNSUPPORTED:
		return fp_step(w, WALK_NO_RULE);
	default: // ROW_GAP
		return fp_step(w, WALK_BAD_READ);
	}

	if (r->ra_rule == RA_IN_LR) {
		if (i != 0) {
			w->end = WALK_NO_RULE;
			return 1;
		}
		ra = w->lr;
	} else if (read_user(&ra, cfa + r->ra_off)) {
		w->end = WALK_BAD_READ;
		return 1;
	}
	if (r->fp_rule == FP_AT_CFA) {
		if (read_user(&v, cfa + r->fp_off)) {
			w->end = WALK_BAD_READ;
			return 1;
		}
		w->fp = v;
	}
	if (cfa <= w->sp) {
		w->end = WALK_BAD_READ; // the stack must grow towards the root
		return 1;
	}
	stat_inc(STAT_TABLE_FRAMES);
	if (ra == 0) {
		w->end = WALK_ROOT;
		return 1;
	}
	w->sp = cfa;
	w->pc = ra;
	return 0;
}

// walk_user fills sc->stack with the task's user stack and returns how the
// walk ended (enum walk_end); sc->interp gets the process's interpreter
// kind, *unknown is set when a pc was outside every known mapping and
// *want_file to the first file met whose table is not loaded.
static __always_inline int walk_user(struct task_struct *task, struct sample_scratch *sc, u32 *unknown, u32 *want_file)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (!regs)
		return WALK_BAD_READ;
	struct walk w = {};
#if defined(__TARGET_ARCH_arm64)
	// arm64 pt_regs begins with the user-ABI struct user_pt_regs
	// (regs[31], sp, pc, pstate); vmlinux.h here is x86's, so read it raw.
	struct {
		u64 regs[31];
		u64 sp;
		u64 pc;
	} ur;
	if (bpf_probe_read_kernel(&ur, sizeof(ur), regs))
		return WALK_BAD_READ;
	w.pc = ur.pc;
	w.sp = ur.sp;
	w.fp = ur.regs[29];
	w.lr = ur.regs[30];
#else
	w.pc = BPF_CORE_READ(regs, ip);
	w.sp = BPF_CORE_READ(regs, sp);
	w.fp = BPF_CORE_READ(regs, bp);
#endif
	w.tgid = sc->key.tgid;
	w.end = WALK_DEPTH;
	if (w.pc == 0)
		return WALK_BAD_READ;
	struct proc_maps *pm = bpf_map_lookup_elem(&pid_maps, &w.tgid);
	sc->interp = pm ? pm->interp : INTERP_NONE;
	bpf_loop(MAX_USER_FRAMES, step_frame, &w, 0);
	switch (w.end) {
	case WALK_ROOT:
		stat_inc(STAT_WALK_ROOT);
		break;
	case WALK_NO_RULE:
		stat_inc(STAT_WALK_NO_RULE);
		break;
	case WALK_BAD_READ:
		stat_inc(STAT_WALK_BAD_READ);
		break;
	default:
		stat_inc(STAT_WALK_DEPTH);
		break;
	}
	if (w.unknown) {
		stat_inc(STAT_WALK_NO_MAPPING);
		*unknown = 1;
	}
	*want_file = w.want_file;
	return w.end;
}

// user_stack_hash identifies a stack record by its first len and interp_len
// entries (never 0, which means "no user stack").
static __always_inline u64 user_stack_hash(struct user_stack *st)
{
	u64 h = 0xcbf29ce484222325ULL ^ ((u64)st->len << 32 | st->interp_len);
	for (int i = 0; i < MAX_USER_FRAMES; i++) {
		if (i >= st->len)
			break;
		h = (h ^ st->pcs[i]) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	for (int i = 0; i < MAX_INTERP_FRAMES; i++) {
		if (i >= st->interp_len)
			break;
		h = (h ^ st->interp[i].addr ^ ((u64)st->interp[i].kind << 32 | st->interp[i].aux)) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	return h ? h : 1;
}
