// Package unwind compiles the call-frame information (CFI) of ELF files into
// the compact unwind tables the eBPF stack walker (bpf/native.bpf.h) follows,
// and keeps those tables in the kernel for the processes being sampled.
//
// # Building a table
//
// Build reads .eh_frame and, where present in the file itself, .debug_frame
// (FDEs of .debug_frame only fill ranges .eh_frame does not cover). Each FDE's
// CIE initial instructions and its own instructions are run through a DWARF
// CFA interpreter (DW_CFA_* including remember/restore_state) that tracks the
// CFA rule and the rules of three registers: the stack pointer's caller value
// is the CFA, the frame pointer (x86-64 rbp, arm64 x29) and the return
// address column (x86-64 16, arm64 x30). Every location change produces a row.
//
// # Table format
//
// A table is a sequence of 16-byte rows, little-endian, sorted by PC with no
// two rows at the same PC. A row covers [PC, next row's PC); the last row of a
// file is always a gap row. Layout (struct unwind_row in bpf/native.bpf.h):
//
//	offset size field
//	0      4    pc       ELF virtual address (link-time, before load bias)
//	4      4    cfa_off  signed
//	8      1    kind     Kind
//	9      1    fp_rule  FPSame or FPAtCFA
//	10     2    fp_off   signed; PLT rows: the (pc & 15) threshold
//	12     1    ra_rule  RAAtCFA or RAInLR
//	13     1    pad      0
//	14     2    ra_off   signed
//
// Kinds and what the walker does with them:
//
//	KindGap (0)         no CFI covers the pc: frame-pointer step
//	KindCFASP (1)       cfa = sp + cfa_off
//	KindCFAFP (2)       cfa = fp + cfa_off
//	KindCFADerefFP (3)  cfa = *(fp + cfa_off): stack realignment (gcc's main:
//	                    DW_OP_breg6 N; DW_OP_deref)
//	KindPLT (4)         x86-64 lazy-binding PLT stubs: cfa = sp + cfa_off +
//	                    ((pc & 15) >= fp_off ? 8 : 0), the one expression
//	                    binutils emits for .plt
//	KindSignal (5)      x86-64 signal trampoline (CIE augmentation "S"):
//	                    registers restored from the ucontext at sp
//	KindStop (6)        return address undefined (DW_CFA_undefined on the RA
//	                    column, e.g. _start): the walk ends at the root
//	KindUnsupported (7) CFI the walker cannot follow (CFA in another register,
//	                    other expressions): frame-pointer step
//
// The return address is at cfa + ra_off (RAAtCFA) or, on arm64 where the RA
// column has no rule yet (function entry, leaf functions), in the link
// register (RAInLR; only usable at the first frame). The caller's frame
// pointer is at cfa + fp_off (FPAtCFA) or unchanged (FPSame). Offsets that do
// not fit their field make the row KindUnsupported. Adjacent rows that differ
// only in pc are merged. Files linked above 4 GiB have their rows beyond it
// dropped (the walker's pc is 32-bit).
//
// # Loading tables
//
// Loader keeps one table per file, shared by every process mapping it and
// keyed by the file's GNU build id (dev:inode of the mapping first, so a
// known file is not even opened again). Loader.Refresh(pid) reads
// /proc/PID/maps (Loader.SetMaps takes them as the agent read them, once for
// the loader, the symbolizer and the Python detector) and writes the
// process's executable mappings (start, end, load bias, file id; at most
// MaxMappings) to pid_maps at once; files it has
// not seen are opened once for their build id, load segments and CFI size
// and get a file id. Nothing is compiled then.
//
// Tables are built lazily, for files samples land in: after each drain the
// agent hands the user stacks to Loader.Sampled, which finds each pc's
// mapping and queues the files without a table (at most Config.BuildQueue).
// Loader.Run builds the queued file with the most sampled pcs per byte of
// CFI first, in two goroutines of its own (files with more CFI than
// Config.LargeCFIBytes, default 512 KiB, in one, the rest in the other, so
// a small hot file never waits behind a compile of libLLVM), and writes
// unwind_rows and unwind_files. Until a file's rows are
// in, the walker steps by frame pointers there, so neither a refresh nor a
// drain waits for a compile. The walker does not wait for a drain either:
// the first time a walk meets a mapped file without rows it sends
// EVENT_WANT_TABLE with the file id (at most once a second per file), and
// Loader.Wanted queues the file at once, so only the samples taken before
// its build (milliseconds to tens of them) lack the callers beyond it. The file is opened for the
// build through /proc/PID/map_files of the sampled process or, when that
// process is gone, by its path if the file there has the same build id.
//
// The vDSO ("[vdso]" in /proc/PID/maps: clock_gettime, gettimeofday) has
// no file to open, but the kernel maps one image into every 64-bit process,
// so the loader reads the agent's own copy once (agent/vdso, which the
// symbolizer uses for its names too), identifies it by its build id like a
// file, and points every process's [vdso] mapping (bias: its start) at that
// one table, built lazily at its first sample as any other. A [vdso] mapping
// of another size (a 32-bit process's image) is written without a table
// (frame pointers). Without the mapping, every sample in the vDSO was a pc
// outside the process's mappings: the walk went on by frame pointers (the
// vDSO keeps them, except in its prologues), and each such sample asked for
// the maps again (EVENT_REFRESH, up to 5 a second per process).
//
// The agent refreshes a process at exec, for fork children (10 ms after the
// fork unless they exec'd meanwhile: agent Config.ForkReadDelay), and whenever the
// walker sends EVENT_REFRESH (a pc outside the process's known mappings, at
// most every 200 ms per process: a process the agent has not seen yet, a
// library mapped by the dynamic loader after exec, dlopen). Mappings are
// deleted at exit.
//
// Memory bound: all rows live in one array (unwind_rows) of
// Config.MaxRowBytes bytes (default 32 MiB, kernel memory, preallocated).
// A new table takes the shortest free range long enough. When there is none,
// the loader evicts the tables of one run of adjacent free ranges and
// tables long enough for it: the run whose most recently used table (last
// use: a sample in the file, or a refresh of a process mapping it) is the
// least recent, the fewest rows on a tie. When the least recently used
// table's rows (with the free rows beside it) suffice, that is least
// recently used eviction; otherwise a new table takes neighbours instead of
// least recently used tables scattered over the array (which left the freed
// rows in pieces too short for it and evicted far more than it needed).
// Tables are never moved, so the free rows still fragment under churn
// (TestEvictionChurn logs the loads against those of a budget that does not
// fragment). An evicted file keeps its id with zero rows (walks there use
// frame pointers) and is rebuilt at its next sample.
// Files whose CFI exceeds Config.MaxCFIBytes (default 16 MiB), whose table
// alone exceeds the budget, or that fail to compile are left to frame
// pointers and counted (Stats.CompileErrors); Go binaries (.gopclntab) are
// never compiled. The agent exports Stats as fleetprof_agent_unwind_*
// metrics.
//
// # Disk cache
//
// With Config.CacheDir set (the agent's default: /var/lib/fleetprof/unwind)
// every compiled table of a file with a build id is also written there as
// BUILDID.rows (format below), and a build reads it back instead of
// compiling: after a restart, a table costs one read of its rows (Debian's
// libc: 0.45 MB) instead of a compile (tens of ms of CPU, more on a busy
// host). Files are written to a temporary name and renamed. Bound: when a
// write takes the directory over Config.CacheMaxBytes (default 128 MiB), the
// least recently used files (modification time, renewed at every hit) are
// removed. A file that is truncated, of another version or fails its
// checksum is removed, counted (Stats.CacheErrors) and compiled again.
//
//	offset size field
//	0      8    magic "FPUNWIND"
//	8      4    format version (1), little-endian; bumped whenever Build's
//	            output for the same file could change
//	12     4    row count n
//	16     4    CRC-32 (IEEE) of the rows
//	20     16n  rows, encoded as in unwind_rows
//
// The kernel side is reached through the Tables interface (agent/sampler
// implements it, samplertest.Fake is the in-memory fake).
package unwind
