//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// fleetprof CPU sampler: a perf_event program that counts (task, stacks)
// and tp_btf programs that report process exec/exit/fork through a ring
// buffer. See doc.go for how this is built and loaded, and for the
// unwind-table and stack-record formats.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

// Kernel's PERF_MAX_STACK_DEPTH (sysctl kernel.perf_event_max_stack default).
#define MAX_STACK_DEPTH 127
#define TASK_COMM_LEN 16
#define PF_KTHREAD 0x00200000

// errno values; vmlinux.h carries no macros.
#define E2BIG 7
#define EFAULT 14
#define EEXIST 17

// Set by the loader before load (rodata, so the verifier prunes dead paths).
const volatile bool skip_idle = true;
// Cleared by the loader to walk user stacks with frame pointers only (the
// baseline of the in-kernel cost benchmark).
const volatile bool use_tables = true;

// Indexes into the per-CPU stats array. Mirrored to Go by bpf2go -type.
enum stat_idx {
	STAT_SAMPLES = 0,            // perf samples handled (idle excluded when skipped)
	STAT_IDLE_SKIPPED,           // samples of the idle task that were skipped
	STAT_COUNT_MAP_FULL,         // sample lost: counts map full (E2BIG)
	STAT_COUNT_MAP_ERROR,        // sample lost: other counts map update error
	STAT_USER_STACK_COLLISION,   // unused since user stacks are walked here (kept for numbering)
	STAT_KERNEL_STACK_COLLISION, // kernel stack lost: stack map bucket taken (EEXIST)
	STAT_USER_STACK_FAULT,       // user stack lost: not even the first frame readable
	STAT_USER_MODE,              // no kernel stack (EFAULT): sample taken in user mode, not a loss
	STAT_USER_STACK_ERROR,       // user stack lost: user stack map full or other error
	STAT_KERNEL_STACK_ERROR,     // kernel stack lost: other error
	STAT_EVENTS_LOST,            // process event lost: ring buffer full
	STAT_WALK_ROOT,              // user walks ended at the root (stop rule, zero return address or frame pointer)
	STAT_WALK_NO_RULE,           // user walks ended at a pc with no usable rule
	STAT_WALK_BAD_READ,          // user walks ended on an unreadable or implausible stack slot
	STAT_WALK_DEPTH,             // user walks ended at MAX_USER_FRAMES
	STAT_WALK_NO_MAPPING,        // user walks that met a pc outside every mapping known for the process
	STAT_TABLE_FRAMES,           // user frames unwound by a table row
	STAT_FP_FRAMES,              // user frames unwound by the frame-pointer fallback
	STAT_REFRESH_SENT,           // EVENT_REFRESH records sent (unknown pc seen)
	STAT_MAX,
};

enum event_kind {
	EVENT_EXEC = 1,
	EVENT_EXIT = 2,
	EVENT_FORK = 3,
	EVENT_REFRESH = 4, // a sample hit a pc outside the process's known mappings: re-read its maps
	EVENT_PYTHON_CODE = 5, // python walker met a code object first: start_ns = its address, ppid = co_firstlineno & 0xffff
	EVENT_WANT_TABLE = 6, // a walk met a file whose unwind table is not loaded: start_ns = its file id
};

struct sample_key {
	u32 pid;             // kernel pid = thread id
	u32 tgid;            // process id
	s32 kernel_stack_id; // < 0: no kernel stack (error)
	u32 user_end;        // enum walk_end of the user stack
	u64 user_stack;      // key into user_stacks0/1 (hash of the record); 0: no user stack
	char comm[TASK_COMM_LEN];
};

struct event {
	u64 start_ns; // task start, boot-time clock (task_struct.start_boottime); EVENT_PYTHON_CODE: code address; EVENT_WANT_TABLE: file id
	u64 ts_ns;    // event time, boot-time clock
	u32 kind;     // enum event_kind
	u32 pid;      // tgid of the process the event is about
	u32 tid;      // thread that triggered the event
	u32 ppid;     // tgid of the real parent
	char comm[TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, u32);
	__type(value, u64);
	__uint(max_entries, STAT_MAX);
} stats SEC(".maps");

static __always_inline void stat_inc(u32 idx)
{
	u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		__sync_fetch_and_add(v, 1); // atomic: a perf sample can interrupt a tp_btf program
}

#include "native.bpf.h"

// Globals so bpf2go emits Go types for types only used through pointers or as constants.
const struct event *unused_event __attribute__((unused));
const enum stat_idx unused_stat_idx __attribute__((unused));
const enum event_kind unused_event_kind __attribute__((unused));
const struct unwind_row *unused_unwind_row __attribute__((unused));
const struct file_rows *unused_file_rows __attribute__((unused));
const struct proc_maps *unused_proc_maps __attribute__((unused));
const struct user_stack *unused_user_stack __attribute__((unused));
const enum walk_end unused_walk_end __attribute__((unused));
const enum row_kind unused_row_kind __attribute__((unused));
const enum interp_kind unused_interp_kind __attribute__((unused));

// Kernel stacks, user stacks and counts are double-buffered: the program
// writes to buffer active_buf while user space drains the other one, so a
// drain never races with new samples (no stack is deleted while a new
// sample may still refer to it). max_entries of all are overwritten by the
// loader.
struct stack_trace_map {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(key_size, sizeof(u32));
	__uint(value_size, MAX_STACK_DEPTH * sizeof(u64));
	__uint(max_entries, 16384);
};

struct count_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct sample_key);
	__type(value, u64);
	__uint(max_entries, 16384);
};

struct user_stack_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, u64);
	__type(value, struct user_stack);
	__uint(max_entries, 16384);
};

struct stack_trace_map stacks0 SEC(".maps");
struct stack_trace_map stacks1 SEC(".maps");
struct user_stack_map user_stacks0 SEC(".maps");
struct user_stack_map user_stacks1 SEC(".maps");
struct count_map counts0 SEC(".maps");
struct count_map counts1 SEC(".maps");

// Index (0 or 1) of the buffer samples go to; flipped by user space.
volatile u32 active_buf = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

// Tail-call slots for interpreter walkers (enum interp_kind - 1). A walker
// is a SEC("perf_event") program that reads the sample in progress from
// sample_scratch, appends entries to its interp section and ends with
// finish_sample(ctx). An empty slot falls through to finish_sample.
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, INTERP_MAX - 1);
	__type(key, u32);
	__type(value, u32);
} interp_walkers SEC(".maps");

// Last EVENT_REFRESH per process, so an unknown pc asks once per
// REFRESH_INTERVAL_NS rather than on every sample.
#define REFRESH_INTERVAL_NS (200 * 1000 * 1000ULL)
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, u32);
	__type(value, u64);
} refresh_sent SEC(".maps");

// Last EVENT_WANT_TABLE per file: a file being compiled is asked for once
// per WANT_TABLE_INTERVAL_NS however many processes sample it.
#define WANT_TABLE_INTERVAL_NS (1000 * 1000 * 1000ULL)
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, u32);
	__type(value, u64);
} table_wanted SEC(".maps");

static __always_inline void stack_error(long id, u32 collision, u32 fault, u32 other)
{
	if (id == -EEXIST)
		stat_inc(collision);
	else if (id == -EFAULT)
		stat_inc(fault);
	else
		stat_inc(other);
}

static __always_inline void emit(u32 kind, struct task_struct *p)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_inc(STAT_EVENTS_LOST);
		return;
	}
	e->kind = kind;
	e->pid = BPF_CORE_READ(p, tgid);
	e->tid = BPF_CORE_READ(p, pid);
	e->ppid = BPF_CORE_READ(p, real_parent, tgid);
	e->start_ns = BPF_CORE_READ(p, start_boottime);
	e->ts_ns = bpf_ktime_get_boot_ns();
	BPF_CORE_READ_STR_INTO(&e->comm, p, comm);
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void request_refresh(u32 tgid)
{
	u64 now = bpf_ktime_get_ns();
	u64 *last = bpf_map_lookup_elem(&refresh_sent, &tgid);
	if (last && now - *last < REFRESH_INTERVAL_NS)
		return;
	bpf_map_update_elem(&refresh_sent, &tgid, &now, BPF_ANY);
	stat_inc(STAT_REFRESH_SENT);
	emit(EVENT_REFRESH, (struct task_struct *)bpf_get_current_task());
}

// request_table asks user space to compile file fid's table now rather than
// at the next drain, so a new binary's samples walk by frame pointers for
// milliseconds, not a drain interval.
static __always_inline void request_table(u32 fid)
{
	u64 now = bpf_ktime_get_ns();
	u64 *last = bpf_map_lookup_elem(&table_wanted, &fid);
	if (last && now - *last < WANT_TABLE_INTERVAL_NS)
		return;
	bpf_map_update_elem(&table_wanted, &fid, &now, BPF_ANY);
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_inc(STAT_EVENTS_LOST);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->kind = EVENT_WANT_TABLE;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->start_ns = fid;
	e->ts_ns = bpf_ktime_get_boot_ns();
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void count(struct sample_key *key, void *counts)
{
	u64 *count = bpf_map_lookup_elem(counts, key);
	if (count) {
		__sync_fetch_and_add(count, 1);
		return;
	}
	u64 one = 1;
	long err = bpf_map_update_elem(counts, key, &one, BPF_NOEXIST);
	if (err == 0)
		return;
	if (err == -EEXIST) {
		// Another CPU inserted the same key in between.
		count = bpf_map_lookup_elem(counts, key);
		if (count) {
			__sync_fetch_and_add(count, 1);
			return;
		}
	}
	if (err == -E2BIG)
		stat_inc(STAT_COUNT_MAP_FULL);
	else
		stat_inc(STAT_COUNT_MAP_ERROR);
}

// finish_sample stores the user stack record (keyed by its hash) and
// counts the sample. It is the last step of do_sample and of every
// interpreter walker.
static __always_inline int finish_sample(struct bpf_perf_event_data *ctx)
{
	u32 zero = 0;
	struct sample_scratch *sc = bpf_map_lookup_elem(&sample_scratch, &zero);
	if (!sc)
		return 0;
	void *ustacks = active_buf ? (void *)&user_stacks1 : (void *)&user_stacks0;
	void *counts = active_buf ? (void *)&counts1 : (void *)&counts0;
	if (sc->has_user) {
		u64 h = user_stack_hash(&sc->stack);
		sc->key.user_stack = h;
		if (bpf_map_update_elem(ustacks, &h, &sc->stack, BPF_ANY) != 0) {
			sc->key.user_stack = 0;
			stat_inc(STAT_USER_STACK_ERROR);
		}
	}
	count(&sc->key, counts);
	return 0;
}

#include "python.bpf.h"

SEC("perf_event")
int do_sample(struct bpf_perf_event_data *ctx)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	u32 pid = (u32)pid_tgid;

	if (pid == 0) {
		if (skip_idle) {
			stat_inc(STAT_IDLE_SKIPPED);
			return 0;
		}
	}
	stat_inc(STAT_SAMPLES);

	u32 zero = 0;
	struct sample_scratch *sc = bpf_map_lookup_elem(&sample_scratch, &zero);
	if (!sc)
		return 0;
	__builtin_memset(&sc->key, 0, sizeof(sc->key));
	sc->key.pid = pid;
	sc->key.tgid = pid_tgid >> 32;
	sc->has_user = 0;
	sc->stack.len = 0;
	sc->stack.interp_len = 0;
	bpf_get_current_comm(&sc->key.comm, sizeof(sc->key.comm));

	void *kstacks = active_buf ? (void *)&stacks1 : (void *)&stacks0;
	sc->key.kernel_stack_id = bpf_get_stackid(ctx, kstacks, 0);
	if (sc->key.kernel_stack_id < 0)
		stack_error(sc->key.kernel_stack_id, STAT_KERNEL_STACK_COLLISION,
			    STAT_USER_MODE, STAT_KERNEL_STACK_ERROR);

	struct task_struct *task = bpf_get_current_task_btf();
	// Kernel threads have no user stack: not an error.
	if (!(task->flags & PF_KTHREAD)) {
		u32 unknown = 0, want_file = 0;
		int end = walk_user(task, sc, &unknown, &want_file);
		if (unknown)
			request_refresh(sc->key.tgid);
		if (want_file)
			request_table(want_file);
		if (sc->stack.len == 0) {
			stat_inc(STAT_USER_STACK_FAULT);
		} else {
			sc->has_user = 1;
			sc->key.user_end = end;
		}
	}

	// Interpreter walkers hook in here: a walker for the process's
	// interpreter kind sits in interp_walkers and ends with finish_sample.
	if (sc->has_user && sc->interp != INTERP_NONE)
		bpf_tail_call(ctx, &interp_walkers, sc->interp - 1);
	return finish_sample(ctx);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *p)
{
	emit(EVENT_EXEC, p);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit, struct task_struct *p)
{
	// Fires per thread; report the process once, when its last thread exits
	// (do_exit has already decremented signal->live).
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;
	emit(EVENT_EXIT, p);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	// New threads share the tgid; only new processes matter.
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	emit(EVENT_FORK, child);
	return 0;
}
