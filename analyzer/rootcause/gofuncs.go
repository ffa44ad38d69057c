package rootcause

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"

	"path"
	"slices"
	"strings"

	"github.com/fleetprof/fleetprof/internal/goname"
)

// ModulePath returns the module path declared in a go.mod file ("" if none).
func ModulePath(gomod []byte) string {
	for l := range strings.SplitSeq(string(gomod), "\n") {
		l = strings.TrimSpace(l)
		if rest, ok := strings.CutPrefix(l, "module"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// ImportPath is the import path of the package in directory dir of a module.
func ImportPath(module, dir string) string {
	switch {
	case dir == "." || dir == "":
		return module
	case module == "":
		return dir
	}
	return module + "/" + dir
}

// funcRange is a function declaration's profiler name and lines (doc comment included).
type funcRange struct {
	name        string
	first, last int
}

// goFuncs parses src and returns its function declarations named as Go profilers name
// them: "pkg.Func", "pkg.(*T).Method", "pkg.T.Method", "pkg.(*T[...]).Method";
// package main is "main".
func goFuncs(importPath string, src []byte) ([]funcRange, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("parse go: %w", err)
	}
	pkg := importPath
	if f.Name.Name == "main" {
		pkg = "main"
	}
	var out []funcRange
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok {
			continue
		}
		start := fd.Pos()
		if fd.Doc != nil {
			start = fd.Doc.Pos()
		}
		out = append(out, funcRange{
			name:  pkg + "." + goname.Func(fd),
			first: fset.Position(start).Line,
			last:  fset.Position(fd.End()).Line,
		})
	}
	return out, nil
}

// GoFunctionsTouched maps a Go file's changed lines to the functions containing them,
// on both sides of the change (a deleted function counts, and so does a new one).
// module is the module path ("" when unknown: the directory is the import path).
func GoFunctionsTouched(module string, fd FileDiff, oldSrc, newSrc []byte) ([]string, error) {
	var names []string
	side := func(p string, src []byte, ranges []LineRange) error {
		if p == "" || len(ranges) == 0 {
			return nil
		}
		fns, err := goFuncs(ImportPath(module, path.Dir(p)), src)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for _, fr := range fns {
			for _, r := range ranges {
				if overlaps(fr, r) {
					names = append(names, fr.name)
					break
				}
			}
		}
		return nil
	}
	if err := side(fd.Old, oldSrc, fd.OldLines); err != nil {
		return nil, err
	}
	if err := side(fd.New, newSrc, fd.NewLines); err != nil {
		return nil, err
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// overlaps reports whether r touches the function: changed lines inside it, or an
// insertion between two of its lines.
func overlaps(f funcRange, r LineRange) bool {
	if r.Last < r.First { // insertion after line r.First-1
		p := r.First - 1
		return f.first <= p && p < f.last
	}
	return r.First <= f.last && r.Last >= f.first
}
