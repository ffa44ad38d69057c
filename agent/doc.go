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
// Agreement with perf record on a C workload: AGREEMENT.md.
//
// The kernel boundary is sampler.Source (implemented by the eBPF sampler and
// by samplertest.Fake); the agent never imports cilium/ebpf itself.
package agent
