package unwind

import (
	"encoding/binary"
	"fmt"
)

// Kind is what a row says about the CFA (enum row_kind in bpf/native.bpf.h).
type Kind uint8

// Row kinds; see the package doc.
const (
	KindGap         Kind = 0
	KindCFASP       Kind = 1
	KindCFAFP       Kind = 2
	KindCFADerefFP  Kind = 3
	KindPLT         Kind = 4
	KindSignal      Kind = 5
	KindStop        Kind = 6
	KindUnsupported Kind = 7
)

var kindNames = [...]string{"gap", "cfa_sp", "cfa_fp", "cfa_deref_fp", "plt", "signal", "stop", "unsupported"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Frame-pointer and return-address rules (FP_* and RA_* in native.bpf.h).
const (
	FPSame  uint8 = 0 // the caller's fp is the current fp
	FPAtCFA uint8 = 1 // caller's fp = *(cfa + fp_off)
	RAAtCFA uint8 = 0 // return address = *(cfa + ra_off)
	RAInLR  uint8 = 1 // return address in the link register (arm64, first frame)
)

// RowSize is the size of one encoded row (struct unwind_row).
const RowSize = 16

// Row is one unwind rule, valid from PC up to the next row's PC.
type Row struct {
	PC     uint32
	CFAOff int32
	Kind   Kind
	FPRule uint8
	FPOff  int16
	RARule uint8
	RAOff  int16
}

func (r Row) String() string {
	return fmt.Sprintf("%#x %s cfa%+d fp(%d,%+d) ra(%d,%+d)", r.PC, r.Kind, r.CFAOff, r.FPRule, r.FPOff, r.RARule, r.RAOff)
}

// sameRule reports whether r and o differ at most in PC.
func (r Row) sameRule(o Row) bool {
	r.PC = o.PC
	return r == o
}

// AppendBinary appends the 16-byte little-endian encoding of r.
func (r Row) AppendBinary(b []byte) []byte {
	le := binary.LittleEndian
	b = le.AppendUint32(b, r.PC)
	b = le.AppendUint32(b, uint32(r.CFAOff))
	b = append(b, byte(r.Kind), r.FPRule)
	b = le.AppendUint16(b, uint16(r.FPOff))
	b = append(b, r.RARule, 0)
	return le.AppendUint16(b, uint16(r.RAOff))
}

// DecodeRow decodes one row encoded by AppendBinary.
func DecodeRow(b []byte) (Row, error) {
	if len(b) < RowSize {
		return Row{}, fmt.Errorf("decode row: %d bytes, want %d", len(b), RowSize)
	}
	le := binary.LittleEndian
	return Row{
		PC: le.Uint32(b), CFAOff: int32(le.Uint32(b[4:])), Kind: Kind(b[8]), FPRule: b[9],
		FPOff: int16(le.Uint16(b[10:])), RARule: b[12], RAOff: int16(le.Uint16(b[14:])),
	}, nil
}

// Lookup returns the row covering pc in sorted rows, as the walker finds it.
func Lookup(rows []Row, pc uint32) (Row, bool) {
	lo, hi := 0, len(rows)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if rows[mid].PC <= pc {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return Row{}, false
	}
	return rows[lo-1], true
}
