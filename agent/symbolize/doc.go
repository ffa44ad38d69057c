// Package symbolize turns raw stack addresses captured by the eBPF sampler
// (user and kernel stacks, leaf first, as bpf_get_stackid returns them) into
// function names, root first: user frames from root to leaf, then kernel
// frames (the user code called into the kernel). Each inlined call expands
// into several names, outermost first.
//
// Supported:
//   - User space ELF objects found through /proc/PID/maps. Files are opened
//     via /proc/PID/root/<path> so binaries inside containers resolve, with
//     /proc/PID/map_files/<range> as the fallback (deleted or replaced
//     files, overlay inode mismatches).
//   - PIE and non-PIE executables and shared libraries: the load bias comes
//     from the PT_LOAD segment that holds the mapped file offset.
//   - Symbols from .symtab and .dynsym, and from separate debug files found
//     by build id under <DebugDir>/.build-id/xx/rest.debug (Debian's -dbg
//     packages, e.g. libc6-dbg), looked up in the process's root first.
//   - Go binaries (Go 1.20+, 64-bit): names and inlined frames from the
//     runtime's own tables (.gopclntab, with the inline tree found through
//     the module data), so stripped binaries (-ldflags=-s -w, "go test"
//     binaries) work and names match runtime.FuncForPC and CallersFrames:
//     net/http.(*conn).serve, generic functions as pkg.F[...]. Unknown
//     layouts fall back to debug/gosym (names only, no inlining).
//   - Inlined frames of other code from DWARF DW_TAG_inlined_subroutine, for
//     objects (or their debug files) that carry DWARF; agrees with
//     addr2line -i. DWARF bigger than Config.MaxDWARFBytes is skipped.
//   - C++ and Rust names, demangled lazily (ianlancetaylor/demangle).
//   - The vDSO, parsed once from this process's own mapping (agent/vdso; the kernel maps
//     the same image into every process).
//   - Kernel frames from /proc/kallsyms (module symbols included), suffixed
//     "_[k]" as perf and FlameGraph do.
//
// Frame naming: an unknown user frame is "[unknown] <module>+0x<addr>",
// addr being the ELF virtual address when the object could be read (feed it
// to addr2line) and the file offset otherwise; a frame outside every mapping
// is "[unknown]"; an unknown kernel frame is "[unknown]_[k]". Every frame but
// the leaf is a return address, so 1 is subtracted before the lookup to land
// on the call instruction (right function and inline context).
//
// Process lifecycle: ProcessStarted reads /proc/PID/maps (ProcessMapped
// takes maps the caller read) and opens the executable objects at once (the
// open files stay readable after the process is gone), so processes that
// exit before their samples are symbolized still resolve. A mapped file is
// first looked up by the dev and inode of its maps line, so a file already
// known is not opened again for each new process: the cache holds each such
// file open (its inode cannot be reused by another file meanwhile), and an
// fstat of that descriptor checks size and modification time (a file
// rewritten in place is opened and parsed again). A pid reused by another
// process maps other lines, so only unchanged lines keep their objects. An
// address outside every known mapping of a live process re-reads its maps
// (at most every Config.MinRefresh): libraries mapped by ld.so after the
// exec event, or dlopen. ProcessExited keeps the process for
// Config.ExitGrace for late samples. Objects are cached by build id (or
// dev+inode+size+mtime without one) and reference counted by the tracked
// processes that map them; unreferenced ones stay in an LRU bounded by
// Config.MaxFiles, so a library shared by many processes is parsed once.
//
// Memory: an object is opened at ProcessStarted but parsed only when a sample
// first needs it (most processes of a busy host are never sampled), and
// kept compact: symbol tables are streamed from the file (only function
// names are read), Go names are interned, inline runs take 16 bytes each
// with shared chains. Parsing still briefly needs the Go .gopclntab or the
// DWARF of one object in memory (tens of MB for the biggest binaries).
//
// Not supported: unwinding (.eh_frame/DWARF CFI is the sampler's job),
// .gnu_debuglink, debuginfod, JIT perf maps (/tmp/perf-PID.map), source
// lines, inlining inside the C part of cgo binaries, 32-bit processes,
// kallsyms reloads after modules load. A process that exits before ld.so
// mapped its libraries keeps those frames unknown.
//
// A Symbolizer is safe for concurrent use. One mutex guards its state but is
// never held while parsing: ProcessStarted only reads /proc/PID/maps and
// opens new objects (and their debug files), so the ProcessStarted of the
// next pid is never blocked by a parse. The first Symbolize that needs an
// object parses it after releasing the lock (one parse at a time, to bound
// memory; libc with its debug file and DWARF takes ~0.5-1.5 s once, a Go
// binary ~30-150 ms); others needing the same object wait for that parse,
// also without the lock.
package symbolize
