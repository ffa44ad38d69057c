// Command goprog is a test fixture for package symbolize: it prints, as one
// JSON line, the addresses of some of its functions with the names the Go
// runtime gives them, and a call stack with its frames (inlined ones
// included), then blocks until stdin closes.
package main

import (
	"encoding/json"
	"io"
	"os"
	"reflect"
	"runtime"
)

type report struct {
	Funcs map[string]uintptr `json:"funcs"`
	// Stack is the physical call stack, leaf first, as a frame-pointer
	// unwinder sees it: one return address per real frame.
	Stack []uintptr `json:"stack"`
	// Frames are the logical frames of Stack, root first, inlined ones
	// included.
	Frames []string `json:"frames"`
}

type server struct{ n int }

//go:noinline
func (s *server) serve() int { s.n++; return s.n }

//go:noinline
func leaf() []uintptr {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(1, pcs)
	return pcs[:n]
}

// inlined is small enough for the compiler to inline into outer.
func inlined() []uintptr { return leaf() }

//go:noinline
func outer() []uintptr { return inlined() }

func main() {
	r := report{Funcs: map[string]uintptr{}}
	for _, f := range []any{leaf, outer, (*server).serve, main} {
		pc := reflect.ValueOf(f).Pointer()
		r.Funcs[runtime.FuncForPC(pc).Name()] = pc
	}
	r.Stack, r.Frames = physical(outer())
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		os.Exit(1)
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// physical turns runtime.Callers output (one entry per logical frame) into
// one return address per physical frame and the logical frame names, root
// first. For the logical frames of one physical frame the runtime reports
// the physical return address first; FuncForPC's Entry is the outermost
// (physical) function's.
func physical(pcs []uintptr) (stack []uintptr, frames []string) {
	var lastEntry uintptr
	for _, pc := range pcs {
		entry := runtime.FuncForPC(pc - 1).Entry()
		if entry != lastEntry {
			stack = append(stack, pc)
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
