package symbolize

import (
	"bufio"
	"bytes"
	"cmp"
	"container/list"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/fleetprof/fleetprof/internal/goname"
	"github.com/ianlancetaylor/demangle"
)

// object is the parsed symbol information of one ELF
// file (executable, shared library or the vDSO). It enters the cache with
// its files open but unparsed (so each file is parsed once, and only if a
// sample needs it); the first Symbolize that needs it parses it without the
// Symbolizer lock, then sets the tables and loaded under the lock and closes
// ready. After that only lazy demangling changes it, under the same lock.
// All fields but the tables are guarded by the Symbolizer lock.
type object struct {
	key      string // cache key: build id or file identity
	segments []segment
	syms     []symbol // sorted by addr, one per addr
	inl      inlineTable
	inodes   []string // Symbolizer.byInode keys that resolve to this object

	ready  chan struct{} // closed once loaded is set
	loaded bool          // tables set (or failed)
	failed bool          // could not be parsed: frames stay unknown
	src    *objectSource // open files until a parse starts
	refs   int           // tracked processes mapping it
	elem   *list.Element // in the LRU while unreferenced
}

// segment is a PT_LOAD program header: the mapping between file offsets and
// link-time virtual addresses.
type segment struct {
	off, vaddr, filesz uint64
}

type symbol struct {
	addr, size uint64
	name       string
	// mangled is set until name has been demangled (done lazily: most
	// symbols are never looked up).
	mangled bool
}

// vaddr converts a file offset into the object's link-time virtual address.
func (o *object) vaddr(fileOff uint64) (uint64, bool) {
	for _, s := range o.segments {
		if fileOff >= s.off && fileOff < s.off+s.filesz {
			return fileOff - s.off + s.vaddr, true
		}
	}
	return 0, false
}

// lookup returns the symbol containing addr.
func (o *object) lookup(addr uint64) (*symbol, bool) {
	i, found := slices.BinarySearchFunc(o.syms, addr, func(s symbol, a uint64) int { return cmp.Compare(s.addr, a) })
	if !found {
		i--
	}
	if i < 0 {
		return nil, false
	}
	s := &o.syms[i]
	if s.size != 0 && addr >= s.addr+s.size {
		return nil, false
	}
	if s.mangled {
		s.name = demangle.Filter(s.name)
		s.mangled = false
	}
	return s, true
}

// Symbol sources, in order of preference when two name the same address.
const (
	prioGo = iota // .gopclntab: the names the Go runtime itself reports
	prioGlobal
	prioWeak
	prioLocal
)

type candidate struct {
	symbol
	prio int
}

// elfInput is one opened ELF file with the name used in errors.
type elfInput struct {
	f    *elf.File
	name string
}

// parseObject builds an object from the mapped file and, if found, its
// separate debug file (which may be nil).
func parseObject(file, debug *elfInput, maxDWARF int64) (*object, error) {
	o := &object{loaded: true}
	for _, p := range file.f.Progs {
		if p.Type == elf.PT_LOAD {
			o.segments = append(o.segments, segment{off: p.Off, vaddr: p.Vaddr, filesz: p.Filesz})
		}
	}
	if len(o.segments) == 0 {
		return nil, fmt.Errorf("parse %s: no PT_LOAD segments", file.name)
	}
	isGo := file.f.Section(".gopclntab") != nil
	var cands []candidate
	var goTab *goTables
	if isGo {
		// The runtime's own tables give its names and inline tree even
		// when stripped; debug/gosym (names only) is the fallback for
		// layouts this parser does not know.
		var err error
		if goTab, err = parseGoPclntab(file.f); err == nil {
			for _, s := range goTab.syms {
				cands = append(cands, candidate{symbol: s, prio: prioGo})
			}
		} else {
			cands = appendGoSymbols(cands, file.f)
		}
	}
	// A debug file's .symtab is a superset of the stripped file's tables;
	// still read all: duplicates are dropped by address below.
	if debug != nil {
		cands = appendELFSymbols(cands, debug.f, false, isGo)
	}
	cands = appendELFSymbols(cands, file.f, false, isGo)
	cands = appendELFSymbols(cands, file.f, true, isGo)
	slices.SortFunc(cands, func(a, b candidate) int {
		if c := cmp.Compare(a.addr, b.addr); c != 0 {
			return c
		}
		if c := cmp.Compare(a.prio, b.prio); c != 0 {
			return c
		}
		// Among aliases prefer the public-looking name: malloc over
		// __libc_malloc.
		ua, ub := len(a.name)-len(strings.TrimLeft(a.name, "_")), len(b.name)-len(strings.TrimLeft(b.name, "_"))
		if c := cmp.Compare(ua, ub); c != 0 {
			return c
		}
		if c := cmp.Compare(len(a.name), len(b.name)); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	n := 0
	for i, c := range cands {
		if i == 0 || cands[i-1].addr != c.addr {
			n++
		}
	}
	o.syms = make([]symbol, 0, n) // exact: objects stay resident for long
	for i, c := range cands {
		if i > 0 && cands[i-1].addr == c.addr {
			continue
		}
		o.syms = append(o.syms, c.symbol)
	}

	if goTab != nil {
		// Go code's inlining comes from pclntab: it is what the runtime
		// reports and it is cheaper than DWARF. (Inlining inside cgo's C
		// code is not expanded.)
		o.inl = goTab.inl
		return o, nil
	}
	dw := file
	if debug != nil && hasDWARF(debug.f) {
		dw = debug
	}
	if sec := dw.f.Section(".debug_info"); sec != nil && int64(sec.Size) <= maxDWARF {
		inl, err := parseInlines(dw.f)
		if err != nil {
			return nil, fmt.Errorf("parse %s dwarf: %w", dw.name, err)
		}
		o.inl = inl
	}
	return o, nil
}

func hasDWARF(f *elf.File) bool {
	s := f.Section(".debug_info")
	return s != nil && s.Type != elf.SHT_NOBITS
}

func appendELFSymbols(cands []candidate, f *elf.File, dynamic, isGo bool) []candidate {
	want := elf.SHT_SYMTAB
	if dynamic {
		want = elf.SHT_DYNSYM
	}
	var sec *elf.Section
	for _, sc := range f.Sections {
		if sc.Type == want {
			sec = sc
			break
		}
	}
	if sec == nil || int(sec.Link) >= len(f.Sections) {
		return cands
	}
	if f.Class != elf.ELFCLASS64 {
		return appendELFSymbolsSlow(cands, f, dynamic, isGo)
	}
	// Stream the table and read only the names of functions: debug/elf
	// would hold the whole string table and every symbol (data included)
	// at once, tens of MB for a big C++ library.
	strtab := f.Sections[sec.Link]
	r := bufio.NewReaderSize(sec.Open(), 64<<10)
	var ent [24]byte // Elf64_Sym
	var nameBuf []byte
	for i := 0; ; i++ {
		if _, err := io.ReadFull(r, ent[:]); err != nil {
			return cands
		}
		if i == 0 {
			continue // the null symbol
		}
		nameOff := f.ByteOrder.Uint32(ent[0:])
		info := ent[4]
		shndx := elf.SectionIndex(f.ByteOrder.Uint16(ent[6:]))
		value := f.ByteOrder.Uint64(ent[8:])
		size := f.ByteOrder.Uint64(ent[16:])
		typ := elf.ST_TYPE(info)
		if typ != elf.STT_FUNC && typ != elf.STT_GNU_IFUNC || value == 0 || shndx == elf.SHN_UNDEF || nameOff == 0 {
			continue
		}
		var ok bool
		if nameBuf, ok = readCString(strtab, int64(nameOff), nameBuf); !ok || len(nameBuf) == 0 {
			continue
		}
		cands = appendELFCandidate(cands, string(nameBuf), value, size, info, isGo)
	}
}

// readCString reads the NUL-terminated string at off of sec into buf.
func readCString(sec *elf.Section, off int64, buf []byte) ([]byte, bool) {
	buf = buf[:cap(buf)]
	if len(buf) < 256 {
		buf = make([]byte, 256)
	}
	for {
		n, err := sec.ReadAt(buf, off)
		if i := bytes.IndexByte(buf[:n], 0); i >= 0 {
			return buf[:i], true
		}
		if err != nil || n < len(buf) {
			return buf[:0], false
		}
		buf = make([]byte, 2*len(buf))
	}
}

// appendELFSymbolsSlow is appendELFSymbols through debug/elf (32-bit files).
func appendELFSymbolsSlow(cands []candidate, f *elf.File, dynamic, isGo bool) []candidate {
	var syms []elf.Symbol
	if dynamic {
		syms, _ = f.DynamicSymbols()
	} else {
		syms, _ = f.Symbols()
	}
	for _, s := range syms {
		typ := elf.ST_TYPE(s.Info)
		if typ != elf.STT_FUNC && typ != elf.STT_GNU_IFUNC {
			continue
		}
		if s.Value == 0 || s.Section == elf.SHN_UNDEF || s.Name == "" {
			continue
		}
		cands = appendELFCandidate(cands, s.Name, s.Value, s.Size, s.Info, isGo)
	}
	return cands
}

func appendELFCandidate(cands []candidate, name string, value, size uint64, info byte, isGo bool) []candidate {
	prio := prioLocal
	switch elf.ST_BIND(info) {
	case elf.STB_GLOBAL:
		prio = prioGlobal
	case elf.STB_WEAK:
		prio = prioWeak
	}
	if isGo {
		// Go's linker names assembly (ABI0) functions "pkg.f.abi0";
		// the runtime and pprof call them "pkg.f".
		name = strings.TrimSuffix(name, ".abi0")
		name = strings.TrimSuffix(name, ".abiinternal")
	} else if i := strings.IndexByte(name, '@'); i > 0 {
		name = name[:i] // symbol versions: memcpy@@GLIBC_2.14
	}
	mangled := strings.HasPrefix(name, "_Z") || strings.HasPrefix(name, "_R")
	return append(cands, candidate{symbol: symbol{addr: value, size: size, name: name, mangled: mangled}, prio: prio})
}

// appendGoSymbols reads function names from .gopclntab, which survives
// stripping. Failures (e.g. a pclntab newer than this Go's debug/gosym) leave
// the ELF symbol tables as the only source.
func appendGoSymbols(cands []candidate, f *elf.File) []candidate {
	pcln, err := f.Section(".gopclntab").Data()
	if err != nil {
		return cands
	}
	var textStart uint64
	if t := f.Section(".text"); t != nil {
		textStart = t.Addr
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(pcln, textStart))
	if err != nil {
		return cands
	}
	for _, fn := range tab.Funcs {
		var size uint64
		if fn.End > fn.Entry {
			size = fn.End - fn.Entry
		}
		cands = append(cands, candidate{symbol: symbol{addr: fn.Entry, size: size, name: goname.Print(fn.Name)}, prio: prioGo})
	}
	return cands
}

// buildID returns the GNU build id (hex), or the Go build id prefixed with
// "go:" for Go binaries linked without one.
func buildID(f *elf.File) (string, error) {
	var goID string
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil {
			continue
		}
		if id, kind := parseNotes(data, f.ByteOrder); kind == "gnu" {
			return id, nil
		} else if kind == "go" {
			goID = id
		}
	}
	// Go's internal linker emits notes as sections only for some modes.
	for _, name := range []string{".note.gnu.build-id", ".note.go.buildid"} {
		s := f.Section(name)
		if s == nil {
			continue
		}
		data, err := s.Data()
		if err != nil {
			continue
		}
		if id, kind := parseNotes(data, f.ByteOrder); kind == "gnu" {
			return id, nil
		} else if kind == "go" && goID == "" {
			goID = id
		}
	}
	if goID != "" {
		return "go:" + goID, nil
	}
	return "", fmt.Errorf("no build id")
}

func parseNotes(data []byte, bo binary.ByteOrder) (id, kind string) {
	for len(data) >= 12 {
		namesz := uint64(bo.Uint32(data[0:]))
		descsz := uint64(bo.Uint32(data[4:]))
		typ := bo.Uint32(data[8:])
		nameEnd := 12 + (namesz+3)&^3
		descEnd := nameEnd + (descsz+3)&^3
		if nameEnd > uint64(len(data)) || 12+namesz > uint64(len(data)) || nameEnd+descsz > uint64(len(data)) {
			return "", ""
		}
		name := strings.TrimRight(string(data[12:12+namesz]), "\x00")
		desc := data[nameEnd : nameEnd+descsz]
		switch {
		case name == "GNU" && typ == 3: // NT_GNU_BUILD_ID
			return hex.EncodeToString(desc), "gnu"
		case name == "Go" && typ == 4: // Go build id note
			id, kind = string(desc), "go"
		}
		if descEnd > uint64(len(data)) {
			break
		}
		data = data[descEnd:]
	}
	return id, kind
}
