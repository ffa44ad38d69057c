// Command recordseries records real series on this machine with change points known
// by construction, for tuning and a held-out figure of the change-point core
// (analyzer/evaluate, `make eval-real`). It writes them in the format of
// analyzer/evaluate/testdata/tcpd.json: values, annotations (the single annotator
// "intervention" marks the first index after each recorded intervention), held_out
// (fixed by the schedule below, before any result was seen) and provenance.
//
// Three kinds of series, recorded in one run (`make record-series`, about 40 minutes):
//
//   - bench-*: repeated runs of a real Go micro-benchmark (testing.Benchmark) whose
//     work is switched at known run indices (+3%, +8%, +20%, a ramp, reverts), on this
//     shared host with its real noise: bench-NAME is the thread CPU time per op (a
//     benchmark metric), bench-NAME-wall the wall-clock ns/op of the same runs;
//   - share-*: a function's self share (%) per bucket, read with `fleetprof query top`
//     from a real `fleetprof up` (eBPF agent, embedded ClickHouse) profiling two
//     workload processes of this program whose mix of functions changes at known
//     buckets (light: about 0.2 core each, niced);
//   - load-*: /proc/loadavg sampled while an extra CPU-bound process (SCHED_IDLE, so
//     it runs only on otherwise idle cycles but always counts as runnable) is started
//     and stopped at known samples.
//
// The shares need root (the agent loads eBPF programs) and bin/fleetprof:
//
//	go build -o bin/fleetprof ./cmd/fleetprof
//	go run ./scripts/recordseries -fleetprof bin/fleetprof -out analyzer/evaluate/testdata/recorded.json
package main
