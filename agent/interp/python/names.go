package python

import (
	"container/list"
	"encoding/binary"
	"fmt"
	"path"
	"strings"
	"unicode/utf16"
)

// maxNameBytes bounds one string read from a code object.
const maxNameBytes = 1024

// DefaultCacheEntries is the Namer's default bound (code objects).
const DefaultCacheEntries = 16384

// Code is what a frame is named from.
type Code struct {
	Name        string // module.qualname
	File        string // co_filename
	FirstLineno uint32
}

type cacheKey struct {
	pid  uint32
	code uint64
}

// Namer names code objects, caching by (pid, code address) with
// co_firstlineno as the generation check: a freed code object whose address
// is reused by another function is read again. Only the low 16 bits are
// compared, as many as the kernel walker records per frame. Not safe for
// concurrent use.
type Namer struct {
	max   int
	ll    *list.List // front: most recently used; values are *entry
	byKey map[cacheKey]*list.Element
	Reads uint64 // code objects read (cache misses)
}

type entry struct {
	key  cacheKey
	code Code
}

// NewNamer returns a Namer holding at most max code objects.
func NewNamer(max int) *Namer {
	return &Namer{max: max, ll: list.New(), byKey: map[cacheKey]*list.Element{}}
}

// Len is the number of cached code objects.
func (n *Namer) Len() int { return n.ll.Len() }

// Name names frame f of process pid, reading m on a miss.
func (n *Namer) Name(m Memory, l Layout, pid uint32, f RawFrame) (Code, error) {
	k := cacheKey{pid, f.Code}
	if el, ok := n.byKey[k]; ok {
		e := el.Value.(*entry)
		if uint16(e.code.FirstLineno) == uint16(f.FirstLineno) {
			n.ll.MoveToFront(el)
			return e.code, nil
		}
		n.ll.Remove(el)
		delete(n.byKey, k)
	}
	c, err := ReadCode(m, l, f.Code)
	n.Reads++
	if err != nil {
		return Code{}, err
	}
	n.byKey[k] = n.ll.PushFront(&entry{key: k, code: c})
	for n.ll.Len() > n.max {
		old := n.ll.Back()
		n.ll.Remove(old)
		delete(n.byKey, old.Value.(*entry).key)
	}
	return c, nil
}

// Forget drops the cached code objects of pid (the process exited or exec'd).
func (n *Namer) Forget(pid uint32) {
	for el := n.ll.Front(); el != nil; {
		next := el.Next()
		if e := el.Value.(*entry); e.key.pid == pid {
			n.ll.Remove(el)
			delete(n.byKey, e.key)
		}
		el = next
	}
}

// ReadCode reads a code object's names.
func ReadCode(m Memory, l Layout, code uint64) (Code, error) {
	nameAddr, err := readU64(m, code+uint64(l.CodeName))
	if err != nil {
		return Code{}, err
	}
	fileAddr, err := readU64(m, code+uint64(l.CodeFilename))
	if err != nil {
		return Code{}, err
	}
	var b [4]byte
	if _, err := m.ReadAt(b[:], int64(code+uint64(l.CodeFirstLineno))); err != nil {
		return Code{}, fmt.Errorf("read %#x: %w", code, err)
	}
	qual, err := ReadString(m, l, nameAddr)
	if err != nil {
		return Code{}, fmt.Errorf("read name: %w", err)
	}
	file, err := ReadString(m, l, fileAddr)
	if err != nil {
		return Code{}, fmt.Errorf("read filename: %w", err)
	}
	return Code{Name: Module(file) + "." + qual, File: file, FirstLineno: binary.LittleEndian.Uint32(b[:])}, nil
}

// Module names the module of a source file: its base name without .py, the
// directory's name for a package's __init__.py.
func Module(file string) string {
	base := path.Base(file)
	if base == "__init__.py" {
		base = path.Base(path.Dir(file))
	}
	if strings.HasPrefix(file, "<") { // <frozen importlib._bootstrap>, <string>
		return strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(file, "<"), "frozen "), ">")
	}
	return strings.TrimSuffix(base, ".py")
}

// state bits of PyASCIIObject (all versions 3.10-3.13): interned:2, kind:3,
// compact:1, ascii:1.
const (
	stateKindShift = 2
	stateKindMask  = 7
	stateCompact   = 1 << 5
	stateASCII     = 1 << 6
)

// ReadString reads a compact str object.
func ReadString(m Memory, l Layout, addr uint64) (string, error) {
	length, err := readU64(m, addr+uint64(l.UnicodeLength))
	if err != nil {
		return "", err
	}
	state, err := readU8(m, addr+uint64(l.UnicodeState))
	if err != nil {
		return "", err
	}
	if state&stateCompact == 0 {
		return "", fmt.Errorf("str at %#x is not compact", addr)
	}
	kind := int(state>>stateKindShift) & stateKindMask
	data := uint64(l.CompactData)
	if state&stateASCII != 0 {
		data = uint64(l.ASCIIData)
	}
	if kind != 1 && kind != 2 && kind != 4 {
		return "", fmt.Errorf("str at %#x has kind %d", addr, kind)
	}
	n := length * uint64(kind)
	if n > maxNameBytes {
		n = maxNameBytes - maxNameBytes%uint64(kind)
	}
	b := make([]byte, n)
	if _, err := m.ReadAt(b, int64(addr+data)); err != nil {
		return "", fmt.Errorf("read str %#x: %w", addr, err)
	}
	switch kind {
	case 1: // Latin-1
		if state&stateASCII != 0 {
			return string(b), nil
		}
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return string(r), nil
	case 2:
		u := make([]uint16, len(b)/2)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		return string(utf16.Decode(u)), nil
	default:
		r := make([]rune, len(b)/4)
		for i := range r {
			r[i] = rune(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return string(r), nil
	}
}
