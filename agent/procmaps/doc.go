// Package procmaps reads and parses /proc/PID/maps. The agent reads a
// process's maps once per process event and hands the same mappings to the
// unwind loader, the symbolizer and the interpreter detector: on a host
// that execs hundreds of short processes a second, each extra read of a
// maps file was a measurable share of the agent's CPU.
package procmaps
