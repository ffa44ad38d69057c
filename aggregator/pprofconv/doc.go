// Package pprofconv converts between pprof profiles (github.com/google/pprof/profile)
// and fleetprof's data: Import turns a pprof CPU profile into sample batch rows
// (proto/samplebatch) so `fleetprof import` can store it, and WritePprof/WriteFolded
// export a stored profile (aggregator/model.Profile) as a gzipped profile.proto that
// `go tool pprof` opens, or as folded stacks ("a;b;c 12" lines) for flame graph tools.
package pprofconv
