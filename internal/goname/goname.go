package goname

import (
	"go/ast"
	"strings"
)

// Func returns fd's name as profilers show it after the package path.
func Func(fd *ast.FuncDecl) string {
	name := fd.Name.Name
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		if fd.Type.TypeParams != nil && len(fd.Type.TypeParams.List) > 0 {
			name += "[...]"
		}
		return name
	}
	t := fd.Recv.List[0].Type
	ptr := false
	if s, ok := t.(*ast.StarExpr); ok {
		ptr, t = true, s.X
	}
	generic := false
	switch x := t.(type) {
	case *ast.IndexExpr:
		t, generic = x.X, true
	case *ast.IndexListExpr:
		t, generic = x.X, true
	}
	recv := "?"
	if id, ok := t.(*ast.Ident); ok {
		recv = id.Name
	}
	if generic {
		recv += "[...]"
	}
	if ptr {
		return "(*" + recv + ")." + name
	}
	return recv + "." + name
}

// Print shortens a symbol table or pprof name's type arguments to "[...]" as
// the runtime prints them (funcNameForPrint): "main.Map[go.shape.int]" and
// "main.Map[...]" both become "main.Map[...]".
func Print(name string) string {
	i := strings.IndexByte(name, '[')
	if i < 0 {
		return name
	}
	j := strings.LastIndexByte(name, ']')
	if j <= i {
		return name
	}
	return name[:i] + "[...]" + name[j+1:]
}
