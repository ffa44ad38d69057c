// Package procmaps reads and parses /proc/PID/maps. The agent reads a
// process's maps once per process event and hands the same mappings to the
// unwind loader, the symbolizer and the interpreter detector: on a host
// that execs hundreds of short processes a second, each extra read of a
// maps file was a measurable share of the agent's CPU.
//
// Read asks the kernel for the executable mappings only, with the
// PROCMAP_QUERY ioctl (Linux 6.11+), where it can: formatting the text of
// every mapping costs about three times as much in the kernel (140 µs
// against 50 µs for a 43-line maps of a Debian sleep on a busy host). On
// older kernels it reads and parses the text (Parse), with every mapping.
package procmaps
