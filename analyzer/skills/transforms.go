package skills

import (
	"bytes"
	"context"
	"fmt"
	"go/ast"
	"go/constant"
	"go/format"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/fleetprof/fleetprof/analyzer/opportunity"
	"github.com/fleetprof/fleetprof/internal/goname"
	"golang.org/x/tools/go/ast/astutil"
)

// Transform is one deterministic Go source rewrite inside one function.
type Transform struct {
	Name string
	// Pattern is the opportunity pattern the transform fixes.
	Pattern string
	Doc     string
	// apply rewrites fn in file and reports what it changed (nil: nothing).
	apply func(t *target) []string
}

// Transforms are the offense source rewrites, tried in this order.
var Transforms = []Transform{
	{Name: "hoist-regexp", Pattern: opportunity.PatternRegexpCompile,
		Doc:   "Moves regexp.MustCompile/Compile of a constant pattern out of the function into a package-level variable, so it is compiled once at init.",
		apply: hoistRegexp},
	{Name: "sprintf-itoa", Pattern: opportunity.PatternSprintf,
		Doc:   "Replaces fmt.Sprintf(\"%d\", x) with strconv.Itoa(x) when x is an int.",
		apply: sprintfItoa},
	{Name: "prealloc-slice", Pattern: opportunity.PatternSliceGrowth,
		Doc:   "Preallocates a slice that a loop with a known trip count (range over a slice/map/array/int, or for i := 0; i < n; i++) appends to once per iteration.",
		apply: preallocSlice},
	{Name: "string-builder", Pattern: opportunity.PatternStringConcat,
		Doc:   "Replaces s += … in a loop with a strings.Builder.",
		apply: stringBuilder},
}

// TransformsFor returns the transforms for an opportunity pattern; growth and
// allocation patterns also try the other allocation-removing rewrites.
func TransformsFor(pattern string) []Transform {
	var out []Transform
	for _, t := range Transforms {
		if t.Pattern == pattern {
			out = append(out, t)
		}
	}
	if pattern == opportunity.PatternAlloc || pattern == opportunity.PatternMemmove {
		for _, t := range Transforms {
			if t.Pattern == opportunity.PatternSliceGrowth || t.Pattern == opportunity.PatternStringConcat {
				out = append(out, t)
			}
		}
	}
	return out
}

// Edit replaces one file of the module.
type Edit struct {
	Path string `json:"path"` // relative to the module directory, slash-separated
	Old  []byte `json:"-"`
	New  []byte `json:"-"`
}

// Applied is one rewrite a transform made.
type Applied struct {
	Transform string `json:"transform"`
	Function  string `json:"function"`
	File      string `json:"file"`
	Line      int    `json:"line"`
	Note      string `json:"note"`
}

// target is the function being rewritten with its file and type information.
type target struct {
	fset *token.FileSet
	pkg  *pkg
	file *ast.File
	fn   *ast.FuncDecl
	// pkgNames are the package-level names (to pick fresh ones).
	pkgNames map[string]bool
	// before is source inserted before the function's doc comment after printing
	// (new package-level declarations; the printer misplaces comments around
	// position-less nodes).
	before []string
}

// ApplyTransforms runs the given transforms on the Go function named fn (a profiler
// name such as "example.com/m/pkg.(*T).Method") in the module at dir, and returns the
// edited files, formatted. No edits and no error means nothing applied.
func ApplyTransforms(ctx context.Context, dir, fn string, ts []Transform) ([]Edit, []Applied, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	pkgs, err := loadModule(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("load packages: %w", err)
	}
	var edits []Edit
	var applied []Applied
	for _, p := range pkgs {
		// Type errors (say, a dependency the source importer could not find) leave
		// those expressions untyped, and the transforms skip untyped code; anything
		// else wrong is caught by verification.
		if p.Types == nil || p.Info == nil {
			continue
		}
		// The profiler names functions of package main "main.F", not by import path.
		prefix := p.PkgPath + "."
		if p.Types.Name() == "main" {
			prefix = "main."
		}
		if !strings.HasPrefix(fn, prefix) {
			continue
		}
		name := strings.TrimPrefix(fn, prefix)
		names := map[string]bool{}
		for _, f := range p.Syntax {
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					if d.Recv == nil {
						names[d.Name.Name] = true
					}
				case *ast.GenDecl:
					for _, s := range d.Specs {
						switch s := s.(type) {
						case *ast.ValueSpec:
							for _, n := range s.Names {
								names[n.Name] = true
							}
						case *ast.TypeSpec:
							names[s.Name.Name] = true
						}
					}
				}
			}
		}
		for i, f := range p.Syntax {
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || fd.Body == nil || goname.Func(fd) != name {
					continue
				}
				path := p.Paths[i]
				old, err := os.ReadFile(path)
				if err != nil {
					return nil, nil, fmt.Errorf("read %s: %w", path, err)
				}
				t := &target{fset: p.Fset, pkg: p, file: f, fn: fd, pkgNames: names}
				line := p.Fset.Position(fd.Pos()).Line
				rel, err := filepath.Rel(dir, path)
				if err != nil {
					return nil, nil, fmt.Errorf("relative path: %w", err)
				}
				rel = filepath.ToSlash(rel)
				changed := false
				for _, tr := range ts {
					for _, note := range tr.apply(t) {
						changed = true
						applied = append(applied, Applied{Transform: tr.Name, Function: fn, File: rel, Line: line, Note: note})
					}
				}
				if !changed {
					continue
				}
				for _, d := range f.Decls {
					// A lone import added to a parenthesized list prints as one line.
					if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.IMPORT && len(gd.Specs) == 1 {
						gd.Lparen, gd.Rparen = token.NoPos, token.NoPos
					}
				}
				var buf bytes.Buffer
				if err := format.Node(&buf, p.Fset, f); err != nil {
					return nil, nil, fmt.Errorf("format %s: %w", rel, err)
				}
				// A second pass through gofmt normalizes what the printer left (import grouping).
				src := buf.Bytes()
				if len(t.before) > 0 {
					if src, err = insertBefore(src, name, strings.Join(t.before, "\n")+"\n\n"); err != nil {
						return nil, nil, fmt.Errorf("format %s: %w", rel, err)
					}
				}
				out, err := format.Source(src)
				if err != nil {
					return nil, nil, fmt.Errorf("format %s: %w", rel, err)
				}
				edits = append(edits, Edit{Path: rel, Old: old, New: out})
			}
		}
	}
	return edits, applied, nil
}

// isPkgCall reports whether call is pkg.name(...) with pkg the imported package path.
func (t *target) isPkgCall(call *ast.CallExpr, path string, names ...string) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	if !ok {
		return false
	}
	pn, ok := t.pkg.Info.Uses[id].(*types.PkgName)
	if !ok || pn.Imported().Path() != path {
		return false
	}
	for _, n := range names {
		if sel.Sel.Name == n {
			return true
		}
	}
	return false
}

func (t *target) freshPkgName(base string) string {
	name := base
	for i := 2; t.pkgNames[name] || t.pkg.Types.Scope().Lookup(name) != nil || types.Universe.Lookup(name) != nil; i++ {
		name = base + strconv.Itoa(i)
	}
	t.pkgNames[name] = true
	return name
}

// freshLocal picks a name unused anywhere in the function and the package.
func (t *target) freshLocal(base string) string {
	used := map[string]bool{}
	ast.Inspect(t.fn, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok {
			used[id.Name] = true
		}
		return true
	})
	name := base
	for i := 2; used[name] || t.pkgNames[name]; i++ {
		name = base + strconv.Itoa(i)
	}
	return name
}

func (t *target) line(n ast.Node) int { return t.fset.Position(n.Pos()).Line }

// importName returns the local name of an import of path in the file, adding it when
// missing.
func (t *target) importName(path string) string {
	for _, im := range t.file.Imports {
		if p, _ := strconv.Unquote(im.Path.Value); p == path {
			if im.Name != nil {
				return im.Name.Name
			}
			return pathBase(path)
		}
	}
	astutil.AddImport(t.fset, t.file, path)
	return pathBase(path)
}

func pathBase(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// dropUnusedImport removes an import of path when the file no longer uses it.
func (t *target) dropUnusedImport(path string) {
	used := false
	ast.Inspect(t.file, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok {
			if pn, ok := t.pkg.Info.Uses[id].(*types.PkgName); ok && pn.Imported().Path() == path {
				used = true
			}
		}
		return !used
	})
	if !used {
		astutil.DeleteImport(t.fset, t.file, path)
	}
}

// hoistRegexp moves constant-pattern regexp compiles out of the function.
func hoistRegexp(t *target) []string {
	if t.fn.Recv == nil && (t.fn.Name.Name == "init" || t.fn.Name.Name == "main") {
		return nil
	}
	var notes []string
	var newVars []ast.Spec
	base := lowerFirst(strings.TrimPrefix(t.fn.Name.Name, "_")) + "Re"
	astutil.Apply(t.fn.Body, func(c *astutil.Cursor) bool {
		switch n := c.Node().(type) {
		case *ast.FuncLit:
			return true
		case *ast.AssignStmt:
			// re, err := regexp.Compile(lit) → re, err := hoisted, error(nil)
			if len(n.Lhs) != 2 || len(n.Rhs) != 1 {
				return true
			}
			call, ok := n.Rhs[0].(*ast.CallExpr)
			if !ok || !t.isPkgCall(call, "regexp", "Compile", "CompilePOSIX") {
				return true
			}
			lit, ok := t.constPattern(call, "Compile")
			if !ok {
				return true
			}
			name := t.freshPkgName(base)
			newVars = append(newVars, t.regexpVar(name, call, lit))
			n.Rhs = []ast.Expr{ast.NewIdent(name), &ast.CallExpr{Fun: ast.NewIdent("error"), Args: []ast.Expr{ast.NewIdent("nil")}}}
			notes = append(notes, fmt.Sprintf("line %d: regexp %s compiled once into package-level %s", t.line(call), lit, name))
			return false
		case *ast.CallExpr:
			if !t.isPkgCall(n, "regexp", "MustCompile", "MustCompilePOSIX") {
				return true
			}
			lit, ok := t.constPattern(n, "MustCompile")
			if !ok {
				return true
			}
			name := t.freshPkgName(base)
			newVars = append(newVars, t.regexpVar(name, n, lit))
			c.Replace(ast.NewIdent(name))
			notes = append(notes, fmt.Sprintf("line %d: regexp %s compiled once into package-level %s", t.line(n), lit, name))
			return false
		}
		return true
	}, nil)
	if len(newVars) == 0 {
		return nil
	}
	// The variables go right before the function, next to their user.
	for _, v := range newVars {
		var b bytes.Buffer
		if err := format.Node(&b, token.NewFileSet(), &ast.GenDecl{Tok: token.VAR, Specs: []ast.Spec{v}}); err != nil {
			return nil
		}
		t.before = append(t.before, b.String())
	}
	return notes
}

// insertBefore inserts text before the declaration (and doc comment) of the function
// named name in src.
func insertBefore(src []byte, name, text string) ([]byte, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", src, parser.ParseComments|parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || goname.Func(fd) != name {
			continue
		}
		pos := fd.Pos()
		if fd.Doc != nil {
			pos = fd.Doc.Pos()
		}
		off := fset.Position(pos).Offset
		return append(append(append([]byte(nil), src[:off]...), text...), src[off:]...), nil
	}
	return nil, fmt.Errorf("function %s not found after rewrite", name)
}

// constPattern returns the call's single constant string argument when it is a valid
// pattern (so compiling it at init cannot panic).
func (t *target) constPattern(call *ast.CallExpr, _ string) (string, bool) {
	if len(call.Args) != 1 {
		return "", false
	}
	tv, ok := t.pkg.Info.Types[call.Args[0]]
	if !ok || tv.Value == nil || tv.Value.Kind() != constant.String {
		return "", false
	}
	// Only literals and package-level constants can move to package scope.
	if !t.movable(call.Args[0]) {
		return "", false
	}
	if _, err := regexp.Compile(constant.StringVal(tv.Value)); err != nil {
		return "", false
	}
	s := strconv.Quote(constant.StringVal(tv.Value))
	if lit, ok := call.Args[0].(*ast.BasicLit); ok {
		s = lit.Value
	}
	return s, true
}

// movable reports whether e refers only to package-level or universe names.
func (t *target) movable(e ast.Expr) bool {
	ok := true
	ast.Inspect(e, func(n ast.Node) bool {
		id, isID := n.(*ast.Ident)
		if !isID {
			return true
		}
		obj := t.pkg.Info.Uses[id]
		if obj == nil {
			return true
		}
		if obj.Parent() != t.pkg.Types.Scope() && obj.Parent() != types.Universe {
			if _, isPkg := obj.(*types.PkgName); !isPkg {
				ok = false
			}
		}
		return true
	})
	return ok
}

func (t *target) regexpVar(name string, call *ast.CallExpr, _ string) ast.Spec {
	sel := call.Fun.(*ast.SelectorExpr)
	fun := "MustCompile"
	if strings.HasSuffix(sel.Sel.Name, "POSIX") {
		fun = "MustCompilePOSIX"
	}
	return &ast.ValueSpec{
		Names:  []*ast.Ident{ast.NewIdent(name)},
		Values: []ast.Expr{&ast.CallExpr{Fun: &ast.SelectorExpr{X: ast.NewIdent(sel.X.(*ast.Ident).Name), Sel: ast.NewIdent(fun)}, Args: []ast.Expr{stripPos(call.Args[0])}}},
	}
}

// stripPos copies a literal or identifier without positions so the printer places it.
func stripPos(e ast.Expr) ast.Expr {
	switch x := e.(type) {
	case *ast.BasicLit:
		return &ast.BasicLit{Kind: x.Kind, Value: x.Value}
	case *ast.Ident:
		return ast.NewIdent(x.Name)
	case *ast.SelectorExpr:
		return &ast.SelectorExpr{X: stripPos(x.X), Sel: ast.NewIdent(x.Sel.Name)}
	case *ast.BinaryExpr:
		return &ast.BinaryExpr{X: stripPos(x.X), Op: x.Op, Y: stripPos(x.Y)}
	case *ast.ParenExpr:
		return &ast.ParenExpr{X: stripPos(x.X)}
	}
	return e
}

func lowerFirst(s string) string {
	if s == "" {
		return "pattern"
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func isBasic(t types.Type, k types.BasicKind) bool {
	b, ok := t.(*types.Basic)
	return ok && b.Kind() == k
}

// sprintfItoa rewrites fmt.Sprintf("%d", x) with x an int to strconv.Itoa(x).
func sprintfItoa(t *target) []string {
	var notes []string
	var strconvName string
	astutil.Apply(t.fn.Body, func(c *astutil.Cursor) bool {
		call, ok := c.Node().(*ast.CallExpr)
		if !ok || len(call.Args) != 2 || !t.isPkgCall(call, "fmt", "Sprintf") {
			return true
		}
		tv, ok := t.pkg.Info.Types[call.Args[0]]
		if !ok || tv.Value == nil || tv.Value.Kind() != constant.String || constant.StringVal(tv.Value) != "%d" {
			return true
		}
		at, ok := t.pkg.Info.Types[call.Args[1]]
		if !ok || !isBasic(at.Type, types.Int) {
			return true
		}
		if strconvName == "" {
			strconvName = t.importName("strconv")
		}
		c.Replace(&ast.CallExpr{
			Fun:    &ast.SelectorExpr{X: ast.NewIdent(strconvName), Sel: ast.NewIdent("Itoa")},
			Lparen: call.Lparen, Args: []ast.Expr{call.Args[1]}, Rparen: call.Rparen,
		})
		notes = append(notes, fmt.Sprintf("line %d: fmt.Sprintf(\"%%d\", …) → strconv.Itoa", t.line(call)))
		return false
	}, nil)
	if len(notes) > 0 {
		t.dropUnusedImport("fmt")
	}
	return notes
}

// blocks returns every statement list in the function body (outermost first).
func (t *target) blocks() []*[]ast.Stmt {
	var out []*[]ast.Stmt
	ast.Inspect(t.fn.Body, func(n ast.Node) bool {
		switch b := n.(type) {
		case *ast.BlockStmt:
			out = append(out, &b.List)
		case *ast.CaseClause:
			out = append(out, &b.Body)
		case *ast.CommClause:
			out = append(out, &b.Body)
		}
		return true
	})
	return out
}

// localVar returns the variable declared by stmt when it declares exactly one local
// with no value, "", or an empty/nil composite: var s T, s := "", s := []T{}.
func (t *target) localVar(stmt ast.Stmt) (*ast.Ident, *types.Var) {
	return t.localVarInit(stmt, false)
}

// localVarInit is localVar that, with anyValue, also accepts any initial value.
func (t *target) localVarInit(stmt ast.Stmt, anyValue bool) (*ast.Ident, *types.Var) {
	empty := func(e ast.Expr) bool { return anyValue || emptyValue(t, e) }
	var id *ast.Ident
	switch s := stmt.(type) {
	case *ast.DeclStmt:
		gd, ok := s.Decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.VAR || len(gd.Specs) != 1 {
			return nil, nil
		}
		vs := gd.Specs[0].(*ast.ValueSpec)
		if len(vs.Names) != 1 {
			return nil, nil
		}
		if len(vs.Values) == 1 && !empty(vs.Values[0]) || len(vs.Values) > 1 {
			return nil, nil
		}
		id = vs.Names[0]
	case *ast.AssignStmt:
		if s.Tok != token.DEFINE || len(s.Lhs) != 1 || len(s.Rhs) != 1 || !empty(s.Rhs[0]) {
			return nil, nil
		}
		id, _ = s.Lhs[0].(*ast.Ident)
	}
	if id == nil {
		return nil, nil
	}
	v, _ := t.pkg.Info.Defs[id].(*types.Var)
	if v == nil {
		return nil, nil
	}
	return id, v
}

// emptyValue: "", []T{}, []T(nil), nil.
func emptyValue(t *target, e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.BasicLit:
		return x.Kind == token.STRING && (x.Value == `""` || x.Value == "``")
	case *ast.CompositeLit:
		return len(x.Elts) == 0
	case *ast.CallExpr:
		if len(x.Args) == 1 {
			if id, ok := x.Args[0].(*ast.Ident); ok && id.Name == "nil" {
				return true
			}
		}
	}
	return false
}

// uses counts references to v in n.
func (t *target) uses(n ast.Node, v *types.Var) int {
	if n == nil {
		return 0
	}
	c := 0
	ast.Inspect(n, func(x ast.Node) bool {
		if id, ok := x.(*ast.Ident); ok && t.pkg.Info.Uses[id] == v {
			c++
		}
		return true
	})
	return c
}

func loopBody(s ast.Stmt) *ast.BlockStmt {
	switch l := s.(type) {
	case *ast.ForStmt:
		return l.Body
	case *ast.RangeStmt:
		return l.Body
	}
	return nil
}

// firstLoopAfter finds the first loop after index i in list such that v is not used
// between; it returns the loop's index or -1.
func (t *target) firstLoopAfter(list []ast.Stmt, i int, v *types.Var) int {
	for j := i + 1; j < len(list); j++ {
		if loopBody(list[j]) != nil {
			return j
		}
		if t.uses(list[j], v) > 0 {
			return -1
		}
	}
	return -1
}

// tripCount returns an expression for the loop's number of iterations, when known and
// side-effect free.
func (t *target) tripCount(loop ast.Stmt) ast.Expr {
	switch l := loop.(type) {
	case *ast.RangeStmt:
		if !pure(l.X) {
			return nil
		}
		tv, ok := t.pkg.Info.Types[l.X]
		if !ok {
			return nil
		}
		typ := tv.Type.Underlying()
		if p, ok := typ.(*types.Pointer); ok {
			typ = p.Elem().Underlying()
		}
		switch u := typ.(type) {
		case *types.Slice, *types.Map, *types.Array:
			return &ast.CallExpr{Fun: ast.NewIdent("len"), Args: []ast.Expr{stripPos(l.X)}}
		case *types.Basic:
			if u.Info()&types.IsInteger != 0 {
				return &ast.CallExpr{Fun: ast.NewIdent("max"), Args: []ast.Expr{stripPos(l.X), &ast.BasicLit{Kind: token.INT, Value: "0"}}}
			}
		}
	case *ast.ForStmt:
		// for i := 0; i < n; i++ with i and n not assigned in the body.
		init, ok := l.Init.(*ast.AssignStmt)
		if !ok || init.Tok != token.DEFINE || len(init.Lhs) != 1 || len(init.Rhs) != 1 {
			return nil
		}
		if lit, ok := init.Rhs[0].(*ast.BasicLit); !ok || lit.Value != "0" {
			return nil
		}
		iv, _ := init.Lhs[0].(*ast.Ident)
		cond, ok := l.Cond.(*ast.BinaryExpr)
		if iv == nil || !ok || cond.Op != token.LSS {
			return nil
		}
		if x, ok := cond.X.(*ast.Ident); !ok || x.Name != iv.Name {
			return nil
		}
		post, ok := l.Post.(*ast.IncDecStmt)
		if !ok || post.Tok != token.INC {
			return nil
		}
		if x, ok := post.X.(*ast.Ident); !ok || x.Name != iv.Name {
			return nil
		}
		if !pure(cond.Y) || t.assigns(l.Body, iv.Name) || t.assignsAny(l.Body, cond.Y) {
			return nil
		}
		if tv, ok := t.pkg.Info.Types[cond.Y]; !ok || !isBasic(tv.Type.Underlying(), types.Int) {
			return nil
		}
		if call, ok := cond.Y.(*ast.CallExpr); ok {
			if id, ok := call.Fun.(*ast.Ident); ok && id.Name == "len" {
				return stripPos(cond.Y) // len is never negative
			}
		}
		return &ast.CallExpr{Fun: ast.NewIdent("max"), Args: []ast.Expr{stripPos(cond.Y), &ast.BasicLit{Kind: token.INT, Value: "0"}}}
	}
	return nil
}

// pure: identifiers, selectors, len(pure), literals.
func pure(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.Ident, *ast.BasicLit:
		return true
	case *ast.SelectorExpr:
		return pure(x.X)
	case *ast.ParenExpr:
		return pure(x.X)
	case *ast.CallExpr:
		id, ok := x.Fun.(*ast.Ident)
		return ok && id.Name == "len" && len(x.Args) == 1 && pure(x.Args[0])
	}
	return false
}

func (t *target) assigns(body ast.Node, name string) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		switch s := n.(type) {
		case *ast.AssignStmt:
			for _, l := range s.Lhs {
				if id, ok := l.(*ast.Ident); ok && id.Name == name {
					found = true
				}
			}
		case *ast.IncDecStmt:
			if id, ok := s.X.(*ast.Ident); ok && id.Name == name {
				found = true
			}
		case *ast.UnaryExpr:
			if id, ok := s.X.(*ast.Ident); ok && s.Op == token.AND && id.Name == name {
				found = true
			}
		}
		return !found
	})
	return found
}

func (t *target) assignsAny(body ast.Node, e ast.Expr) bool {
	bad := false
	ast.Inspect(e, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && t.assigns(body, id.Name) {
			bad = true
		}
		return !bad
	})
	return bad
}

// preallocSlice turns `var s []T` + a loop appending one element per iteration into
// `s := make([]T, 0, n)`.
func preallocSlice(t *target) []string {
	var notes []string
	for _, lp := range t.blocks() {
		list := *lp
		for i := 0; i < len(list); i++ {
			id, v := t.localVar(list[i])
			if v == nil {
				continue
			}
			sl, ok := v.Type().(*types.Slice)
			if !ok {
				continue
			}
			_ = sl
			j := t.firstLoopAfter(list, i, v)
			if j < 0 {
				continue
			}
			body := loopBody(list[j])
			// Exactly one top-level `s = append(s, x)` and no other use of s in the loop.
			appends := 0
			for _, st := range body.List {
				if t.isAppendOne(st, v) {
					appends++
				}
			}
			if appends != 1 || t.uses(list[j], v) != 2 || hasJump(body) {
				continue
			}
			n := t.tripCount(list[j])
			if n == nil {
				continue
			}
			typ := typeExpr(t, list[i])
			if typ == nil {
				continue
			}
			list[i] = &ast.AssignStmt{
				Lhs: []ast.Expr{ast.NewIdent(id.Name)}, Tok: token.DEFINE, TokPos: list[i].Pos(),
				Rhs: []ast.Expr{&ast.CallExpr{Fun: ast.NewIdent("make"), Args: []ast.Expr{typ, &ast.BasicLit{Kind: token.INT, Value: "0"}, n}}},
			}
			notes = append(notes, fmt.Sprintf("line %d: %s preallocated for the loop's %s iterations", t.line(id), id.Name, exprString(t, n)))
		}
	}
	return notes
}

// typeExpr returns the slice type syntax of a declaration: var s []T, s := []T{}.
func typeExpr(t *target, st ast.Stmt) ast.Expr {
	switch s := st.(type) {
	case *ast.DeclStmt:
		vs := s.Decl.(*ast.GenDecl).Specs[0].(*ast.ValueSpec)
		if vs.Type != nil {
			return vs.Type
		}
		if len(vs.Values) == 1 {
			if cl, ok := vs.Values[0].(*ast.CompositeLit); ok {
				return cl.Type
			}
		}
	case *ast.AssignStmt:
		switch x := s.Rhs[0].(type) {
		case *ast.CompositeLit:
			return x.Type
		case *ast.CallExpr:
			return x.Fun
		}
	}
	return nil
}

func exprString(t *target, e ast.Expr) string {
	var b bytes.Buffer
	if err := format.Node(&b, t.fset, e); err != nil {
		return "n"
	}
	return b.String()
}

// isAppendOne: s = append(s, x) with one element and no spread.
func (t *target) isAppendOne(st ast.Stmt, v *types.Var) bool {
	as, ok := st.(*ast.AssignStmt)
	if !ok || as.Tok != token.ASSIGN || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
		return false
	}
	if id, ok := as.Lhs[0].(*ast.Ident); !ok || t.pkg.Info.Uses[id] != v {
		return false
	}
	call, ok := as.Rhs[0].(*ast.CallExpr)
	if !ok || call.Ellipsis.IsValid() || len(call.Args) != 2 {
		return false
	}
	if fid, ok := call.Fun.(*ast.Ident); !ok || fid.Name != "append" {
		return false
	}
	a0, ok := call.Args[0].(*ast.Ident)
	return ok && t.pkg.Info.Uses[a0] == v
}

// hasJump reports a break, goto or labeled continue that could end the loop early
// (preallocation would then over-reserve, harmless, but the intent is unclear) —
// kept conservative.
func hasJump(body *ast.BlockStmt) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		if _, ok := n.(*ast.FuncLit); ok {
			return false
		}
		if b, ok := n.(*ast.BranchStmt); ok && (b.Tok == token.GOTO || b.Tok == token.BREAK && b.Label != nil) {
			found = true
		}
		return !found
	})
	return found
}

// stringBuilder replaces `s += e` in a loop with a strings.Builder.
func stringBuilder(t *target) []string {
	var notes []string
	for _, lp := range t.blocks() {
		list := *lp
		for i := 0; i < len(list); i++ {
			id, v := t.localVarInit(list[i], true)
			if v == nil || !isBasic(v.Type(), types.String) {
				continue
			}
			j := t.firstLoopAfter(list, i, v)
			if j < 0 {
				continue
			}
			body := loopBody(list[j])
			// Every use of s in the loop is the left side of a top-level `s += e`.
			var idx []int
			for k, st := range body.List {
				as, ok := st.(*ast.AssignStmt)
				if !ok || as.Tok != token.ADD_ASSIGN || len(as.Lhs) != 1 {
					continue
				}
				if lid, ok := as.Lhs[0].(*ast.Ident); ok && t.pkg.Info.Uses[lid] == v && t.uses(as.Rhs[0], v) == 0 {
					idx = append(idx, k)
				}
			}
			if len(idx) == 0 || t.uses(list[j], v) != len(idx) {
				continue
			}
			strs := t.importName("strings")
			sb := t.freshLocal("sb")
			for n := len(idx) - 1; n >= 0; n-- {
				k := idx[n]
				as := body.List[k].(*ast.AssignStmt)
				var calls []ast.Stmt
				for _, part := range flattenConcat(as.Rhs[0]) {
					calls = append(calls, &ast.ExprStmt{X: &ast.CallExpr{
						Fun:  &ast.SelectorExpr{X: ast.NewIdent(sb), Sel: ast.NewIdent("WriteString")},
						Args: []ast.Expr{part},
					}})
				}
				body.List = append(body.List[:k], append(calls, body.List[k+1:]...)...)
			}
			at := list[j].Pos()
			if j == i+1 {
				at = list[i].Pos()
			}
			decl := &ast.DeclStmt{Decl: &ast.GenDecl{TokPos: at, Tok: token.VAR, Specs: []ast.Spec{&ast.ValueSpec{
				Names: []*ast.Ident{{NamePos: at, Name: sb}},
				Type:  &ast.SelectorExpr{X: ast.NewIdent(strs), Sel: ast.NewIdent("Builder")},
			}}}}
			var after ast.Stmt
			if j == i+1 && t.declaredEmpty(list[i]) {
				// s had no value yet: declare it from the builder after the loop.
				list[i] = decl
				after = &ast.AssignStmt{Lhs: []ast.Expr{ast.NewIdent(id.Name)}, Tok: token.DEFINE, Rhs: []ast.Expr{sbString(sb)}}
			} else {
				list = append(list[:j], append([]ast.Stmt{decl}, list[j:]...)...)
				j++
				after = &ast.AssignStmt{Lhs: []ast.Expr{ast.NewIdent(id.Name)}, Tok: token.ADD_ASSIGN, Rhs: []ast.Expr{sbString(sb)}}
			}
			list = append(list[:j+1], append([]ast.Stmt{after}, list[j+1:]...)...)
			*lp = list
			notes = append(notes, fmt.Sprintf("line %d: %s built with a strings.Builder instead of += in the loop", t.line(id), id.Name))
		}
	}
	return notes
}

// declaredEmpty reports whether a declaration gives its variable the zero value.
func (t *target) declaredEmpty(st ast.Stmt) bool {
	switch s := st.(type) {
	case *ast.DeclStmt:
		vs := s.Decl.(*ast.GenDecl).Specs[0].(*ast.ValueSpec)
		return len(vs.Values) == 0 || emptyValue(t, vs.Values[0])
	case *ast.AssignStmt:
		return emptyValue(t, s.Rhs[0])
	}
	return false
}

func sbString(sb string) ast.Expr {
	return &ast.CallExpr{Fun: &ast.SelectorExpr{X: ast.NewIdent(sb), Sel: ast.NewIdent("String")}}
}

// flattenConcat splits a + b + c into its operands (string concatenation only).
func flattenConcat(e ast.Expr) []ast.Expr {
	if b, ok := e.(*ast.BinaryExpr); ok && b.Op == token.ADD {
		return append(flattenConcat(b.X), flattenConcat(b.Y)...)
	}
	if p, ok := e.(*ast.ParenExpr); ok {
		return flattenConcat(p.X)
	}
	return []ast.Expr{e}
}

// sortedEdits orders edits by path for stable output.
func sortedEdits(es []Edit) []Edit {
	sort.Slice(es, func(i, j int) bool { return es[i].Path < es[j].Path })
	return es
}
