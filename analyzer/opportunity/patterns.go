package opportunity

import "strings"

// Pattern is a fix pattern: a stack signature and what fixing it is expected to save.
type Pattern struct {
	Name        string
	Description string
	Fix         string
	// Saving is the expected fraction of the matched samples a fix removes (0..1);
	// Confidence is how often the signature really means this pattern (0..1).
	Saving, Confidence float64
	// match returns the index of the matching frame (root-first frames) or -1.
	match func(frames []string) int
}

// Pattern names. The offense skills key their transforms on these.
const (
	PatternRegexpCompile = "go-regexp-compile-hot"
	PatternSprintf       = "go-fmt-sprintf-hot"
	PatternStringConcat  = "go-string-concat-loop"
	PatternSliceGrowth   = "go-slice-growth"
	PatternJSON          = "go-json-reflection"
	PatternFlate         = "go-compress-level"
	PatternTLSHandshake  = "go-tls-handshake"
	PatternMutex         = "go-mutex-contention"
	PatternMapGrowth     = "go-map-hash-growth"
	PatternMemmove       = "go-memmove"
	PatternAlloc         = "go-alloc-gc"
	PatternNativeMalloc  = "native-malloc"
	PatternNativeMemcpy  = "native-memcpy"
	PatternPageFault     = "kernel-page-fault"
	PatternSyscall       = "kernel-syscall"
)

// Patterns are tried in order (most specific first); the first match wins a stack.
var Patterns = []Pattern{
	{Name: PatternRegexpCompile, Saving: 0.95, Confidence: 0.9,
		Description: "regular expression compiled on a hot path",
		Fix:         "compile constant patterns once into a package-level variable",
		match: func(fr []string) int {
			i := lastIndex(fr, func(f string) bool {
				return f == "regexp.Compile" || f == "regexp.MustCompile" || f == "regexp.compile" || f == "regexp.CompilePOSIX" || f == "regexp.MustCompilePOSIX"
			})
			// The outermost regexp frame: its caller decides whether this is init.
			for i > 0 && strings.HasPrefix(fr[i-1], "regexp.") {
				i--
			}
			if i > 0 && isInit(fr[i-1]) || i >= 0 && anyInit(fr[:i]) {
				return -1
			}
			return i
		}},
	{Name: PatternSprintf, Saving: 0.6, Confidence: 0.7,
		Description: "fmt formatting on a hot path",
		Fix:         "use strconv (Itoa, AppendInt, Quote) or a strings.Builder instead of fmt.Sprintf/Errorf",
		match: outermost(func(f string) bool {
			return f == "fmt.Sprintf" || f == "fmt.Errorf" || f == "fmt.Sprint" || f == "fmt.Sprintln"
		})},
	{Name: PatternStringConcat, Saving: 0.8, Confidence: 0.75,
		Description: "string concatenation (s += …) copying the string on every step",
		Fix:         "build the string with a strings.Builder",
		match:       outermost(func(f string) bool { return strings.HasPrefix(f, "runtime.concatstring") })},
	{Name: PatternSliceGrowth, Saving: 0.7, Confidence: 0.7,
		Description: "slice grown by append without preallocation",
		Fix:         "preallocate with make([]T, 0, n) when the final length is known",
		match:       outermost(func(f string) bool { return f == "runtime.growslice" })},
	{Name: PatternJSON, Saving: 0.5, Confidence: 0.6,
		Description: "encoding/json and reflection",
		Fix:         "avoid re-encoding, cache encoders, or use a generated/streaming codec",
		match: outermost(func(f string) bool {
			return strings.HasPrefix(f, "encoding/json.") || strings.HasPrefix(f, "reflect.")
		})},
	{Name: PatternFlate, Saving: 0.5, Confidence: 0.6,
		Description: "compression at a costly level",
		Fix:         "lower the compression level (flate.BestSpeed) or compress less data",
		match: outermost(func(f string) bool {
			return strings.HasPrefix(f, "compress/flate.") || strings.HasPrefix(f, "compress/gzip.")
		})},
	{Name: PatternTLSHandshake, Saving: 0.8, Confidence: 0.7,
		Description: "TLS handshakes",
		Fix:         "reuse connections (keep-alive, pooled clients) and enable session resumption",
		match: outermost(func(f string) bool {
			return strings.HasPrefix(f, "crypto/tls.") && strings.Contains(strings.ToLower(f), "handshake")
		})},
	{Name: PatternMutex, Saving: 0.5, Confidence: 0.6,
		Description: "mutex contention",
		Fix:         "shorten critical sections, shard the lock, or use atomics / sync.RWMutex",
		match: outermost(func(f string) bool {
			return f == "sync.(*Mutex).lockSlow" || f == "runtime.lock2" || strings.HasPrefix(f, "runtime.futex") || f == "futex_wait_[k]" || f == "do_futex_[k]"
		})},
	{Name: PatternMapGrowth, Saving: 0.4, Confidence: 0.6,
		Description: "map hashing and growth",
		Fix:         "size maps with make(map[K]V, n), use cheaper keys, or replace small maps with slices",
		match: outermost(func(f string) bool {
			return strings.HasPrefix(f, "runtime.mapassign") || strings.HasPrefix(f, "runtime.hashGrow") || strings.HasPrefix(f, "runtime.growWork") ||
				strings.HasPrefix(f, "internal/runtime/maps.") || strings.HasPrefix(f, "runtime.mapaccess")
		})},
	{Name: PatternMemmove, Saving: 0.4, Confidence: 0.5,
		Description: "memory copying",
		Fix:         "avoid copies: reuse buffers, pass slices instead of copying, preallocate",
		match:       outermost(func(f string) bool { return f == "runtime.memmove" })},
	{Name: PatternAlloc, Saving: 0.4, Confidence: 0.5,
		Description: "allocation and garbage collection",
		Fix:         "allocate less on this path (reuse buffers, sync.Pool, avoid pointers in hot structs) or tune GOGC/GOMEMLIMIT",
		match: outermost(func(f string) bool {
			return f == "runtime.mallocgc" || f == "runtime.gcBgMarkWorker" || f == "runtime.scanobject" || f == "runtime.gcDrain" || f == "runtime.newobject" || f == "runtime.makeslice"
		})},
	{Name: PatternNativeMalloc, Saving: 0.3, Confidence: 0.5,
		Description: "native malloc/free",
		Fix:         "pool or arena-allocate, or use a faster allocator (jemalloc, tcmalloc)",
		match: outermost(func(f string) bool {
			switch f {
			case "malloc", "free", "calloc", "realloc", "_int_malloc", "_int_free", "__libc_malloc", "__libc_free", "cfree":
				return true
			}
			return false
		})},
	{Name: PatternNativeMemcpy, Saving: 0.3, Confidence: 0.5,
		Description: "native memory copying",
		Fix:         "avoid copies (zero-copy buffers, larger reads)",
		match: outermost(func(f string) bool {
			return f == "memcpy" || f == "memmove" || strings.HasPrefix(f, "__memcpy") || strings.HasPrefix(f, "__memmove")
		})},
	{Name: PatternPageFault, Saving: 0.5, Confidence: 0.5,
		Description: "page faults",
		Fix:         "reuse memory instead of mapping fresh pages; consider huge pages",
		match: outermost(func(f string) bool {
			return strings.HasSuffix(f, "_[k]") && (strings.Contains(f, "page_fault") || strings.Contains(f, "do_anonymous_page") || strings.Contains(f, "handle_mm_fault"))
		})},
	{Name: PatternSyscall, Saving: 0.3, Confidence: 0.4,
		Description: "system calls",
		Fix:         "batch I/O (bufio, larger reads/writes, vectored I/O) to make fewer syscalls",
		match: outermost(func(f string) bool {
			return strings.HasSuffix(f, "_[k]") && (strings.Contains(f, "syscall") || strings.HasPrefix(f, "__x64_sys_") || strings.HasPrefix(f, "__arm64_sys_")) ||
				f == "syscall.Syscall" || f == "syscall.Syscall6" || f == "internal/runtime/syscall.Syscall6" || f == "syscall.RawSyscall6"
		})},
}

var patternByName = func() map[string]Pattern {
	m := make(map[string]Pattern, len(Patterns))
	for _, p := range Patterns {
		m[p.Name] = p
	}
	return m
}()

// Lookup returns the pattern named name.
func Lookup(name string) (Pattern, bool) {
	p, ok := patternByName[name]
	return p, ok
}

// Classify returns the first pattern matching a root-first stack and the index of the
// matching frame, or nil.
func Classify(frames []string) (*Pattern, int) {
	for i := range Patterns {
		if idx := Patterns[i].match(frames); idx >= 0 {
			return &Patterns[i], idx
		}
	}
	return nil, -1
}

// outermost matches the frame closest to the root that satisfies is.
func outermost(is func(string) bool) func([]string) int {
	return func(fr []string) int {
		for i, f := range fr {
			if is(f) {
				return i
			}
		}
		return -1
	}
}

func lastIndex(fr []string, is func(string) bool) int {
	for i := len(fr) - 1; i >= 0; i-- {
		if is(fr[i]) {
			return i
		}
	}
	return -1
}

// isInit reports whether a frame is package initialization (package-level variable
// initializers run in "pkg.init" and "pkg.init.N").
func isInit(f string) bool {
	_, name := splitFunc(f)
	return name == "init" || strings.HasPrefix(name, "init.") || f == "runtime.doInit" || f == "runtime.doInit1"
}

func anyInit(fr []string) bool {
	for _, f := range fr {
		if f == "runtime.doInit" || f == "runtime.doInit1" {
			return true
		}
	}
	return false
}

// splitFunc splits "a/b.(*T).m" into package "a/b" and "(*T).m".
func splitFunc(f string) (pkg, name string) {
	slash := strings.LastIndexByte(f, '/')
	dot := strings.IndexByte(f[slash+1:], '.')
	if dot < 0 {
		return "", f
	}
	return f[:slash+1+dot], f[slash+2+dot:]
}
