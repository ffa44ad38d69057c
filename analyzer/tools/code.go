package tools

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fleetprof/fleetprof/analyzer/rootcause"
	"github.com/fleetprof/fleetprof/internal/goname"
)

// Location is a place in the source checkout.
type Location struct {
	File     string `json:"file" jsonschema:"path relative to the repository root"`
	Line     int    `json:"line" jsonschema:"1-based line"`
	EndLine  int    `json:"end_line,omitempty" jsonschema:"last line of the declaration"`
	Function string `json:"function" jsonschema:"profiler name of the function declared (or containing the call) here"`
	Text     string `json:"text,omitempty" jsonschema:"the source line"`
}

// CodeInput names a function.
type CodeInput struct {
	Function string `json:"function" jsonschema:"profiler function name, e.g. example.com/m/pkg.(*T).Method"`
}

// CodeOutput lists source locations.
type CodeOutput struct {
	Locations []Location `json:"locations" jsonschema:"matching places"`
}

// ErrNoRepo is returned by code and history tools without a configured checkout.
var ErrNoRepo = errors.New("no source checkout configured")

// goFile is one parsed file of the module.
type goFile struct {
	rel, pkgPath string
	fset         *token.FileSet
	file         *ast.File
	src          []byte
}

// walkGo parses every Go file of the module (tests included; testdata, vendor and
// nested modules excluded).
func (t *Toolbox) walkGo(ctx context.Context, visit func(g goFile) error) error {
	if t.cfg.Module == "" {
		return ErrNoRepo
	}
	gomod, err := os.ReadFile(filepath.Join(t.cfg.Module, "go.mod"))
	if err != nil {
		return fmt.Errorf("code search: %w", err)
	}
	mod := rootcause.ModulePath(gomod)
	root := t.cfg.Repo
	if root == "" {
		root = t.cfg.Module
	}
	return filepath.WalkDir(t.cfg.Module, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			n := d.Name()
			if p != t.cfg.Module && (n == "testdata" || n == "vendor" || strings.HasPrefix(n, ".")) {
				return filepath.SkipDir
			}
			if p != t.cfg.Module {
				if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		src, err := os.ReadFile(p) //nolint:gosec // p comes from walking the configured checkout
		if err != nil {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, src, parser.SkipObjectResolution)
		if err != nil {
			return nil // unparsable files cannot be searched; not fatal
		}
		relDir, _ := filepath.Rel(t.cfg.Module, filepath.Dir(p))
		ip := mod
		if relDir != "." {
			ip = path.Join(mod, filepath.ToSlash(relDir))
		}
		if f.Name.Name == "main" {
			ip = "main"
		}
		rel, _ := filepath.Rel(root, p)
		return visit(goFile{rel: filepath.ToSlash(rel), pkgPath: ip, fset: fset, file: f, src: src})
	})
}

func lineText(src []byte, line int) string {
	lines := bytes.Split(src, []byte("\n"))
	if line < 1 || line > len(lines) {
		return ""
	}
	return strings.TrimSpace(string(lines[line-1]))
}

// FindFunction returns where the function is declared.
func (t *Toolbox) FindFunction(ctx context.Context, in CodeInput) (*CodeOutput, error) {
	if in.Function == "" {
		return nil, errors.New("find function: empty function name")
	}
	out := &CodeOutput{Locations: []Location{}}
	err := t.walkGo(ctx, func(g goFile) error {
		if !strings.HasPrefix(in.Function, g.pkgPath+".") {
			return nil
		}
		name := strings.TrimPrefix(in.Function, g.pkgPath+".")
		for _, d := range g.file.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || goname.Func(fd) != name {
				continue
			}
			l := g.fset.Position(fd.Pos()).Line
			out.Locations = append(out.Locations, Location{File: g.rel, Line: l, EndLine: g.fset.Position(fd.End()).Line,
				Function: in.Function, Text: lineText(g.src, l)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find function: %w", err)
	}
	return out, nil
}

// Callers returns the calls of the function's name in the module (by identifier, so
// methods of other types with the same name are included).
func (t *Toolbox) Callers(ctx context.Context, in CodeInput) (*CodeOutput, error) {
	name := in.Function
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	if name == "" {
		return nil, errors.New("callers: empty function name")
	}
	out := &CodeOutput{Locations: []Location{}}
	err := t.walkGo(ctx, func(g goFile) error {
		for _, d := range g.file.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				var id *ast.Ident
				switch f := call.Fun.(type) {
				case *ast.Ident:
					id = f
				case *ast.SelectorExpr:
					id = f.Sel
				}
				if id != nil && id.Name == name {
					l := g.fset.Position(call.Pos()).Line
					out.Locations = append(out.Locations, Location{File: g.rel, Line: l, Function: g.pkgPath + "." + goname.Func(fd), Text: lineText(g.src, l)})
				}
				return true
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("callers: %w", err)
	}
	sort.Slice(out.Locations, func(i, j int) bool {
		a, b := out.Locations[i], out.Locations[j]
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return out, nil
}

// HistoryInput asks for the changes between two revisions.
type HistoryInput struct {
	From     string `json:"from,omitempty" jsonschema:"older revision (exclusive); empty: the last limit commits before to"`
	To       string `json:"to,omitempty" jsonschema:"newer revision (inclusive); default HEAD"`
	Function string `json:"function,omitempty" jsonschema:"only changes that touched this function (profiler name)"`
	Limit    int    `json:"limit,omitempty" jsonschema:"at most this many, newest kept (default 50)"`
}

// HistoryOutput is the first-parent changes, oldest first.
type HistoryOutput struct {
	Changes []rootcause.Change `json:"changes" jsonschema:"commits / merged pull requests with the files and functions they touched, oldest first"`
}

// History lists the first-parent changes in (From, To] with their pull request,
// author and touched functions.
func (t *Toolbox) History(ctx context.Context, in HistoryInput) (*HistoryOutput, error) {
	if t.cfg.Repo == "" {
		return nil, fmt.Errorf("history: %w", ErrNoRepo)
	}
	if in.To == "" {
		in.To = "HEAD"
	}
	if in.Limit <= 0 {
		in.Limit = 50
	}
	repo := rootcause.Repo{Dir: t.cfg.Repo}
	from := in.From
	if from == "" {
		// The commit limit commits back, if there is one.
		if h, err := repo.Resolve(ctx, fmt.Sprintf("%s~%d", in.To, in.Limit)); err == nil {
			from = h
		}
	}
	cs, err := repo.Changes(ctx, from, in.To)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	out := &HistoryOutput{Changes: []rootcause.Change{}}
	for _, c := range cs {
		if in.Function != "" && !containsString(c.Functions, in.Function) {
			continue
		}
		out.Changes = append(out.Changes, c)
	}
	if len(out.Changes) > in.Limit {
		out.Changes = out.Changes[len(out.Changes)-in.Limit:]
	}
	return out, nil
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// ShowInput names a commit.
type ShowInput struct {
	Commit   string `json:"commit" jsonschema:"commit hash or revision"`
	MaxBytes int    `json:"max_bytes,omitempty" jsonschema:"truncate the patch to this many bytes (default 20000)"`
}

// ShowOutput is one commit's message and patch.
type ShowOutput struct {
	Commit    string `json:"commit" jsonschema:"full hash"`
	Patch     string `json:"patch" jsonschema:"git show output (message, stat and diff)"`
	Truncated bool   `json:"truncated,omitempty" jsonschema:"whether the patch was cut at max_bytes"`
}

// Show returns a commit's message and diff.
func (t *Toolbox) Show(ctx context.Context, in ShowInput) (*ShowOutput, error) {
	if t.cfg.Repo == "" {
		return nil, fmt.Errorf("show: %w", ErrNoRepo)
	}
	if in.MaxBytes <= 0 {
		in.MaxBytes = 20000
	}
	repo := rootcause.Repo{Dir: t.cfg.Repo}
	h, err := repo.Resolve(ctx, in.Commit)
	if err != nil {
		return nil, fmt.Errorf("show: %w", err)
	}
	cmd := exec.CommandContext(ctx, "git", "-C", t.cfg.Repo, "show", "--stat", "--patch", "--no-color", h)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("show: git show: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	s := &ShowOutput{Commit: h, Patch: out.String()}
	if len(s.Patch) > in.MaxBytes {
		s.Patch, s.Truncated = s.Patch[:in.MaxBytes], true
	}
	return s, nil
}

// DocsInput names a skill.
type DocsInput struct {
	Name string `json:"name,omitempty" jsonschema:"skill name; empty lists every skill"`
}

// DocsOutput is skill documentation.
type DocsOutput struct {
	Skills []Doc `json:"skills" jsonschema:"skill docs"`
}

// Docs returns the documentation of one or all skills.
func (t *Toolbox) Docs(_ context.Context, in DocsInput) (*DocsOutput, error) {
	out := &DocsOutput{Skills: []Doc{}}
	for _, d := range t.cfg.Docs {
		if in.Name == "" || d.Name == in.Name {
			out.Skills = append(out.Skills, d)
		}
	}
	if in.Name != "" && len(out.Skills) == 0 {
		return nil, fmt.Errorf("docs: skill %q: %w", in.Name, ErrNotFound)
	}
	return out, nil
}
