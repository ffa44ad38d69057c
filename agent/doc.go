// Package agent is the per-host daemon: it drains stack samples from the eBPF
// sampler, names their frames (agent/symbolize), labels them with service,
// version and Kubernetes metadata (agent/labels), aggregates identical
// (labels, stack) rows per flush interval into one Arrow sample batch
// (proto/samplebatch) and hands it to the shipper (agent/ship), which spools
// it on disk and delivers it to the aggregator exactly once.
//
// Run composes the actors with oklog/run: the process-event loop (maps of new
// processes are read at exec and fork, so short-lived processes still
// symbolize), the flush loop, the shipper, the Kubernetes pod lister (in a
// cluster) and the /metrics server. On shutdown the flush loop drains one last
// time, so samples taken until then are spooled and sent on the next start.
//
// Privileges: Open checks the effective capabilities first and fails naming
// the missing one (CAP_BPF, CAP_PERFMON; CAP_SYS_RESOURCE only before Linux
// 5.11; CAP_SYS_ADMIN stands in for the first two), see
// sampler.CheckCapabilities. Without CAP_SYS_PTRACE it runs degraded (other
// users' processes stay unsymbolized); Warnings names that, and /metrics
// exports fleetprof_agent_capability_missing{capability}.
//
// Memory: Open sets the process's GC to Config.GCPercent (50) and a soft
// Config.MemoryLimit (96 MiB) unless GOGC/GOMEMLIMIT are set; most of the
// heap is the symbol tables of the binaries sampled on the host.
//
// Unwind tables (agent/unwind) are built lazily: after each drain the user
// stacks go to unwind.Loader.Sampled, which queues the files their pcs land
// in; until a file's table is in (about one flush) the walker uses frame
// pointers there. Compiled tables are cached on disk by build id next to the
// spool (Config.Unwind.CacheDir), so a restart reads them back (Debian's
// libc: 1.5 ms instead of 26 ms of compiling). A fork child is read only
// Config.ForkReadDelay after its fork unless it exec'd meanwhile, so the
// children of a shell script are read once, as their new image.
//
// CPU and memory (BenchmarkAgentCPU: the agent as a child process, the whole
// host profiled, 2 cores shared with ~6 engineers' builds and tests, load
// 17-22; CPU as user+system from /proc over 6 s after an 8 s warm-up). The
// totals swing 5-28% of a core between identical runs with what else runs,
// so the profile's breakdown (go tool pprof of the child, whole 21 s run,
// two runs each at 19 and 99 Hz) is the before/after comparison:
//
//	CPU-s per run               before (eager)  after
//	all                         4.2-6.2         2.7-4.4
//	table compiles              0.19-1.30       0.04-0.68
//	process events (exec/fork)  0.55-1.38       0.35-1.21
//	  fork children read        0.12-0.57       0-0.09
//	symbol parsing (new files)  1.4-2.2         1.2-2.3
//	GC                          0.6-1.5         0.3-0.8
//
// (Compiles reach 0.68 s once the files that only short-lived processes
// run, such as gcc's cc1 with 2.4 MB of .eh_frame, are built too; each
// build id is compiled once, and after a restart read from the cache.)
//
// What dominates now is the symbolizer's first parse of each newly sampled
// binary (Go .gopclntab and DWARF inline trees; on this host every go test
// run is a new binary) and the GC that its tables cause under the 96 MiB
// soft limit. On an otherwise quiet host (BenchmarkAgentCPU, steady
// processes) the agent used 0.33% of a core at 19 Hz and at 99 Hz, RSS
// 60 / 100 MiB (peak 98 / 107 MiB); with the other engineers' builds
// running, 5-28%. RSS is 81-125 MiB (peak 112-158 MiB),
// ~90 MB of it the symbolizer's tables of the binaries sampled on the host;
// unwind rows live in kernel maps, not in the agent's heap.
//
// Churn (a shell loop at 400-650 execs/s) costs the agent about 0.3-0.7 ms
// of CPU per exec'd process, nearly all opening and reading /proc files:
// per exec about 140 µs in the symbolizer's ProcessStarted (maps, stat,
// and opening every mapped file before its dev:inode cache is consulted),
// 115 µs in label resolution (environ, cgroup, stat) and 110 µs in the
// unwind loader's three maps reads (at exec and ExecRefreshDelays later).
//
// Agreement with perf record on a C workload: AGREEMENT.md.
//
// The kernel boundary is sampler.Source (implemented by the eBPF sampler and
// by samplertest.Fake); the agent never imports cilium/ebpf itself.
package agent
