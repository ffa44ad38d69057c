package skills

import (
	"errors"
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"os"

	"golang.org/x/tools/go/packages"
)

// pkg is one type-checked package of the module (non-test files).
type pkg struct {
	PkgPath string
	Fset    *token.FileSet
	Syntax  []*ast.File
	Paths   []string // file paths, parallel to Syntax
	Types   *types.Package
	Info    *types.Info
	Errs    []packages.Error // load, parse and type errors; untyped code is left alone
}

// loadMode is what the transforms need: syntax with full type information.
const loadMode = packages.NeedName | packages.NeedFiles | packages.NeedCompiledGoFiles |
	packages.NeedImports | packages.NeedDeps | packages.NeedSyntax | packages.NeedTypes |
	packages.NeedTypesInfo

// loadModule type-checks every package of the module at dir (not its tests, testdata
// or nested modules) with go/packages, resolving imports through dir's own go.mod.
// The go command runs offline (GOPROXY=off) and never edits go.mod (-mod=readonly): a dependency missing
// from the module cache becomes a package error and leaves the code that uses it
// untyped, which the transforms skip.
func loadModule(dir string) ([]*pkg, error) {
	if _, err := os.Stat(dir + "/go.mod"); err != nil {
		return nil, fmt.Errorf("read go.mod: %w", err)
	}
	fset := token.NewFileSet()
	cfg := &packages.Config{
		Mode: loadMode,
		Dir:  dir,
		Fset: fset,
		Env:  append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=readonly", "GOWORK=off"),
	}
	loaded, err := packages.Load(cfg, "./...")
	if err != nil {
		return nil, fmt.Errorf("go/packages: %w", err)
	}
	if len(loaded) == 0 {
		return nil, errors.New("module has no packages")
	}
	var out []*pkg
	for _, lp := range loaded {
		if len(lp.Syntax) == 0 {
			continue
		}
		p := &pkg{PkgPath: lp.PkgPath, Fset: fset, Syntax: lp.Syntax, Types: lp.Types,
			Info: lp.TypesInfo, Errs: lp.Errors}
		for _, f := range lp.Syntax {
			p.Paths = append(p.Paths, fset.File(f.Pos()).Name())
		}
		out = append(out, p)
	}
	return out, nil
}
