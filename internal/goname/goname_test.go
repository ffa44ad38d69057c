package goname

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetprof/fleetprof/internal/testenv"
)

const src = `package p

func Plain() {}
func Map[T any](xs []T) {}
type S struct{}
func (S) Value() {}
func (*S) Pointer() {}
type G[T any] struct{}
func (G[T]) Value() {}
func (*G[T]) Pointer() {}
type P[K comparable, V any] struct{}
func (*P[K, V]) Two() {}
`

func TestFunc(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "p.go", src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok {
			got = append(got, Func(fd))
		}
	}
	want := []string{"Plain", "Map[...]", "S.Value", "(*S).Pointer", "G[...].Value", "(*G[...]).Pointer", "(*P[...]).Two"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestMatchesRuntime builds a program with generic functions and methods, takes a
// real CPU profile of it and checks that every hot function's runtime name is
// what Func returns for its declaration.
func TestMatchesRuntime(t *testing.T) {
	goBin := testenv.LookPath(t, "go", "golang-go, or Go from go.dev")
	dir := t.TempDir()
	prog := `package main

import (
	"os"
	"runtime/pprof"
	"time"
)

var sink int

func Map[T any](xs []T, f func(T) int) { for _, x := range xs { sink += f(x) } }

type G[T any] struct{ v []T }

func (g *G[T]) Pointer() { for i := range g.v { sink += i * 3 } }
func (g G[T]) Value()    { for i := range g.v { sink += i * 5 } }

func main() {
	f, _ := os.Create(os.Args[1])
	_ = pprof.StartCPUProfile(f)
	g := &G[string]{v: make([]string, 1<<16)}
	xs := make([]int, 1<<16)
	for end := time.Now().Add(700 * time.Millisecond); time.Now().Before(end); {
		Map(xs, func(x int) int { return x + 1 })
		g.Pointer()
		g.Value()
	}
	pprof.StopCPUProfile()
	f.Close()
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(prog), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module gen\n\ngo 1.22\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "gen")
	build := exec.CommandContext(t.Context(), goBin, "build", "-gcflags=-l", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	profFile := filepath.Join(dir, "cpu.pprof")
	if out, err := exec.CommandContext(t.Context(), bin, profFile).CombinedOutput(); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(t.Context(), goBin, "tool", "pprof", "-raw", profFile).CombinedOutput()
	if err != nil {
		t.Fatalf("pprof: %v\n%s", err, out)
	}
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", prog, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	// Locations lines read "N: 0xADDR M=1 NAME FILE:LINE ...": print NAME as the runtime does.
	var printed string
	for _, l := range strings.Split(string(out), "\n") {
		if fs := strings.Fields(l); len(fs) >= 4 && strings.HasPrefix(fs[2], "M=") {
			printed += " " + Print(fs[3]) + " "
		}
	}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Name.Name == "main" {
			continue
		}
		name := "main." + Func(fd)
		if !strings.Contains(printed, " "+name+" ") {
			t.Errorf("runtime never names %s (declaration %s); profile:\n%s", name, fd.Name.Name, out)
		}
	}
}

func TestPrint(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"main.main", "main.main"},
		{"main.Map[go.shape.int]", "main.Map[...]"},
		{"main.(*G[go.shape.string]).Pointer", "main.(*G[...]).Pointer"},
		{"main.G[...].Value", "main.G[...].Value"},
		{"p.F[go.shape.map[string]int]", "p.F[...]"},
		{"odd]name[", "odd]name["},
		{"weird[", "weird["},
		{"net/http.(*conn).serve", "net/http.(*conn).serve"},
		{"slices.Sort[go.shape.[]int,go.shape.int]", "slices.Sort[...]"},
	} {
		if got := Print(tc.in); got != tc.want {
			t.Errorf("Print(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
