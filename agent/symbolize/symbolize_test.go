package symbolize

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/agent/procmaps"
	"github.com/fleetprof/fleetprof/internal/testenv"
)

func newTestSymbolizer(t testing.TB, cfg Config) *Symbolizer {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// --- the running test binary ---------------------------------------------

type selfServer struct{ n int }

//go:noinline
func (s *selfServer) handle() int { s.n++; return s.n }

//go:noinline
func selfLeaf() []uintptr {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(1, pcs)
	return pcs[:n]
}

// selfInlined is small enough to be inlined into selfOuter.
func selfInlined() []uintptr { return selfLeaf() }

//go:noinline
func selfOuter() []uintptr { return selfInlined() }

// physicalStack mirrors testdata/goprog: runtime.Callers lists logical
// frames; a frame-pointer unwinder sees one return address per physical
// frame, which the runtime reports first among its logical frames.
func physicalStack(pcs []uintptr) (stack []uint64, frames []string) {
	var lastEntry uintptr
	for _, pc := range pcs {
		entry := runtime.FuncForPC(pc - 1).Entry()
		if entry != lastEntry {
			stack = append(stack, uint64(pc))
		}
		lastEntry = entry
	}
	it := runtime.CallersFrames(pcs)
	for {
		f, more := it.Next()
		frames = append([]string{f.Function}, frames...)
		if !more {
			break
		}
	}
	return stack, frames
}

// asSample makes a Callers-style stack look like a sample: the leaf is an
// instruction pointer, not a return address.
func asSample(stack []uint64) []uint64 {
	out := slices.Clone(stack)
	out[0]--
	return out
}

func TestSymbolizeSelf(t *testing.T) {
	s := newTestSymbolizer(t, Config{})
	pid := uint32(os.Getpid())
	if err := s.ProcessStarted(pid); err != nil {
		t.Fatalf("ProcessStarted: %v", err)
	}
	tests := []struct {
		name string
		fn   any
	}{
		{"func", selfLeaf},
		{"method", (*selfServer).handle},
		{"test", TestSymbolizeSelf},
		{"stdlib", strings.Repeat},
		{"stdlib method", (*bufio.Reader).ReadString},
		{"runtime", runtime.GC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc := reflect.ValueOf(tt.fn).Pointer()
			want := runtime.FuncForPC(pc).Name()
			got := s.Symbolize(pid, []uint64{uint64(pc) + 1}, nil)
			if !slices.Equal(got, []string{want}) {
				t.Errorf("Symbolize(%#x) = %q, want [%q]", pc, got, want)
			}
		})
	}
	t.Run("stack with inlined frame", func(t *testing.T) {
		stack, want := physicalStack(selfOuter())
		if !slices.ContainsFunc(want, func(n string) bool { return strings.HasSuffix(n, ".selfInlined") }) {
			t.Fatalf("compiler did not inline selfInlined; frames %q", want)
		}
		got := s.Symbolize(pid, asSample(stack), nil)
		if !slices.Equal(got, want) {
			t.Errorf("Symbolize(stack) =\n%q\nwant\n%q", got, want)
		}
	})
}

// TestSymbolizeSelfMatchesRuntime compares up to 50,000 evenly spread addresses
// of this binary's Go code with what the runtime itself reports for it: the
// innermost (possibly inlined) function from CallersFrames and the
// outermost (physical) function from FuncForPC(Entry).
func TestSymbolizeSelfMatchesRuntime(t *testing.T) {
	s := newTestSymbolizer(t, Config{})
	pid := uint32(os.Getpid())
	var text *mapping
	self, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range readTestMaps(t, pid) {
		if m.path == self {
			text = &m
			break
		}
	}
	if text == nil {
		t.Fatal("no executable mapping of the test binary")
	}
	var checked, inlined int
	step := max(11, (text.end-text.start)/50000) // bounded work under -race
	for pc := text.start; pc < text.end; pc += step {
		fn := runtime.FuncForPC(uintptr(pc))
		if fn == nil {
			continue // padding, or code without Go metadata
		}
		if next := runtime.FuncForPC(uintptr(pc) + 1); next == nil || next.Entry() != fn.Entry() {
			continue // CallersFrames would find the next function first
		}
		outer := runtime.FuncForPC(fn.Entry()).Name()
		// CallersFrames takes return addresses (it looks up pc-1) and
		// names only the innermost function at each.
		f, _ := runtime.CallersFrames([]uintptr{uintptr(pc) + 1}).Next()
		inner := f.Function
		if inner == "" || outer == "" || strings.HasPrefix(outer, "_") {
			continue // no name, or C code (race runtime, cgo): not Go's naming
		}
		got := s.Symbolize(pid, []uint64{pc}, nil)
		if len(got) == 0 || got[0] != outer || got[len(got)-1] != inner || (inner != outer && len(got) == 1) {
			t.Fatalf("pc %#x: got %q, runtime says outermost %q, innermost %q", pc, got, outer, inner)
		}
		checked++
		if len(got) > 1 {
			inlined++
		}
	}
	t.Logf("%d addresses agree with the runtime, %d of them inside inlined code", checked, inlined)
	if inlined == 0 {
		t.Error("no inlined code found: inline expansion untested")
	}
}

// --- Go binaries built by the test ---------------------------------------

type goReport struct {
	Funcs  map[string]uint64 `json:"funcs"`
	Stack  []uint64          `json:"stack"`
	Frames []string          `json:"frames"`
}

func TestSymbolizeGoBinary(t *testing.T) {
	testenv.LookPath(t, "go", "golang-go, or Go from go.dev")
	tests := []struct {
		name string
		args []string
	}{
		{"exe", []string{"-buildmode=exe"}},
		{"pie", []string{"-buildmode=pie"}},
		{"pie stripped", []string{"-buildmode=pie", "-ldflags=-s -w"}},
		{"exe stripped", []string{"-buildmode=exe", "-ldflags=-s -w"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bin := filepath.Join(t.TempDir(), "goprog")
			args := append([]string{"build", "-o", bin}, tt.args...)
			args = append(args, "main.go")
			cmd := exec.Command("go", args...)
			cmd.Dir = "testdata/goprog"
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, out)
			}
			p := startFixture(t, bin)
			var rep goReport
			if err := json.Unmarshal([]byte(p.line(t)), &rep); err != nil {
				t.Fatalf("decode fixture report: %v", err)
			}
			s := newTestSymbolizer(t, Config{})
			if err := s.ProcessStarted(p.pid); err != nil {
				t.Fatalf("ProcessStarted: %v", err)
			}
			for _, name := range []string{"main.leaf", "main.outer", "main.(*server).serve", "main.main"} {
				pc, ok := rep.Funcs[name]
				if !ok {
					t.Fatalf("fixture did not report %s: %v", name, rep.Funcs)
				}
				if got := s.Symbolize(p.pid, []uint64{pc + 3}, nil); !slices.Equal(got, []string{name}) {
					t.Errorf("Symbolize(%s+3) = %q", name, got)
				}
			}
			// Stripped or not, inlined frames come from pclntab.
			want := rep.Frames
			if got := s.Symbolize(p.pid, asSample(rep.Stack), nil); !slices.Equal(got, want) {
				t.Errorf("Symbolize(stack) =\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// --- C fixture -------------------------------------------------------------

type fixture struct {
	pid   uint32
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startFixture runs bin; closing its stdin (done at cleanup) ends it.
func startFixture(t testing.TB, bin string, args ...string) *fixture {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	return &fixture{pid: uint32(cmd.Process.Pid), cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
}

func (f *fixture) line(t testing.TB) string {
	t.Helper()
	l, err := f.out.ReadString('\n')
	if err != nil {
		t.Fatalf("read fixture output: %v", err)
	}
	return strings.TrimSpace(l)
}

// addrs reads chain.c's "name 0xaddr" lines up to "ready".
func (f *fixture) addrs(t testing.TB) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	for {
		l := f.line(t)
		if l == "ready" {
			return m
		}
		name, hex, _ := strings.Cut(l, " ")
		v, err := strconv.ParseUint(strings.TrimPrefix(hex, "0x"), 16, 64)
		if err != nil {
			t.Fatalf("fixture line %q: %v", l, err)
		}
		m[name] = v
	}
}

func buildC(t testing.TB, pie bool) string {
	t.Helper()
	testenv.LookPath(t, "gcc", "gcc")
	bin := filepath.Join(t.TempDir(), "chain")
	args := []string{"-O0", "-fno-omit-frame-pointer", "-o", bin, "testdata/chain.c"}
	if pie {
		args = append(args, "-fPIE", "-pie")
	} else {
		args = append(args, "-fno-PIE", "-no-pie")
	}
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}

type nmSym struct{ addr, size uint64 }

// nmSymbols reads defined text symbols with sizes, as an independent
// reference for the ELF reader.
func nmSymbols(t testing.TB, bin string) map[string]nmSym {
	t.Helper()
	testenv.LookPath(t, "nm", "binutils")
	out, err := exec.Command("nm", "-S", "--defined-only", bin).Output()
	if err != nil {
		t.Fatalf("nm: %v", err)
	}
	m := map[string]nmSym{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) != 4 || (f[2] != "T" && f[2] != "t") {
			continue
		}
		a, _ := strconv.ParseUint(f[0], 16, 64)
		sz, _ := strconv.ParseUint(f[1], 16, 64)
		m[f[3]] = nmSym{a, sz}
	}
	return m
}

func TestSymbolizeC(t *testing.T) {
	for _, pie := range []bool{false, true} {
		t.Run(fmt.Sprintf("pie=%v", pie), func(t *testing.T) {
			bin := buildC(t, pie)
			syms := nmSymbols(t, bin)
			p := startFixture(t, bin, "block")
			rt := p.addrs(t)
			bias := rt["main"] - syms["main"].addr
			if pie == (bias == 0) {
				t.Fatalf("pie=%v but load bias is %#x", pie, bias)
			}
			s := newTestSymbolizer(t, Config{})
			if err := s.ProcessStarted(p.pid); err != nil {
				t.Fatalf("ProcessStarted: %v", err)
			}
			// Every address inside each function, as a leaf and as a
			// return address (which is looked up at -1).
			for _, name := range []string{"main", "a", "b", "c"} {
				sym := syms[name]
				if sym.size == 0 || rt[name] != sym.addr+bias {
					t.Fatalf("%s: nm %+v, runtime %#x, bias %#x", name, sym, rt[name], bias)
				}
				for off := uint64(0); off < sym.size; off++ {
					pc := sym.addr + bias + off
					if got := s.Symbolize(p.pid, []uint64{pc}, nil); !slices.Equal(got, []string{name}) {
						t.Fatalf("leaf %s+%#x = %q", name, off, got)
					}
					if got := s.Symbolize(p.pid, []uint64{0, pc + 1}, nil); got[0] != name {
						t.Fatalf("return address %s+%#x = %q", name, off+1, got)
					}
				}
			}
			// A whole stack, leaf first in, root first out.
			user := []uint64{rt["c"] + 8, rt["b"] + 9, rt["a"] + 9, rt["main"] + 9}
			want := []string{"main", "a", "b", "c"}
			if got := s.Symbolize(p.pid, user, nil); !slices.Equal(got, want) {
				t.Errorf("Symbolize(stack) = %q, want %q", got, want)
			}
			// Outside every mapping.
			if got := s.Symbolize(p.pid, []uint64{8}, nil); !slices.Equal(got, []string{"[unknown]"}) {
				t.Errorf("unmapped frame = %q", got)
			}
		})
	}
}

func TestShortLivedProcess(t *testing.T) {
	bin := buildC(t, true)
	s := newTestSymbolizer(t, Config{ExitGrace: time.Hour})
	p := startFixture(t, bin, "short")
	// As the sampler would on the exec event: read the maps right away.
	if err := s.ProcessStarted(p.pid); err != nil {
		t.Fatalf("ProcessStarted: %v", err)
	}
	rt := p.addrs(t)
	if _, err := p.stdin.Write([]byte("exit\n")); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/maps", p.pid)); err == nil {
		t.Fatalf("process %d still has /proc entry after Wait", p.pid)
	}
	s.ProcessExited(p.pid)
	user := []uint64{rt["c"], rt["b"] + 9, rt["a"] + 9, rt["main"] + 9}
	want := []string{"main", "a", "b", "c"}
	if got := s.Symbolize(p.pid, user, nil); !slices.Equal(got, want) {
		t.Errorf("Symbolize after exit = %q, want %q", got, want)
	}
	if st := s.Stats(); st.Processes != 1 {
		t.Errorf("Processes = %d, want 1 (kept for the grace period)", st.Processes)
	}
}

func TestKernel(t *testing.T) {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		testenv.Skip(t, testenv.KernelFeature, "no /proc/kallsyms: %v", err)
	}
	k, err := parseKallsyms(f)
	f.Close()
	if errors.Is(err, errKptrRestrict) {
		testenv.Skip(t, testenv.NotRoot, "/proc/kallsyms shows zero addresses (kernel.kptr_restrict or not root)")
	}
	if err != nil {
		t.Fatal(err)
	}
	idx := map[string]uint64{}
	for i, n := range k.names {
		idx[n] = k.addrs[i]
	}
	s := newTestSymbolizer(t, Config{})
	var checked int
	for _, name := range []string{"schedule_[k]", "do_syscall_64_[k]", "entry_SYSCALL_64_[k]", "vfs_read_[k]"} {
		addr, ok := idx[name]
		if !ok {
			continue
		}
		checked++
		// Leaf at the symbol; as a caller frame one past it (return
		// address semantics).
		got := s.Symbolize(0, nil, []uint64{addr, addr + 1})
		if !slices.Equal(got, []string{name, name}) {
			t.Errorf("kernel %s = %q", name, got)
		}
	}
	if checked == 0 {
		t.Fatal("none of the probe symbols in kallsyms")
	}
	got := s.Symbolize(0, nil, []uint64{1})
	if !slices.Equal(got, []string{"[unknown]_[k]"}) {
		t.Errorf("kernel address 1 = %q", got)
	}
}

// TestDebugFileByBuildID resolves a libc function that only the separate
// debug file names (a local symbol stripped from libc.so.6).
func TestDebugFileByBuildID(t *testing.T) {
	bin := buildC(t, true)
	p := startFixture(t, bin, "block")
	p.addrs(t)
	maps := readTestMaps(t, p.pid)
	var libc *mapping
	for i := range maps {
		if strings.Contains(filepath.Base(maps[i].path), "libc.so") {
			libc = &maps[i]
			break
		}
	}
	if libc == nil {
		t.Fatal("fixture has no libc mapping")
	}
	lf, err := elf.Open(libc.path)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	id, err := buildID(lf)
	if err != nil {
		t.Fatalf("libc build id: %v", err)
	}
	debugPath := "/usr/lib/debug/.build-id/" + id[:2] + "/" + id[2:] + ".debug"
	df, err := elf.Open(debugPath)
	if err != nil {
		testenv.Skip(t, testenv.MissingTool, "no libc debug file %s: install Debian package libc6-dbg", debugPath)
	}
	defer df.Close()
	dyn, _ := lf.DynamicSymbols()
	inLibc := map[uint64]bool{}
	for _, sy := range dyn {
		inLibc[sy.Value] = true
	}
	syms, _ := df.Symbols()
	byAddr := map[uint64][]elf.Symbol{}
	for _, sy := range syms {
		if elf.ST_TYPE(sy.Info) == elf.STT_FUNC && sy.Value != 0 && sy.Size > 16 {
			byAddr[sy.Value] = append(byAddr[sy.Value], sy)
		}
	}
	var target elf.Symbol
	for _, sy := range syms {
		if elf.ST_TYPE(sy.Info) == elf.STT_FUNC && elf.ST_BIND(sy.Info) == elf.STB_LOCAL &&
			sy.Size > 16 && !inLibc[sy.Value] && len(byAddr[sy.Value]) == 1 && !strings.Contains(sy.Name, ".") {
			target = sy
			break
		}
	}
	if target.Name == "" {
		t.Fatal("no unique local function in the libc debug file")
	}
	// Runtime address: vaddr -> file offset (PT_LOAD) -> mapping.
	var pc uint64
	for _, ph := range lf.Progs {
		if ph.Type == elf.PT_LOAD && target.Value >= ph.Vaddr && target.Value < ph.Vaddr+ph.Filesz {
			off := target.Value - ph.Vaddr + ph.Off
			for _, m := range maps {
				if m.path == libc.path && off >= m.offset && off < m.offset+(m.end-m.start) {
					pc = m.start + off - m.offset
				}
			}
		}
	}
	if pc == 0 {
		t.Fatalf("%s at %#x is not in an executable libc mapping", target.Name, target.Value)
	}
	t.Logf("libc local function %s (%#x, %d bytes) only in %s", target.Name, target.Value, target.Size, debugPath)
	s := newTestSymbolizer(t, Config{})
	for _, off := range []uint64{0, target.Size / 2} {
		got := s.Symbolize(p.pid, []uint64{pc + off}, nil)
		if !slices.Equal(got[:1], []string{target.Name}) {
			t.Errorf("libc %s+%#x = %q", target.Name, off, got)
		}
	}
	// Without debug dirs the same address is not named target.
	s2 := newTestSymbolizer(t, Config{DebugDirs: []string{t.TempDir()}})
	if got := s2.Symbolize(p.pid, []uint64{pc}, nil); got[0] == target.Name {
		t.Errorf("without debug file still got %q: debug file not what resolved it", got)
	}
}

func readTestMaps(t testing.TB, pid uint32) []mapping {
	t.Helper()
	ms, err := procmaps.Read("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	return execMappings(ms)
}

// BenchmarkSymbolize measures warm-cache throughput on a 32-frame stack of
// this test binary plus 8 kernel frames.
func BenchmarkSymbolize(b *testing.B) {
	s := newTestSymbolizer(b, Config{})
	pid := uint32(os.Getpid())
	if err := s.ProcessStarted(pid); err != nil {
		b.Fatal(err)
	}
	var user []uint64
	for _, fn := range []any{selfLeaf, selfOuter, (*selfServer).handle, strings.Repeat, runtime.GC, (*bufio.Reader).ReadString, json.Marshal, fmt.Sprintf} {
		pc := uint64(reflect.ValueOf(fn).Pointer())
		for i := range uint64(4) {
			user = append(user, pc+4+i*2)
		}
	}
	var kernel []uint64
	if f, err := os.Open("/proc/kallsyms"); err == nil {
		if k, err := parseKallsyms(f); err == nil {
			for i := 0; i < 8; i++ {
				kernel = append(kernel, k.addrs[len(k.addrs)/2+i*97]+1)
			}
		}
		f.Close()
	}
	frames := len(user) + len(kernel)
	buf := s.Symbolize(pid, user, kernel) // warm
	b.ReportAllocs()
	// CPU time as well as wall time: the shared CI machine may be busy.
	var r0, r1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	for b.Loop() {
		buf = s.AppendSymbolize(buf[:0], pid, user, kernel)
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
	b.ReportMetric(float64(frames*b.N)/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(frames*b.N), "cpu-ns/frame")
}

// TestDWARFInlines checks inline expansion from DWARF on C code built -O2 -g
// against addr2line -i, for every byte of the function with inlined calls.
func TestDWARFInlines(t *testing.T) {
	testenv.LookPath(t, "gcc", "gcc")
	testenv.LookPath(t, "addr2line", "binutils")
	for _, pie := range []bool{false, true} {
		t.Run(fmt.Sprintf("pie=%v", pie), func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "inline")
			args := []string{"-O2", "-g", "-fno-omit-frame-pointer", "-o", bin, "testdata/inline.c"}
			if pie {
				args = append(args, "-fPIE", "-pie")
			} else {
				args = append(args, "-fno-PIE", "-no-pie")
			}
			if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
				t.Fatalf("gcc: %v\n%s", err, out)
			}
			outer := nmSymbols(t, bin)["outer"]
			p := startFixture(t, bin)
			bias := p.addrs(t)["outer"] - outer.addr
			s := newTestSymbolizer(t, Config{})

			a2l := []string{"-f", "-i", "-a", "-e", bin}
			for off := uint64(0); off < outer.size; off++ {
				a2l = append(a2l, fmt.Sprintf("%#x", outer.addr+off))
			}
			out, err := exec.Command("addr2line", a2l...).Output()
			if err != nil {
				t.Fatalf("addr2line: %v", err)
			}
			// Per address: "0x..." then (function, file:line) pairs,
			// innermost first.
			want := map[uint64][]string{}
			var cur uint64
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			for i := 0; i < len(lines); i++ {
				if strings.HasPrefix(lines[i], "0x") {
					cur, _ = strconv.ParseUint(lines[i][2:], 16, 64)
					continue
				}
				want[cur] = append([]string{lines[i]}, want[cur]...)
				i++ // file:line
			}
			var inlined int
			for off := uint64(0); off < outer.size; off++ {
				vaddr := outer.addr + off
				got := s.Symbolize(p.pid, []uint64{vaddr + bias}, nil)
				if !slices.Equal(got, want[vaddr]) {
					t.Errorf("outer+%#x: got %q, addr2line %q", off, got, want[vaddr])
				}
				if len(got) > 2 {
					inlined++
				}
			}
			if inlined == 0 {
				t.Error("no address with two inlined levels: fixture not inlined as intended")
			}
		})
	}
}

// BenchmarkLoadObject measures a cold load (parse symbols and inline
// tables) of this Go test binary and of libc (with its debug file when
// libc6-dbg is installed) as mapped by the C fixture.
func BenchmarkLoadObject(b *testing.B) {
	self, err := os.Readlink("/proc/self/exe")
	if err != nil {
		b.Fatal(err)
	}
	for _, tt := range []struct {
		name, match string
		fixture     bool
	}{{"go-self", self, false}, {"libc", "libc.so", true}} {
		b.Run(tt.name, func(b *testing.B) {
			pid := uint32(os.Getpid())
			if tt.fixture {
				p := startFixture(b, buildC(b, true), "block")
				p.addrs(b)
				pid = p.pid
			}
			var m *mapping
			for _, mm := range readTestMaps(b, pid) {
				if strings.Contains(mm.path, tt.match) {
					m = &mm
					break
				}
			}
			if m == nil {
				b.Fatalf("no mapping of %s in process %d", tt.match, pid)
			}
			for b.Loop() {
				s := newTestSymbolizer(b, Config{})
				o := s.objectFor(pid, m)
				if o == nil {
					b.Fatal("load failed")
				}
				s.mu.Lock()
				s.ensureLoaded(o)
				s.mu.Unlock()
				if o.failed {
					b.Fatal("parse failed")
				}
			}
		})
	}
}
