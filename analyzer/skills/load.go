package skills

import (
	"errors"
	"fmt"
	"go/ast"
	"go/build"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fleetprof/fleetprof/analyzer/rootcause"
)

// pkg is one type-checked package of the module (non-test files).
type pkg struct {
	PkgPath string
	Fset    *token.FileSet
	Syntax  []*ast.File
	Paths   []string // file paths, parallel to Syntax
	Types   *types.Package
	Info    *types.Info
	Err     error
}

// loader type-checks a module's packages from source; the standard library comes
// from the toolchain's export data. It needs no go.sum entries beyond the module's own
// and no network.
type loader struct {
	dir, module string
	fset        *token.FileSet
	std         types.Importer
	fallback    types.Importer
	pkgs        map[string]*pkg
	dirs        map[string]string // import path → directory
}

func loadModule(dir string) ([]*pkg, error) {
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return nil, fmt.Errorf("read go.mod: %w", err)
	}
	mod := rootcause.ModulePath(gomod)
	if mod == "" {
		return nil, errors.New("go.mod declares no module")
	}
	fset := token.NewFileSet()
	l := &loader{dir: dir, module: mod, fset: fset, std: importer.Default(),
		fallback: importer.ForCompiler(fset, "source", nil), pkgs: map[string]*pkg{}, dirs: map[string]string{}}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if p != dir && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		if p != dir {
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir // nested module
			}
		}
		rel, _ := filepath.Rel(dir, p)
		ip := mod
		if rel != "." {
			ip = path.Join(mod, filepath.ToSlash(rel))
		}
		l.dirs[ip] = p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk module: %w", err)
	}
	var paths []string
	for ip := range l.dirs {
		paths = append(paths, ip)
	}
	sort.Strings(paths)
	var out []*pkg
	for _, ip := range paths {
		p := l.load(ip)
		if p != nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// load parses and type-checks one module package (nil when the directory has no Go
// files).
func (l *loader) load(ip string) *pkg {
	if p, ok := l.pkgs[ip]; ok {
		return p
	}
	l.pkgs[ip] = nil // breaks import cycles (the type checker reports them)
	dir := l.dirs[ip]
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	p := &pkg{PkgPath: ip, Fset: l.fset}
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		if ok, err := build.Default.MatchFile(dir, n); err != nil || !ok {
			continue
		}
		fp := filepath.Join(dir, n)
		f, err := parser.ParseFile(l.fset, fp, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return nil // never rewrite a package that does not parse
		}
		p.Syntax = append(p.Syntax, f)
		p.Paths = append(p.Paths, fp)
	}
	if len(p.Syntax) == 0 {
		return nil
	}
	p.Info = &types.Info{
		Types: map[ast.Expr]types.TypeAndValue{},
		Defs:  map[*ast.Ident]types.Object{},
		Uses:  map[*ast.Ident]types.Object{},
	}
	conf := types.Config{Importer: importerFunc(l.importPkg), Error: func(err error) {
		if p.Err == nil {
			p.Err = err
		}
	}}
	p.Types, _ = conf.Check(ip, l.fset, p.Syntax, p.Info)
	l.pkgs[ip] = p
	return p
}

func (l *loader) importPkg(ip string) (*types.Package, error) {
	if ip == l.module || strings.HasPrefix(ip, l.module+"/") {
		p := l.load(ip)
		if p == nil || p.Types == nil {
			return nil, fmt.Errorf("import %q: not loadable", ip)
		}
		return p.Types, nil
	}
	if t, err := l.std.Import(ip); err == nil {
		return t, nil
	}
	return l.fallback.Import(ip)
}

type importerFunc func(path string) (*types.Package, error)

func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }
