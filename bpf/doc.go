// Package bpf holds fleetprof's eBPF programs and their bpf2go-generated Go
// bindings.
//
// profiler.bpf.c (CO-RE, compiled once, relocated at load time against the
// running kernel's BTF) contains:
//
//   - do_sample, a perf_event program attached to one software cpu-clock
//     event per online CPU. Each sample records the kernel and user stacks
//     (bpf_get_stackid into a stack-trace map, the user one with
//     BPF_F_USER_STACK) and increments a hash map keyed by
//     ProfilerSampleKey (pid, tgid, user/kernel stack id, comm). The maps
//     are double-buffered (stacks0/counts0 and stacks1/counts1, selected by
//     the active_buf global) so user space drains one pair while the
//     program fills the other. The idle task (pid 0) is skipped unless the
//     skip_idle rodata constant is cleared before load.
//   - handle_exec, handle_exit and handle_fork, tp_btf programs on the
//     sched_process_exec/exit/fork tracepoints that write ProfilerEvent
//     records to the "events" ring buffer, one per process (new threads and
//     non-final thread exits are filtered out in the kernel).
//   - "stats", a per-CPU array indexed by ProfilerStatIdx counting samples
//     and every loss: counts map full, stack map collisions (EEXIST), user
//     stack read faults (EFAULT) and other errors, events lost to a full
//     ring. A kernel-stack EFAULT means the CPU was in user mode and is
//     counted as STAT_USER_MODE, not as a loss.
//
// Kernel stacks come from bpf_get_stackid. User stacks are walked by the
// program itself (native.bpf.h, bpf_loop, up to 128 frames) from the
// task's saved user registers: for each pc it finds the process's mapping
// in pid_maps (tgid -> sorted {start, end, bias, file id}), the file's
// rows in unwind_files (file id -> [first, first+count) of unwind_rows)
// and the row covering pc - bias (16 bytes: pc, CFA = SP|FP + offset or
// *(FP + offset), PLT, signal frame or stop rule, where the return address
// and the saved FP are). Where no row exists it steps by frame pointers.
// The walk's end (root, no rule, bad read, depth) is the sample key's
// user_end; the stack record (pcs leaf first plus an interpreter section of
// {kind, aux, addr} entries, see struct user_stack) goes to user_stacks0/1
// keyed by its hash. Interpreter walkers are tail calls in interp_walkers
// (slot = interp kind - 1, kind from pid_maps) and end with finish_sample.
// Samples at a pc outside every known mapping send EVENT_REFRESH (at most
// every 200 ms per process); a walk through a mapped file whose rows are not
// loaded sends EVENT_WANT_TABLE (start_ns = the file id; at most once a
// second per file, table_wanted) and steps by frame pointers there.
//
// User space (agent/unwind.Loader, through agent/sampler) writes each
// process's mappings when it is refreshed (exec, fork, EVENT_REFRESH) and
// compiles a file's table once per build id when samples land in it (at a
// drain, or at once on EVENT_WANT_TABLE); Go binaries get file id 0 and are
// walked by frame pointers. The vDSO is one more mapping there, its file id
// shared by every process (one table, from the agent's own vDSO image).
// # Python frames
//
// python.bpf.h holds python_walk, the INTERP_PYTHON tail call. User space
// (agent/sampler.SetPython, from agent/interp/python.Detect) writes a
// python_proc record per process into python_procs (the address of
// _PyRuntime and the offsets of every field read, per CPython version) and
// sets the process's pid_maps interp kind. Per sample the walker:
//
//  1. finds the thread's PyThreadState: python_threads (tid -> tstate, LRU)
//     checked by re-reading the state's thread id, else a bpf_loop search of
//     _PyRuntime.interpreters.head -> interp.threads.head -> tstate.next
//     over every interpreter (up to PY_MAX_SEARCH states) for the one whose
//     native_thread_id is the sampled tid (3.10: thread_id == fs base);
//  2. reads the current frame (tstate.cframe->current_frame for 3.11/3.12,
//     tstate.current_frame for 3.13, tstate.frame for 3.10) and follows
//     previous/f_back with one 128-byte read per frame plus a 4-byte read
//     of co_firstlineno, up to PY_MAX_FRAMES (63) frames;
//  3. appends one interp entry per Python frame, leaf first: kind
//     INTERP_PYTHON, addr = code object, aux = low 16 bits of
//     co_firstlineno | instruction index (code units, 15 bits, saturated)
//     << 16 | PY_ENTRY_BIT for the oldest frame of one native eval call
//     (3.11 is_entry; 3.12+ the frame above a C-stack shim, which is
//     skipped; 3.10 every frame).
//
// A walk that stops early appends an end marker (addr 0, aux = enum
// py_end: PY_END_DEPTH, PY_END_BAD_READ). python_stats counts walks, thread
// states not found, cache hits, search faults, truncations, bad reads and
// frames. Names are not read in the kernel: user space names code objects
// from /proc/PID/mem (cached per code address, see agent/interp/python).
// The first time a (process, code object, lineno) is seen (LRU
// python_codes_seen) the walker sends EVENT_PYTHON_CODE (start_ns = code
// address, ppid = lineno bits) so the agent names it while the process
// still runs.
//
// Status: user space does not load unwind tables yet, so every walk uses
// frame pointers today (same stacks as before: C -O2 and Debian's libc stay
// truncated, Go unwinds fully).
//
// Loading and attaching is done by agent/sampler; this package only
// embeds the object files.
//
// # Regenerating
//
// The generated profiler_*_bpfel.go and .o files are committed so that
// `go build` needs no clang. After editing profiler.bpf.c run
//
//	go generate ./bpf/        (or ./bpf/generate.sh)
//
// which needs clang and llvm-strip (Debian: clang llvm libbpf-dev) and runs
// bpf2go v0.22.0. `REGEN_VMLINUX=1 ./bpf/generate.sh` first re-dumps
// vmlinux.h from /sys/kernel/btf/vmlinux (needs bpftool); CO-RE makes the
// committed vmlinux.h good for other kernels too, so this is rarely needed.
// The output does not depend on the checkout path, so a check can
// regenerate and diff.
package bpf
