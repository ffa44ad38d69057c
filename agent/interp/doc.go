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
// Status: the kernel side (reading the frame chain at sample time in the
// eBPF program) is not written yet; see agent/interp/python's doc for what
// exists and what is validated live.
package interp
