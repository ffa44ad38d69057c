// Package python reads CPython's state: which processes run CPython and
// which version (Detect), the layout of the interpreter's structures per
// version (LayoutFor), the Python frame chain of one thread (Walk, reading
// through a Memory), and the names of code objects (Namer, cached).
//
// # What is read, from where
//
//   - Detection: /proc/PID/maps for a mapped file named python3.X or
//     libpython3.X.so*, opened through /proc/PID/root (so containers work).
//     The ELF's .dynsym/.symtab give _PyRuntime and, from 3.11, Py_Version
//     (read from the file); 3.10 takes its version from the file name. The
//     load bias comes from the mapping of the PT_LOAD segment. No debug
//     package is needed (Debian's python3.11 exports both symbols). A
//     python3.X launcher without _PyRuntime that links libpython3.X (seen
//     at exec, before the dynamic loader maps the library) is ErrNotPython,
//     not unsupported: it is detected again once the library is mapped.
//   - 3.13: _PyRuntime starts with _Py_DebugOffsets (cookie "xdebugpy"); its
//     cookie and version are checked and its runtime/interpreter offsets
//     (interpreters.head, interp.next, interp.threads.head) are used; the
//     rest comes from the table.
//   - Thread state: _PyRuntime.interpreters.head → each interpreter's
//     threads.head → next …, the one whose native_thread_id (3.11+) equals
//     the sampled thread's id; 3.10 has no native_thread_id and matches
//     thread_id (pthread_self, the thread pointer on x86-64 glibc). Every
//     interpreter is searched, so sub-interpreters are not mixed up.
//   - Frames: 3.10 tstate.frame → PyFrameObject.f_back chain, one frame per
//     native eval call; 3.11 tstate.cframe → current_frame →
//     _PyInterpreterFrame.previous, a frame with is_entry ends one eval
//     call; 3.12 the same with the entry shim (owner FRAME_OWNED_BY_CSTACK)
//     marking the end of an eval call; 3.13 tstate.current_frame, shim as
//     3.12. Frames owned by the C stack are skipped.
//   - Names: co_qualname (3.11+) or co_name (3.10), co_filename,
//     co_firstlineno, read from /proc/PID/mem; a frame is named
//     module.qualname with the module from the file name (dir name for
//     __init__.py). Cached by (pid, code address), checked against
//     co_firstlineno read with the frame (the generation check), bounded LRU.
//   - Locations: the agent sends co_filename:co_firstlineno of each named
//     frame in the batch's frame_locations column (proto/samplebatch
//     SCHEMA.md; empty for native frames, "[python]" ones and a location
//     over samplebatch.MaxLocationBytes). CPython makes a script's path
//     absolute; modules keep the path they were imported by.
//
// Where the offsets come from: every version's table was checked with gdb
// against pyenv's 3.10.13, 3.11.7, 3.12.1 and 3.13.0 builds (which carry
// DWARF); 3.13 takes its runtime/interpreter offsets from _Py_DebugOffsets.
// The live tests (here from user space, agent/sampler's TestPythonKernelWalk
// with the eBPF walker) run on Debian's python3 (3.11, no debug package)
// and every pyenv 3.11+ found. 3.10 matches threads by pthread handle,
// which only the kernel walker can see (x86-64), and is not run live.
//
// Kernel walk: bpf/python.bpf.h does the same reads at sample time (see
// bpf's doc, "Python frames") with PY_MAX_FRAMES (63) frames; Walk here is
// its user-space reference (MaxFrames). The agent (agent/python.go)
// detects processes on exec/fork and at the first flush that sees their
// samples, names the frames with a Namer and merges them (agent/interp).
//
// Names are read when the kernel reports a new code object
// (sampler.EventPythonCode) and at flush on a cache miss, so a process
// living ~200 ms is still named; a miss after the process exited shows
// "[python]".
package python
