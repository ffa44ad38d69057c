// Package symbolize turns raw stack addresses captured by the eBPF sampler
// (user and kernel stacks, leaf first, as bpf_get_stackid returns them) into
// function names, root first.
//
// Supported:
//   - User space ELF objects found through /proc/PID/maps. Files are opened via
//     /proc/PID/root/<path> so binaries inside containers resolve, falling back
//     to /proc/PID/map_files/<range> (also used for deleted files).
//   - PIE and non-PIE executables and shared libraries: the load bias is
//     computed from the PT_LOAD segment that holds the mapped file offset.
//   - Symbols from .symtab and .dynsym, and from separate debug files found by
//     build id under <DebugDir>/.build-id/xx/rest.debug (Debian's *-dbg
//     packages, e.g. libc6-dbg), also looked up inside the process's root.
//   - Go binaries: function names from .gopclntab (works on stripped
//     binaries; names match runtime.FuncForPC, e.g. net/http.(*conn).serve).
//   - Inlined frames from DWARF DW_TAG_inlined_subroutine, for objects (or
//     their debug files) that carry DWARF; each inlined call expands into
//     several names, outermost first. Objects without DWARF get no inline
//     expansion (Go's own pclntab inline tree is not read).
//   - C++ and Rust names demangled (github.com/ianlancetaylor/demangle).
//   - The vDSO, read once from this process's own mapping (the kernel maps
//     the same image into every process).
//   - Kernel frames from /proc/kallsyms (including module symbols), suffixed
//     "_[k]" as perf and FlameGraph do.
//
// Frame naming: unknown user frames are "[unknown] <module>+0x<addr>" where
// addr is the ELF virtual address when the object could be read (feed it to
// addr2line) and the file offset otherwise; frames outside every mapping are
// "[unknown]"; unknown kernel frames are "[unknown]_[k]". Every frame but the
// leaf is a return address, so 1 is subtracted before lookup to land inside
// the call instruction (correct function and inline context).
//
// Process lifecycle: ProcessStarted reads /proc/PID/maps and loads the
// executable objects immediately, so processes that exit before their
// samples are symbolized still resolve. The start time (field 22 of
// /proc/PID/stat) detects pid reuse. ProcessExited keeps the process for
// Config.ExitGrace so late samples still resolve. Parsed objects are cached
// by build id (or dev+inode+size+mtime without one) in an LRU bounded by
// Config.MaxFiles; live processes keep their objects referenced.
//
// Not supported: unwinding (.eh_frame/DWARF CFI is the sampler's job),
// .gnu_debuglink lookups, debuginfod, JIT perf maps (/tmp/perf-PID.map),
// source lines, and kallsyms reloads after modules load. A Symbolizer is safe
// for concurrent use; one mutex serializes all calls, including the file I/O
// of loading a new object.
package symbolize
