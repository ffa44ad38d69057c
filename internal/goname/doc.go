// Package goname names Go functions the way the Go runtime prints them, so the
// agent's symbolizer, pprof import, code search, root cause and source
// transforms agree on which declaration a profiled function is.
//
// After the package path the runtime writes "Func", "T.Method", "(*T).Method",
// and for generics "Func[...]", "T[...].Method" and "(*T[...]).Method" (type
// arguments are elided as "..." whatever they are; runtime/pprof profiles
// carry the instantiation's shape, "Map[go.shape.int]", which [Print] elides).
package goname
