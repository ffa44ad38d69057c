// Package interp is the agent's framework for interpreted languages: it
// merges the frames an interpreter unwinder reports (Python today; JVM,
// Node.js or Ruby as sibling packages under agent/interp/) into the native
// stack the symbolizer named.
//
// An interpreter package provides, per process: detection (is this process
// running the interpreter, which version, where are its structures), the
// layout of its structures (offsets, from the binary itself), and naming of
// its code objects (read from /proc/PID/mem, cached). This package only
// holds what they share: the Frame type and Merge, the rule that puts
// interpreter frames in place of the interpreter's native evaluation frames.
//
// Status: CPython is read in the eBPF program at sample time
// (bpf/python.bpf.h) and merged by the agent; see agent/interp/python.
package interp
