// Package debugpprof mounts the Go runtime's profiling endpoints
// (net/http/pprof under /debug/pprof/) on a server's mux when its operator
// turns them on, so the aggregator and the agent expose them the same way
// (and fleetprof can profile itself, and ingest that profile).
package debugpprof
