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
// Churn: what a new process costs the agent is reading /proc while it
// runs. BenchmarkExecEvent measures the user-space part deterministically
// (the exec, the two ExecRefreshDelays re-reads and the exit of a live
// Debian sleep, the real symbolizer and unwind loader, CPU from getrusage;
// five rounds alternated on the busy host, load 21-31):
//
//	per exec'd process     before      after
//	CPU                    492-584 µs  106-155 µs (medians 560 / 138)
//	allocated              142 KB      13.9 KB
//	maps reads             5           3
//
// Before, the maps were read by the loader (at exec and at each late
// refresh), the symbolizer (again, with stat, opening and fstat'ing every
// mapped file before its cache was consulted) and the Python detector:
// 41% of the CPU was the loader's reads, 20% the symbolizer, 15% the
// detector, 10% labels. Now the agent reads a process's maps once per
// event (agent/procmaps) and hands them to all three; a mapped file is
// found by the dev:inode of its maps line without being opened; on Linux
// 6.11+ the read asks PROCMAP_QUERY for the executable mappings only
// (about a third of the kernel's cost of the text); labels take comm from
// stat and parse each distinct cgroup file once. What dominates now is
// kernel time in /proc: the three maps reads (45%) and the labels' reads of
// environ (16%) and stat (11%) and cgroup; the loader's and symbolizer's
// own bookkeeping is about 4%.
//
// The whole agent under churn (BenchmarkAgentCPU, a shell loop at 250-680
// execs/s, load 21-31, old and new binaries alternated over 9 rounds, the
// first 4 new ones before PROCMAP_QUERY) does not resolve this: its churn
// window measured 32-55% of a core before and 23-55% after (medians 37 /
// 36% at 19 Hz, 39 / 33% at 99 Hz), and its derived per-exec figure spread
// 98-1168 µs, because other engineers' binaries being parsed and the GC
// that follows (0.1-2 CPU-s of each 6 s window) swamp it. The churn-window
// CPU profiles (FLEETPROF_BENCH_PPROF) show the event loop's share: 76-437
// µs per host fork before (median 288 at 19 Hz, 240 at 99 Hz), 61-241
// after (133, 152; a loop that lags skips processes that exited before it
// got to them, so both understate), its top items the symbolizer's
// ProcessStarted, labels, the Python detector's and the loader's maps
// reads before, the shared maps read, labels and the event ring's reader
// after. An exit also stops its process's pending ExecRefreshDelays
// re-reads, which for most processes of such a loop would only find it
// gone (not measured separately).
//
// Agreement with perf record on a C workload: AGREEMENT.md.
//
// The kernel boundary is sampler.Source (implemented by the eBPF sampler and
// by samplertest.Fake); the agent never imports cilium/ebpf itself.
package agent
