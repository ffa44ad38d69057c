package symbolize

import (
	"bytes"
	"cmp"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/fleetprof/fleetprof/internal/goname"
)

// Layout of the Go 1.20+ runtime tables (runtime/symtab.go, runtime2.go,
// symtabinl.go; unchanged through Go 1.26), 64-bit only.
const (
	goPclntabMagic120 = 0xfffffff1

	pcHeaderNfunc       = 8
	pcHeaderFuncnameOff = 32
	pcHeaderCuOff       = 40 // end of the function name table
	pcHeaderPctabOff    = 56
	pcHeaderPclnOff     = 64
	pcHeaderSize        = 72

	moduledataFuncnametab = 8   // []byte data pointer
	moduledataText        = 176 // runtime.text
	moduledataGofunc      = 320 // go:func.*, base of funcdata offsets
	moduledataMinSize     = 328

	funcNameOff   = 4
	funcNpcdata   = 28
	funcNfuncdata = 43
	funcPcdata    = 44 // followed by [npcdata]uint32 then [nfuncdata]uint32

	pcdataInlTreeIndex = 2
	funcdataInlTree    = 3
	inlinedCallSize    = 16
	inlinedCallNameOff = 4
	inlinedCallParent  = 8
)

var errNoModuledata = errors.New("go moduledata not found")

// goTables holds what parseGoPclntab extracts from a Go binary.
type goTables struct {
	syms []symbol
	inl  inlineTable
}

// parseGoPclntab reads function names and the inline tree (the tables the
// Go runtime uses for its own tracebacks) from a Go 1.20+ 64-bit binary.
// Unlike DWARF this survives -ldflags=-s -w and the stripping "go test"
// does. The funcdata base (gofunc) comes from the module data that the
// linker stores in .go.module (Go 1.26) or .noptrdata (older), found by its
// pointer to .gopclntab.
func parseGoPclntab(f *elf.File) (*goTables, error) {
	sec := f.Section(".gopclntab")
	if sec == nil {
		return nil, errors.New("no .gopclntab")
	}
	tab, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read .gopclntab: %w", err)
	}
	le := binary.LittleEndian
	if len(tab) < pcHeaderSize || le.Uint32(tab) != goPclntabMagic120 || tab[7] != 8 {
		return nil, errors.New("unsupported pclntab (need Go 1.20+, 64-bit)")
	}
	quantum := uint64(tab[6])
	nfunc := le.Uint64(tab[pcHeaderNfunc:])
	funcnameOff := le.Uint64(tab[pcHeaderFuncnameOff:])
	pctabOff := le.Uint64(tab[pcHeaderPctabOff:])
	pclnOff := le.Uint64(tab[pcHeaderPclnOff:])
	if funcnameOff >= uint64(len(tab)) || pctabOff >= uint64(len(tab)) || pclnOff+(nfunc+1)*8 > uint64(len(tab)) {
		return nil, errors.New("pclntab header out of range")
	}
	namesEnd := le.Uint64(tab[pcHeaderCuOff:])
	if namesEnd < funcnameOff || namesEnd > uint64(len(tab)) {
		namesEnd = uint64(len(tab))
	}
	md, err := findModuledata(f, sec.Addr, sec.Addr+funcnameOff)
	if err != nil {
		return nil, err
	}
	text := le.Uint64(md[moduledataText:])
	gofunc := le.Uint64(md[moduledataGofunc:])
	// Sanity check (PIE binaries of some Go versions leave these words to
	// dynamic relocations): runtime.text lies inside .text.
	ts := f.Section(".text")
	if ts == nil || text < ts.Addr || text >= ts.Addr+ts.Size {
		return nil, fmt.Errorf("go moduledata text %#x outside .text", text)
	}
	gofuncData, gofuncAddr := sectionAt(f, gofunc)

	r := &pclnReader{tab: tab, funcnames: tab[funcnameOff:namesEnd], pctab: tab[pctabOff:], quantum: quantum}
	ftab := tab[pclnOff:]
	out := &goTables{syms: make([]symbol, 0, nfunc)}
	var runs []pcRun
	var chainBuf []string
	var chains chainInterner
	for i := range nfunc {
		entry := text + uint64(le.Uint32(ftab[i*8:]))
		end := text + uint64(le.Uint32(ftab[(i+1)*8:]))
		funcOff := pclnOff + uint64(le.Uint32(ftab[i*8+4:]))
		if funcOff+funcPcdata > uint64(len(tab)) {
			return nil, fmt.Errorf("func %d out of range", i)
		}
		fn := tab[funcOff:]
		name := r.name(int32(le.Uint32(fn[funcNameOff:])))
		var size uint64
		if end > entry {
			size = end - entry
		}
		// cgo and race binaries list their C/C++ functions here too.
		mangled := strings.HasPrefix(name, "_Z") || strings.HasPrefix(name, "_R")
		out.syms = append(out.syms, symbol{addr: entry, size: size, name: name, mangled: mangled})

		npcdata := uint64(le.Uint32(fn[funcNpcdata:]))
		nfuncdata := uint64(fn[funcNfuncdata])
		if gofuncData == nil || npcdata <= pcdataInlTreeIndex || nfuncdata <= funcdataInlTree ||
			funcPcdata+4*(npcdata+nfuncdata) > uint64(len(fn)) {
			continue
		}
		pcdataOff := le.Uint32(fn[funcPcdata+4*pcdataInlTreeIndex:])
		inlOff := le.Uint32(fn[funcPcdata+4*npcdata+4*funcdataInlTree:])
		if pcdataOff == 0 || inlOff == ^uint32(0) {
			continue
		}
		treeStart := gofunc + uint64(inlOff) - gofuncAddr
		if gofunc+uint64(inlOff) < gofuncAddr || treeStart >= uint64(len(gofuncData)) {
			continue
		}
		tree := gofuncData[treeStart:]
		runs = r.decode(runs[:0], pcdataOff, entry)
		for _, run := range runs {
			if run.val < 0 || run.hi <= run.lo {
				continue
			}
			// Walk from the innermost inlined call out to the physical
			// function, as the runtime's inlineUnwinder does.
			chain := chainBuf[:0]
			for ix, n := run.val, 0; ix >= 0 && n < 64; n++ {
				off := uint64(ix) * inlinedCallSize
				if off+inlinedCallSize > uint64(len(tree)) {
					break
				}
				chain = append(chain, r.name(int32(le.Uint32(tree[off+inlinedCallNameOff:]))))
				parent := entry + uint64(int64(int32(le.Uint32(tree[off+inlinedCallParent:]))))
				ix = valueAt(runs, parent)
			}
			slices.Reverse(chain)
			chainBuf = chain
			chains.add(&out.inl, run.lo, run.hi, chain)
		}
	}
	// ftab is sorted by entry; keep the invariant explicit for lookups.
	slices.SortStableFunc(out.syms, func(a, b symbol) int { return cmp.Compare(a.addr, b.addr) })
	chains.finish(&out.inl)
	return out, nil
}

// findModuledata returns the bytes of runtime.firstmoduledata: the first
// pointer-aligned word equal to the pclntab address whose funcnametab
// pointer matches too.
func findModuledata(f *elf.File, pclntab, funcnametab uint64) ([]byte, error) {
	var want [16]byte
	binary.LittleEndian.PutUint64(want[:], pclntab)
	binary.LittleEndian.PutUint64(want[8:], funcnametab)
	for _, name := range []string{".go.module", ".noptrdata", ".data.rel.ro", ".data"} {
		s := f.Section(name)
		if s == nil || s.Type == elf.SHT_NOBITS {
			continue
		}
		d, err := s.Data()
		if err != nil {
			continue
		}
		for i := 0; i+moduledataMinSize <= len(d); i += 8 {
			j := bytes.Index(d[i:], want[:])
			if j < 0 {
				break
			}
			i += j
			if i%8 == 0 && i+moduledataMinSize <= len(d) {
				return d[i : i+moduledataMinSize], nil
			}
			i -= i % 8 // continue scanning after this unaligned match
		}
	}
	return nil, errNoModuledata
}

// sectionAt returns the contents and address of the allocated section
// holding addr.
func sectionAt(f *elf.File, addr uint64) ([]byte, uint64) {
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Type == elf.SHT_NOBITS || addr < s.Addr || addr >= s.Addr+s.Size {
			continue
		}
		d, err := s.Data()
		if err != nil {
			return nil, 0
		}
		return d, s.Addr
	}
	return nil, 0
}

type pclnReader struct {
	tab, funcnames, pctab []byte
	quantum               uint64
	names                 map[int32]string // by funcnametab offset
	arena                 string           // funcnames as a string
}

func (r *pclnReader) name(off int32) string {
	if off < 0 || int(off) >= len(r.funcnames) {
		return "?"
	}
	// Interned: inlined callees repeat the same few thousand names
	// hundreds of thousands of times in a big binary.
	if n, ok := r.names[off]; ok {
		return n
	}
	if r.arena == "" {
		// One allocation for all names instead of one each: the table
		// holds little but the names of functions this object defines.
		r.arena = string(r.funcnames)
	}
	b := r.arena[off:]
	if i := strings.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	n := goname.Print(b)
	if r.names == nil {
		r.names = map[int32]string{}
	}
	r.names[off] = n
	return n
}

// pcRun is one step of a pcvalue table: val holds on [lo, hi).
type pcRun struct {
	lo, hi uint64
	val    int32
}

// decode expands the pcvalue table at pctab[off] (runtime.step): values
// start at -1, each step adds a zig-zag delta and advances the pc.
func (r *pclnReader) decode(dst []pcRun, off uint32, entry uint64) []pcRun {
	if uint64(off) >= uint64(len(r.pctab)) {
		return dst
	}
	p := r.pctab[off:]
	pc, val := entry, int32(-1)
	for first := true; ; first = false {
		uv, n := binary.Uvarint(p)
		if n <= 0 || (uv == 0 && !first) {
			return dst
		}
		p = p[n:]
		val += int32(-(uint32(uv) & 1) ^ (uint32(uv) >> 1))
		pcd, n := binary.Uvarint(p)
		if n <= 0 {
			return dst
		}
		p = p[n:]
		lo := pc
		pc += pcd * r.quantum
		dst = append(dst, pcRun{lo: lo, hi: pc, val: val})
	}
}

// valueAt returns the value at pc of decoded runs (sorted, contiguous).
func valueAt(runs []pcRun, pc uint64) int32 {
	i, found := slices.BinarySearchFunc(runs, pc, func(r pcRun, pc uint64) int { return cmp.Compare(r.lo, pc) })
	if !found {
		i--
	}
	if i < 0 || pc >= runs[i].hi {
		return -1
	}
	return runs[i].val
}
