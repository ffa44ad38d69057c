package unwind

import (
	"bytes"
	"math"
)

// Arch names the registers the walker knows, in DWARF numbering.
type Arch struct {
	Name   string
	SP     uint64 // stack pointer
	FP     uint64 // frame pointer
	RA     uint64 // return-address column
	Signal bool   // the walker can follow signal frames (KindSignal)
	PLT    bool   // binutils' x86-64 PLT expression is recognized
	// LR: a return-address column without a rule means "still in the link
	// register" (arm64); otherwise it makes the row unsupported.
	LR bool
}

// Architectures Build supports.
var (
	ArchAMD64 = Arch{Name: "amd64", SP: 7, FP: 6, RA: 16, Signal: true, PLT: true}
	ArchARM64 = Arch{Name: "arm64", SP: 31, FP: 29, RA: 30, LR: true}
)

type ruleKind uint8

const (
	ruleUnset ruleKind = iota // no rule: same value (callee-saved) by convention
	ruleUndefined
	ruleSame
	ruleOffset    // saved at cfa + off
	ruleValOffset // value is cfa + off
	ruleRegister  // in another register
	ruleExpr      // saved at the address an expression computes
	ruleValExpr
)

type rule struct {
	kind ruleKind
	off  int64
}

type cfaRule struct {
	reg  uint64
	off  int64
	expr []byte // non-nil: DW_CFA_def_cfa_expression
}

type frameState struct {
	cfa    cfaRule
	fp, ra rule
}

// DW_CFA_* opcodes.
const (
	cfaAdvanceLoc        = 0x40
	cfaOffset            = 0x80
	cfaRestore           = 0xc0
	cfaNop               = 0x00
	cfaSetLoc            = 0x01
	cfaAdvanceLoc1       = 0x02
	cfaAdvanceLoc2       = 0x03
	cfaAdvanceLoc4       = 0x04
	cfaOffsetExtended    = 0x05
	cfaRestoreExtended   = 0x06
	cfaUndefined         = 0x07
	cfaSameValue         = 0x08
	cfaRegister          = 0x09
	cfaRememberState     = 0x0a
	cfaRestoreState      = 0x0b
	cfaDefCFA            = 0x0c
	cfaDefCFARegister    = 0x0d
	cfaDefCFAOffset      = 0x0e
	cfaDefCFAExpression  = 0x0f
	cfaExpression        = 0x10
	cfaOffsetExtendedSf  = 0x11
	cfaDefCFASf          = 0x12
	cfaDefCFAOffsetSf    = 0x13
	cfaValOffset         = 0x14
	cfaValOffsetSf       = 0x15
	cfaValExpression     = 0x16
	cfaGNUWindowSave     = 0x2d // also DW_CFA_AARCH64_negate_ra_state
	cfaGNUArgsSize       = 0x2e
	cfaGNUNegOffsetExtSf = 0x2f
)

// loc is the state from pc on.
type loc struct {
	pc uint64
	st frameState
}

// interpreter runs CFA programs for one arch.
type interpreter struct {
	arch Arch
	c    *cie
	init frameState // after the CIE's initial instructions (DW_CFA_restore)
}

func (ip *interpreter) setReg(st *frameState, reg uint64, r rule) {
	switch reg {
	case ip.arch.FP:
		st.fp = r
	case ip.arch.RA:
		st.ra = r
	}
}

func (ip *interpreter) restoreReg(st *frameState, reg uint64) {
	switch reg {
	case ip.arch.FP:
		st.fp = ip.init.fp
	case ip.arch.RA:
		st.ra = ip.init.ra
	}
}

// run executes prog from state st at pc, appending a loc at every location
// change to out when out is non-nil. It returns the final state.
func (ip *interpreter) run(prog []byte, st frameState, pc, end uint64, out *[]loc, sec frameSection) (frameState, error) {
	r := &reader{b: prog}
	var stack []frameState
	c := ip.c
	advance := func(delta uint64) {
		if out != nil && delta > 0 {
			*out = append(*out, loc{pc, st})
		}
		pc += delta * c.codeAlign
	}
	for r.left() > 0 && r.err == nil {
		if out != nil && len(*out) > maxRowsPerFDE {
			return st, malformed("more than %d rows in one fde", maxRowsPerFDE)
		}
		if pc >= end && out != nil {
			break
		}
		op := r.u8()
		switch op & 0xc0 {
		case cfaAdvanceLoc:
			advance(uint64(op & 0x3f))
			continue
		case cfaOffset:
			ip.setReg(&st, uint64(op&0x3f), rule{ruleOffset, int64(r.uleb()) * c.dataAlign})
			continue
		case cfaRestore:
			ip.restoreReg(&st, uint64(op&0x3f))
			continue
		}
		switch op {
		case cfaNop:
		case cfaSetLoc:
			v := r.pointer(c.fdeEnc, sec.addr, c.addrSize)
			if out != nil && v > pc {
				*out = append(*out, loc{pc, st})
			}
			pc = v
		case cfaAdvanceLoc1:
			advance(uint64(r.u8()))
		case cfaAdvanceLoc2:
			advance(uint64(r.u16()))
		case cfaAdvanceLoc4:
			advance(uint64(r.u32()))
		case cfaOffsetExtended:
			reg := r.uleb()
			ip.setReg(&st, reg, rule{ruleOffset, int64(r.uleb()) * c.dataAlign})
		case cfaOffsetExtendedSf:
			reg := r.uleb()
			ip.setReg(&st, reg, rule{ruleOffset, r.sleb() * c.dataAlign})
		case cfaGNUNegOffsetExtSf:
			reg := r.uleb()
			ip.setReg(&st, reg, rule{ruleOffset, -int64(r.uleb()) * c.dataAlign})
		case cfaValOffset:
			reg := r.uleb()
			ip.setReg(&st, reg, rule{ruleValOffset, int64(r.uleb()) * c.dataAlign})
		case cfaValOffsetSf:
			reg := r.uleb()
			ip.setReg(&st, reg, rule{ruleValOffset, r.sleb() * c.dataAlign})
		case cfaRestoreExtended:
			ip.restoreReg(&st, r.uleb())
		case cfaUndefined:
			ip.setReg(&st, r.uleb(), rule{kind: ruleUndefined})
		case cfaSameValue:
			ip.setReg(&st, r.uleb(), rule{kind: ruleSame})
		case cfaRegister:
			reg := r.uleb()
			r.uleb()
			ip.setReg(&st, reg, rule{kind: ruleRegister})
		case cfaRememberState:
			if len(stack) >= maxStateStack {
				return st, malformed("remember_state nested deeper than %d", maxStateStack)
			}
			stack = append(stack, st)
		case cfaRestoreState:
			if len(stack) == 0 {
				return st, malformed("restore_state without remember_state")
			}
			// Keep the CFA? No: DWARF restores every rule, the CFA included.
			st = stack[len(stack)-1]
			stack = stack[:len(stack)-1]
		case cfaDefCFA:
			st.cfa = cfaRule{reg: r.uleb(), off: int64(r.uleb())}
		case cfaDefCFASf:
			st.cfa = cfaRule{reg: r.uleb(), off: r.sleb() * c.dataAlign}
		case cfaDefCFARegister:
			st.cfa.reg = r.uleb()
			st.cfa.expr = nil
		case cfaDefCFAOffset:
			st.cfa.off = int64(r.uleb())
			st.cfa.expr = nil
		case cfaDefCFAOffsetSf:
			st.cfa.off = r.sleb() * c.dataAlign
			st.cfa.expr = nil
		case cfaDefCFAExpression:
			n := r.uleb()
			e := r.bytes(int(min(n, uint64(r.left()+1))))
			st.cfa = cfaRule{expr: append([]byte{}, e...)}
			if st.cfa.expr == nil {
				st.cfa.expr = []byte{}
			}
		case cfaExpression, cfaValExpression:
			reg := r.uleb()
			n := r.uleb()
			r.bytes(int(min(n, uint64(r.left()+1))))
			k := ruleExpr
			if op == cfaValExpression {
				k = ruleValExpr
			}
			ip.setReg(&st, reg, rule{kind: k})
		case cfaGNUArgsSize:
			r.uleb()
		case cfaGNUWindowSave:
		default:
			return st, malformed("unknown DW_CFA opcode %#x", op)
		}
	}
	if r.err != nil {
		return st, r.err
	}
	if out != nil && pc < end {
		*out = append(*out, loc{pc, st})
	}
	return st, nil
}

// fdeLocs returns the states of f from its start, one per location change.
func fdeLocs(arch Arch, f fde, sec frameSection) ([]loc, error) {
	ip := &interpreter{arch: arch, c: f.cie}
	init, err := ip.run(f.cie.initial, frameState{}, 0, 0, nil, sec)
	if err != nil {
		return nil, err
	}
	ip.init = init
	var out []loc
	if _, err := ip.run(f.instr, init, f.begin, f.end, &out, sec); err != nil {
		return nil, err
	}
	return out, nil
}

// toRow converts an interpreter state to a walker row.
func toRow(arch Arch, signal bool, pc uint32, st frameState) Row {
	row := Row{PC: pc}
	unsupported := Row{PC: pc, Kind: KindUnsupported}
	if signal {
		if arch.Signal {
			row.Kind = KindSignal
			return row
		}
		return unsupported
	}
	if st.ra.kind == ruleUndefined {
		row.Kind = KindStop
		return row
	}
	switch {
	case st.cfa.expr != nil:
		if off, thr, ok := matchPLT(st.cfa.expr); ok && arch.PLT {
			row.Kind, row.CFAOff, row.FPOff = KindPLT, int32(off), int16(thr)
		} else if off, ok := matchDerefFP(arch, st.cfa.expr); ok {
			row.Kind, row.CFAOff = KindCFADerefFP, int32(off)
		} else {
			return unsupported
		}
	case st.cfa.reg == arch.SP:
		row.Kind = KindCFASP
	case st.cfa.reg == arch.FP:
		row.Kind = KindCFAFP
	default:
		return unsupported
	}
	if row.Kind == KindCFASP || row.Kind == KindCFAFP {
		if st.cfa.off < math.MinInt32 || st.cfa.off > math.MaxInt32 {
			return unsupported
		}
		row.CFAOff = int32(st.cfa.off)
	}
	switch st.ra.kind {
	case ruleOffset:
		if st.ra.off < math.MinInt16 || st.ra.off > math.MaxInt16 {
			return unsupported
		}
		row.RARule, row.RAOff = RAAtCFA, int16(st.ra.off)
	case ruleUnset, ruleSame:
		if !arch.LR {
			return unsupported
		}
		row.RARule = RAInLR
	default:
		return unsupported
	}
	if st.fp.kind == ruleOffset && row.Kind != KindPLT {
		if st.fp.off < math.MinInt16 || st.fp.off > math.MaxInt16 {
			return unsupported
		}
		row.FPRule, row.FPOff = FPAtCFA, int16(st.fp.off)
	}
	return row
}

// DWARF expression opcodes used by the recognized patterns.
const (
	opDeref = 0x06
	opAnd   = 0x1a
	opPlus  = 0x22
	opShl   = 0x24
	opGe    = 0x2a
	opLit0  = 0x30
	opBreg0 = 0x70
)

// matchPLT recognizes binutils' .plt CFA expression
// "breg7 N; breg16 0; lit15; and; litK; ge; lit3; shl; plus":
// cfa = rsp + N + ((rip & 15) >= K ? 8 : 0).
func matchPLT(e []byte) (off int64, thr int64, ok bool) {
	r := &reader{b: e}
	if r.u8() != opBreg0+7 {
		return 0, 0, false
	}
	off = r.sleb()
	if r.u8() != opBreg0+16 || r.sleb() != 0 || r.u8() != opLit0+15 || r.u8() != opAnd {
		return 0, 0, false
	}
	k := r.u8()
	if k < opLit0 || k > opLit0+15 {
		return 0, 0, false
	}
	tail := r.bytes(4)
	if r.err != nil || !bytes.Equal(tail, []byte{opGe, opLit0 + 3, opShl, opPlus}) || r.left() != 0 {
		return 0, 0, false
	}
	if off < math.MinInt32 || off > math.MaxInt32 {
		return 0, 0, false
	}
	return off, int64(k - opLit0), true
}

// matchDerefFP recognizes "bregFP N; deref": cfa = *(fp + N), the CFA of a
// function that realigned its stack (gcc's main with AVX locals).
func matchDerefFP(arch Arch, e []byte) (int64, bool) {
	if arch.FP > 31 {
		return 0, false
	}
	r := &reader{b: e}
	if r.u8() != opBreg0+uint8(arch.FP) {
		return 0, false
	}
	off := r.sleb()
	if r.u8() != opDeref || r.err != nil || r.left() != 0 || off < math.MinInt32 || off > math.MaxInt32 {
		return 0, false
	}
	return off, true
}
