// Package sampler runs fleetprof's eBPF CPU sampler (package bpf) on the
// local host and hands out raw samples and process lifecycle events.
//
// New loads the BPF objects, opens one software cpu-clock perf event per
// online CPU in frequency mode (Config.Hz, default 19 Hz), attaches the
// sampling program to each, and attaches the sched_process_exec/exit/fork
// tp_btf programs. Drain empties the kernel's count map and returns one
// Sample per (thread, comm, user stack, kernel stack) with its count;
// addresses are raw instruction pointers, leaf first, as the kernel returns
// them. Symbolization is someone else's job (agent/symbolize). Events
// delivers exec/exit/fork of whole processes so that /proc/PID/maps can be
// read while the process still exists.
//
// The kernel maps are double-buffered: Drain switches the program to the
// other buffer, waits for an RCU grace period (membarrier) so no program
// still writes to the old one, then empties it (batch lookup-and-delete,
// or iterate and delete on kernels without batch ops) and clears its stack
// map. A drain therefore never races with sampling: no sample can point at
// a stack id that was deleted or reused. Drain takes ~10 ms of wall time
// (the grace period), little CPU.
//
// Every loss is counted and reported in Stats: a full count map, stack map
// collisions (two different stacks hashing to a taken bucket; size
// Config.StackMapEntries for the rate), unreadable stacks and events lost
// to a full ring buffer.
//
// Python: SetPython hands a detected CPython process (agent/interp/python)
// to the kernel's Python walker (bpf/python.bpf.h); its samples then carry
// the thread's Python frames in Sample.Interp (code object addresses, leaf
// first, decoded with PythonFrame; an end marker says a walk stopped at
// PythonMaxFrames or on a bad read) and Stats.Python counts the walks.
//
// Source is the interface at this kernel boundary; samplertest.Fake
// implements it for unit tests of consumers.
//
// Limitations:
//   - Stacks are unwound by the kernel through frame pointers only; there is
//     no .eh_frame unwinding yet. Code built without frame pointers (C at
//     -O2, Debian's libc, python3) gives truncated user stacks. A user stack
//     of exactly one frame is the cheap tell: Stats.TruncatedUserStacks
//     counts those samples. Go code unwinds fully. A leaf function without
//     its own frame drops its direct caller.
//   - CPUs that come online after New are not sampled.
//   - Requires root or CAP_BPF+CAP_PERFMON (and CAP_SYS_RESOURCE on kernels
//     that still charge BPF memory to RLIMIT_MEMLOCK), Linux 5.8+ with BTF
//     (/sys/kernel/btf/vmlinux) for ring buffers and tp_btf. New reads
//     CapEff from /proc/self/status before loading and fails with an error
//     naming each missing capability (CheckCapabilities documents the
//     decisions; CAP_SYS_PTRACE is reported as optional).
package sampler
