package unwind

import (
	"debug/elf"
	"errors"
	"fmt"
	"math"
	"slices"
)

// ErrNoCFI means a file has no call-frame information: the walker uses
// frame pointers for it (Go binaries, for instance).
var ErrNoCFI = errors.New("no call frame information")

// ErrArch means the file is for an architecture without a walker.
var ErrArch = errors.New("unsupported architecture")

// ArchOf returns the walker registers for an ELF machine.
func ArchOf(m elf.Machine) (Arch, error) {
	switch m {
	case elf.EM_X86_64:
		return ArchAMD64, nil
	case elf.EM_AARCH64:
		return ArchARM64, nil
	}
	return Arch{}, fmt.Errorf("%w: %v", ErrArch, m)
}

// Build compiles the CFI of f into sorted, merged rows.
func Build(f *elf.File) ([]Row, error) {
	arch, err := ArchOf(f.Machine)
	if err != nil {
		return nil, err
	}
	addrSize := 8
	if f.Class == elf.ELFCLASS32 {
		addrSize = 4
	}
	var secs []frameSection
	for _, name := range []string{".eh_frame", ".debug_frame"} {
		s := f.Section(name)
		if s == nil || s.Type == elf.SHT_NOBITS || s.Size == 0 {
			continue
		}
		data, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		secs = append(secs, frameSection{data: data, addr: s.Addr, eh: name == ".eh_frame", addrSize: addrSize})
	}
	if len(secs) == 0 {
		return nil, ErrNoCFI
	}
	return buildSections(arch, secs...)
}

// buildSections compiles frame sections (.eh_frame first: FDEs of later
// sections only fill ranges earlier ones leave uncovered).
func buildSections(arch Arch, secs ...frameSection) ([]Row, error) {
	type span struct {
		f   fde
		sec frameSection
		pri int
	}
	var spans []span
	for i, s := range secs {
		fdes, err := parseFrames(s)
		if err != nil && len(fdes) == 0 {
			return nil, fmt.Errorf("parse frames: %w", err)
		}
		// A corrupt entry ends the section; what came before is kept.
		for _, f := range fdes {
			spans = append(spans, span{f, s, i})
		}
	}
	slices.SortStableFunc(spans, func(a, b span) int {
		if a.f.begin != b.f.begin {
			if a.f.begin < b.f.begin {
				return -1
			}
			return 1
		}
		return a.pri - b.pri
	})
	var rows []Row
	var coveredEnd uint64
	var errs []error
	for _, sp := range spans {
		f := sp.f
		if f.begin >= math.MaxUint32 {
			break
		}
		if f.begin < coveredEnd {
			continue // overlaps an FDE already taken (.debug_frame duplicate)
		}
		locs, err := fdeLocs(arch, f, sp.sec)
		if err != nil {
			errs = append(errs, fmt.Errorf("fde %#x: %w", f.begin, err))
			rows = append(rows, Row{PC: uint32(f.begin), Kind: KindUnsupported})
		} else {
			for _, l := range locs {
				if l.pc >= math.MaxUint32 || l.pc < f.begin {
					continue
				}
				rows = append(rows, toRow(arch, f.cie.signal, uint32(l.pc), l.st))
			}
		}
		coveredEnd = f.end
		if f.end < math.MaxUint32 {
			rows = append(rows, Row{PC: uint32(f.end), Kind: KindGap})
		}
	}
	if len(rows) == 0 {
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		return nil, ErrNoCFI
	}
	slices.SortStableFunc(rows, func(a, b Row) int { return cmpU32(a.PC, b.PC) })
	return compact(rows), nil
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compact keeps the last row of each pc (rows are in pc order, a gap row
// at an FDE's end precedes the next FDE's first row) and merges rows that
// repeat their predecessor's rule.
func compact(rows []Row) []Row {
	out := rows[:0]
	for _, r := range rows {
		if n := len(out); n > 0 && out[n-1].PC == r.PC {
			out[n-1] = r
			if n > 1 && out[n-2].sameRule(r) {
				out = out[:n-1]
			}
			continue
		}
		if n := len(out); n > 0 && out[n-1].sameRule(r) {
			continue
		}
		out = append(out, r)
	}
	return slices.Clip(out)
}
