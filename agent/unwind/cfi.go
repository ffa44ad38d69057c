package unwind

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed wraps every error about CFI bytes that cannot be decoded.
var ErrMalformed = errors.New("malformed call frame information")

// Limits that keep a hostile or corrupt file from costing unbounded work.
const (
	// maxStateStack bounds DW_CFA_remember_state nesting; compilers use 1-2.
	maxStateStack = 64
	// maxRowsPerFDE bounds the rows one FDE may produce.
	maxRowsPerFDE = 1 << 16
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// reader decodes DWARF primitives from b, tracking the offset for errors and
// pc-relative pointers.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = malformed("%s at offset %#x", what, r.off)
	}
	r.off = len(r.b)
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) bytes(n int) []byte {
	if n < 0 || r.left() < n {
		r.fail("truncated")
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8() uint8 {
	b := r.bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u16() uint16 {
	b := r.bytes(2)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(b)
}

func (r *reader) u32() uint32 {
	b := r.bytes(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

func (r *reader) u64() uint64 {
	b := r.bytes(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func (r *reader) uleb() uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		c := r.u8()
		if r.err != nil {
			return 0
		}
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		if c&0x80 == 0 {
			return v
		}
	}
}

func (r *reader) sleb() int64 {
	var v int64
	var shift uint
	var c uint8
	for {
		c = r.u8()
		if r.err != nil {
			return 0
		}
		if shift < 64 {
			v |= int64(c&0x7f) << shift
		}
		shift += 7
		if c&0x80 == 0 {
			break
		}
	}
	if shift < 64 && c&0x40 != 0 {
		v |= -1 << shift
	}
	return v
}

func (r *reader) cstring() string {
	for i := r.off; i < len(r.b); i++ {
		if r.b[i] == 0 {
			s := string(r.b[r.off:i])
			r.off = i + 1
			return s
		}
	}
	r.fail("unterminated string")
	return ""
}

// Pointer encodings (DW_EH_PE_*).
const (
	peAbsptr  = 0x00
	peUleb    = 0x01
	peUdata2  = 0x02
	peUdata4  = 0x03
	peUdata8  = 0x04
	peSleb    = 0x09
	peSdata2  = 0x0a
	peSdata4  = 0x0b
	peSdata8  = 0x0c
	pePcrel   = 0x10
	peIndir   = 0x80
	peOmit    = 0xff
	peFmtMask = 0x0f
	peAppMask = 0x70
)

// pointer reads a pointer with encoding enc; base is the section's address
// (for pc-relative values). Indirect pointers are returned undereferenced:
// only the personality uses them, and it is skipped.
func (r *reader) pointer(enc uint8, base uint64, addrSize int) uint64 {
	if enc == peOmit {
		return 0
	}
	pos := base + uint64(r.off)
	var v uint64
	switch enc & peFmtMask {
	case peAbsptr:
		if addrSize == 4 {
			v = uint64(r.u32())
		} else {
			v = r.u64()
		}
	case peUleb:
		v = r.uleb()
	case peUdata2:
		v = uint64(r.u16())
	case peUdata4:
		v = uint64(r.u32())
	case peUdata8:
		v = r.u64()
	case peSleb:
		v = uint64(r.sleb())
	case peSdata2:
		v = uint64(int64(int16(r.u16())))
	case peSdata4:
		v = uint64(int64(int32(r.u32())))
	case peSdata8:
		v = r.u64()
	default:
		r.fail(fmt.Sprintf("pointer encoding %#x", enc))
		return 0
	}
	switch enc & peAppMask {
	case 0:
	case pePcrel:
		v += pos
	default:
		// textrel/datarel/funcrel/aligned: not used for FDE addresses by
		// any toolchain this walker targets.
		r.fail(fmt.Sprintf("pointer application %#x", enc&peAppMask))
	}
	return v
}

// cie is a decoded Common Information Entry.
type cie struct {
	codeAlign uint64
	dataAlign int64
	raReg     uint64
	fdeEnc    uint8
	hasAugLen bool // augmentation "z": FDEs carry augmentation data length
	signal    bool // augmentation "S": signal trampoline frames
	addrSize  int
	initial   []byte
}

// fde is a decoded Frame Description Entry.
type fde struct {
	cie        *cie
	begin, end uint64
	instr      []byte
}

// frameSection is .eh_frame (eh true) or .debug_frame.
type frameSection struct {
	data     []byte
	addr     uint64 // sh_addr, base of pc-relative pointers
	eh       bool
	addrSize int
}

// parseFrames decodes every FDE of a section.
func parseFrames(s frameSection) ([]fde, error) {
	cies := map[int]*cie{}
	var out []fde
	off := 0
	for off < len(s.data) {
		r := &reader{b: s.data, off: off}
		start := off
		length := uint64(r.u32())
		is64 := false
		if length == 0xffffffff {
			length = r.u64()
			is64 = true
		}
		if r.err != nil {
			return out, r.err
		}
		if length == 0 {
			if s.eh {
				break // terminator
			}
			off = r.off
			continue
		}
		if length > uint64(r.left()) {
			return out, malformed("entry at %#x: length %d past section end", start, length)
		}
		end := r.off + int(length)
		idPos := r.off
		var id uint64
		if is64 {
			id = r.u64()
		} else {
			id = uint64(r.u32())
		}
		entry := &reader{b: s.data[:end], off: r.off}
		isCIE := false
		cieOff := 0
		switch {
		case s.eh:
			isCIE = id == 0
			if !isCIE {
				if id > uint64(idPos) {
					return out, malformed("fde at %#x: cie pointer %#x before section", start, id)
				}
				cieOff = idPos - int(id)
			}
		default:
			isCIE = (!is64 && id == 0xffffffff) || (is64 && id == ^uint64(0))
			if !isCIE {
				if id >= uint64(len(s.data)) {
					return out, malformed("fde at %#x: cie offset %#x out of section", start, id)
				}
				cieOff = int(id)
			}
		}
		if isCIE {
			c, err := parseCIE(entry, s)
			if err != nil {
				return out, fmt.Errorf("cie at %#x: %w", start, err)
			}
			cies[start] = c
		} else {
			c, ok := cies[cieOff]
			if !ok {
				// CIEs normally precede their FDEs; parse out of order ones on demand.
				var err error
				c, err = parseCIEAt(s, cieOff)
				if err != nil {
					return out, fmt.Errorf("fde at %#x: %w", start, err)
				}
				cies[cieOff] = c
			}
			f, err := parseFDE(entry, s, c)
			if err != nil {
				return out, fmt.Errorf("fde at %#x: %w", start, err)
			}
			if f.end > f.begin {
				out = append(out, f)
			}
		}
		off = end
	}
	return out, nil
}

func parseCIEAt(s frameSection, off int) (*cie, error) {
	r := &reader{b: s.data, off: off}
	length := uint64(r.u32())
	is64 := length == 0xffffffff
	if is64 {
		length = r.u64()
	}
	if r.err != nil || length > uint64(r.left()) || length == 0 {
		return nil, malformed("cie at %#x: bad length", off)
	}
	end := r.off + int(length)
	var id uint64
	if is64 {
		id = r.u64()
	} else {
		id = uint64(r.u32())
	}
	if s.eh && id != 0 || !s.eh && id != 0xffffffff && id != ^uint64(0) {
		return nil, malformed("entry at %#x is not a cie", off)
	}
	return parseCIE(&reader{b: s.data[:end], off: r.off}, s)
}

func parseCIE(r *reader, s frameSection) (*cie, error) {
	c := &cie{addrSize: s.addrSize}
	version := r.u8()
	if version != 1 && version != 3 && version != 4 {
		return nil, malformed("cie version %d", version)
	}
	aug := r.cstring()
	if len(aug) >= 2 && aug[:2] == "eh" {
		r.bytes(c.addrSize)
		aug = aug[2:]
	}
	if version >= 4 {
		c.addrSize = int(r.u8())
		if c.addrSize != 4 && c.addrSize != 8 {
			return nil, malformed("cie address size %d", c.addrSize)
		}
		r.u8() // segment selector size
	}
	c.codeAlign = r.uleb()
	c.dataAlign = r.sleb()
	if version == 1 {
		c.raReg = uint64(r.u8())
	} else {
		c.raReg = r.uleb()
	}
	if len(aug) > 0 && aug[0] == 'z' {
		c.hasAugLen = true
		n := r.uleb()
		if n > uint64(r.left()) {
			return nil, malformed("cie augmentation length %d", n)
		}
		ar := &reader{b: r.b[:r.off+int(n)], off: r.off}
		for _, ch := range aug[1:] {
			switch ch {
			case 'L':
				ar.u8()
			case 'P':
				enc := ar.u8()
				ar.pointer(enc&^peIndir, s.addr, c.addrSize)
			case 'R':
				c.fdeEnc = ar.u8()
			case 'S':
				c.signal = true
			case 'B', 'G':
				// arm64 pointer-authentication key / MTE: no data.
			default:
				// Unknown augmentation: its data is covered by n.
			}
		}
		if ar.err != nil {
			return nil, ar.err
		}
		r.off += int(n)
	} else if aug != "" {
		return nil, malformed("cie augmentation %q", aug)
	}
	if r.err != nil {
		return nil, r.err
	}
	c.initial = r.b[r.off:]
	return c, nil
}

func parseFDE(r *reader, s frameSection, c *cie) (fde, error) {
	enc := c.fdeEnc
	if !s.eh {
		enc = peAbsptr
	}
	begin := r.pointer(enc, s.addr, c.addrSize)
	size := r.pointer(enc&peFmtMask, 0, c.addrSize)
	if c.hasAugLen {
		n := r.uleb()
		r.bytes(int(min(n, uint64(r.left()+1))))
	}
	if r.err != nil {
		return fde{}, r.err
	}
	end := begin + size
	if end < begin {
		return fde{}, malformed("fde range %#x+%#x overflows", begin, size)
	}
	return fde{cie: c, begin: begin, end: end, instr: r.b[r.off:]}, nil
}
