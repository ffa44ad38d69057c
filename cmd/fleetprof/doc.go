// Command fleetprof is the single binary of the fleetprof continuous profiler. Every
// component is a subcommand (one file each in this directory): up (all-in-one on one
// machine), agent, aggregator, query, import, analyze, changepoints, simulate, pipeline
// and mcp. Each parses its flags into the component's Config, validates it, and runs the
// component until SIGINT/SIGTERM. `fleetprof help` lists them.
package main
