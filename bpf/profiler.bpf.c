//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// fleetprof CPU sampler: a perf_event program that counts (task, stacks)
// and tp_btf programs that report process exec/exit/fork through a ring
// buffer. See doc.go for how this is built and loaded.

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

// Indexes into the per-CPU stats array. Mirrored to Go by bpf2go -type.
enum stat_idx {
	STAT_SAMPLES = 0,            // perf samples handled (idle excluded when skipped)
	STAT_IDLE_SKIPPED,           // samples of the idle task that were skipped
	STAT_COUNT_MAP_FULL,         // sample lost: counts map full (E2BIG)
	STAT_COUNT_MAP_ERROR,        // sample lost: other counts map update error
	STAT_USER_STACK_COLLISION,   // user stack lost: stack map bucket taken (EEXIST)
	STAT_KERNEL_STACK_COLLISION, // kernel stack lost: stack map bucket taken (EEXIST)
	STAT_USER_STACK_FAULT,       // user stack lost: EFAULT (no frames readable)
	STAT_USER_MODE,              // no kernel stack (EFAULT): sample taken in user mode, not a loss
	STAT_USER_STACK_ERROR,       // user stack lost: other error (ENOMEM, ...)
	STAT_KERNEL_STACK_ERROR,     // kernel stack lost: other error
	STAT_EVENTS_LOST,            // process event lost: ring buffer full
	STAT_MAX,
};

enum event_kind {
	EVENT_EXEC = 1,
	EVENT_EXIT = 2,
	EVENT_FORK = 3,
};

struct sample_key {
	u32 pid;  // kernel pid = thread id
	u32 tgid; // process id
	s32 user_stack_id;   // < 0: no user stack (kernel thread or error)
	s32 kernel_stack_id; // < 0: no kernel stack (error)
	char comm[TASK_COMM_LEN];
};

struct event {
	u64 start_ns; // task start, boot-time clock (task_struct.start_boottime)
	u64 ts_ns;    // event time, boot-time clock
	u32 kind;     // enum event_kind
	u32 pid;      // tgid of the process the event is about
	u32 tid;      // thread that triggered the event
	u32 ppid;     // tgid of the real parent
	char comm[TASK_COMM_LEN];
};

// Globals so bpf2go emits Go types for types only used through pointers or as constants.
const struct event *unused_event __attribute__((unused));
const enum stat_idx unused_stat_idx __attribute__((unused));
const enum event_kind unused_event_kind __attribute__((unused));

// Stacks and counts are double-buffered: the program writes to buffer
// active_buf while user space drains the other one, so a drain never races
// with new samples (no stack id is deleted while a new sample may still
// refer to it). max_entries of both are overwritten by the loader.
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

struct stack_trace_map stacks0 SEC(".maps");
struct stack_trace_map stacks1 SEC(".maps");
struct count_map counts0 SEC(".maps");
struct count_map counts1 SEC(".maps");

// Index (0 or 1) of the buffer samples go to; flipped by user space.
volatile u32 active_buf = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, u32);
	__type(value, u64);
	__uint(max_entries, STAT_MAX);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

static __always_inline void stat_inc(u32 idx)
{
	u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		__sync_fetch_and_add(v, 1); // atomic: a perf sample can interrupt a tp_btf program
}

static __always_inline void stack_error(long id, u32 collision, u32 fault, u32 other)
{
	if (id == -EEXIST)
		stat_inc(collision);
	else if (id == -EFAULT)
		stat_inc(fault);
	else
		stat_inc(other);
}

static __always_inline int record(struct bpf_perf_event_data *ctx, struct sample_key *key,
				  void *stacks, void *counts)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	unsigned int flags = BPF_CORE_READ(task, flags);

	key->kernel_stack_id = bpf_get_stackid(ctx, stacks, 0);
	if (key->kernel_stack_id < 0)
		stack_error(key->kernel_stack_id, STAT_KERNEL_STACK_COLLISION,
			    STAT_USER_MODE, STAT_KERNEL_STACK_ERROR);

	key->user_stack_id = -1;
	// Kernel threads have no user stack: not an error.
	if (!(flags & PF_KTHREAD)) {
		key->user_stack_id = bpf_get_stackid(ctx, stacks, BPF_F_USER_STACK);
		if (key->user_stack_id < 0)
			stack_error(key->user_stack_id, STAT_USER_STACK_COLLISION,
				    STAT_USER_STACK_FAULT, STAT_USER_STACK_ERROR);
	}

	u64 *count = bpf_map_lookup_elem(counts, key);
	if (count) {
		__sync_fetch_and_add(count, 1);
		return 0;
	}
	u64 one = 1;
	long err = bpf_map_update_elem(counts, key, &one, BPF_NOEXIST);
	if (err == 0)
		return 0;
	if (err == -EEXIST) {
		// Another CPU inserted the same key in between.
		count = bpf_map_lookup_elem(counts, key);
		if (count) {
			__sync_fetch_and_add(count, 1);
			return 0;
		}
	}
	if (err == -E2BIG)
		stat_inc(STAT_COUNT_MAP_FULL);
	else
		stat_inc(STAT_COUNT_MAP_ERROR);
	return 0;
}

SEC("perf_event")
int do_sample(struct bpf_perf_event_data *ctx)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	struct sample_key key = {};
	key.pid = (u32)pid_tgid;
	key.tgid = pid_tgid >> 32;

	if (key.pid == 0) {
		if (skip_idle) {
			stat_inc(STAT_IDLE_SKIPPED);
			return 0;
		}
	}
	stat_inc(STAT_SAMPLES);
	bpf_get_current_comm(&key.comm, sizeof(key.comm));

	if (active_buf)
		return record(ctx, &key, &stacks1, &counts1);
	return record(ctx, &key, &stacks0, &counts0);
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
