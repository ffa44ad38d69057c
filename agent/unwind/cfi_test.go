package unwind

import (
	"encoding/binary"
	"reflect"
	"testing"
)

// ehBuilder assembles an .eh_frame with one CIE (augmentation "zR" or
// "zRS", absolute udata4 FDE pointers) and FDEs.
type ehBuilder struct {
	b      []byte
	cieOff int
}

func uleb(v uint64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func sleb(v int64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func (e *ehBuilder) entry(body []byte) {
	e.b = binary.LittleEndian.AppendUint32(e.b, uint32(len(body)))
	e.b = append(e.b, body...)
}

func (e *ehBuilder) cie(aug string, codeAlign uint64, dataAlign int64, ra uint64, initial []byte) {
	e.cieOff = len(e.b)
	body := cat([]byte{0, 0, 0, 0, 1}, []byte(aug), []byte{0}, uleb(codeAlign), sleb(dataAlign), uleb(ra), uleb(1), []byte{peUdata4}, initial)
	e.entry(body)
}

func (e *ehBuilder) fde(begin, size uint32, instr []byte) {
	idPos := len(e.b) + 4
	body := binary.LittleEndian.AppendUint32(nil, uint32(idPos-e.cieOff))
	body = binary.LittleEndian.AppendUint32(body, begin)
	body = binary.LittleEndian.AppendUint32(body, size)
	body = append(body, 0) // augmentation data length
	body = append(body, instr...)
	e.entry(body)
}

// x86-64 CIE: cfa = rsp+8, ra at cfa-8.
var x86CIE = cat([]byte{cfaDefCFA}, uleb(7), uleb(8), []byte{cfaOffset | 16}, uleb(1))

// arm64 CIE: cfa = sp+0, ra in x30.
var arm64CIE = cat([]byte{cfaDefCFA}, uleb(31), uleb(0))

func TestBuildSections(t *testing.T) {
	pltExpr := []byte{opBreg0 + 7, 8, opBreg0 + 16, 0, opLit0 + 15, opAnd, opLit0 + 11, opGe, opLit0 + 3, opShl, opPlus}
	tests := []struct {
		name string
		arch Arch
		aug  string
		cie  []byte
		fdes [][3]any // begin, size, instructions
		want []Row
	}{
		{
			name: "x86 push rbp; mov rsp,rbp; leave",
			arch: ArchAMD64, aug: "zR", cie: x86CIE,
			fdes: [][3]any{{uint32(0x1000), uint32(0x20), cat(
				[]byte{cfaAdvanceLoc | 1, cfaDefCFAOffset}, uleb(16), []byte{cfaOffset | 6}, uleb(2),
				[]byte{cfaAdvanceLoc | 3, cfaDefCFARegister}, uleb(6),
				[]byte{cfaAdvanceLoc | 10, cfaDefCFA}, uleb(7), uleb(8),
			)}},
			want: []Row{
				{PC: 0x1000, Kind: KindCFASP, CFAOff: 8, RAOff: -8},
				{PC: 0x1001, Kind: KindCFASP, CFAOff: 16, RAOff: -8, FPRule: FPAtCFA, FPOff: -16},
				{PC: 0x1004, Kind: KindCFAFP, CFAOff: 16, RAOff: -8, FPRule: FPAtCFA, FPOff: -16},
				{PC: 0x100e, Kind: KindCFASP, CFAOff: 8, RAOff: -8, FPRule: FPAtCFA, FPOff: -16},
				{PC: 0x1020, Kind: KindGap},
			},
		},
		{
			name: "x86 remember/restore state around an early return, merged rows",
			arch: ArchAMD64, aug: "zR", cie: x86CIE,
			fdes: [][3]any{{uint32(0x2000), uint32(0x30), cat(
				[]byte{cfaAdvanceLoc | 1, cfaDefCFAOffset}, uleb(16),
				[]byte{cfaAdvanceLoc | 4, cfaRememberState, cfaDefCFAOffset}, uleb(8),
				[]byte{cfaAdvanceLoc | 1, cfaRestoreState},
				[]byte{cfaAdvanceLoc | 2, cfaDefCFAOffset}, uleb(16), // same rule: merged
			)}, {uint32(0x2030), uint32(0x10), nil}},
			want: []Row{
				{PC: 0x2000, Kind: KindCFASP, CFAOff: 8, RAOff: -8},
				{PC: 0x2001, Kind: KindCFASP, CFAOff: 16, RAOff: -8},
				{PC: 0x2005, Kind: KindCFASP, CFAOff: 8, RAOff: -8},
				{PC: 0x2006, Kind: KindCFASP, CFAOff: 16, RAOff: -8},
				{PC: 0x2030, Kind: KindCFASP, CFAOff: 8, RAOff: -8},
				{PC: 0x2040, Kind: KindGap},
			},
		},
		{
			name: "x86 PLT expression, _start stop rule, realigned main, cfa in r10",
			arch: ArchAMD64, aug: "zR", cie: x86CIE,
			fdes: [][3]any{
				{uint32(0x1000), uint32(0x20), cat([]byte{cfaDefCFAOffset}, uleb(16), []byte{cfaAdvanceLoc | 6, cfaDefCFAOffset}, uleb(24),
					[]byte{cfaAdvanceLoc | 10, cfaDefCFAExpression}, uleb(uint64(len(pltExpr))), pltExpr)},
				{uint32(0x1100), uint32(0x10), cat([]byte{cfaUndefined}, uleb(16))},
				{uint32(0x1200), uint32(0x40), cat([]byte{cfaAdvanceLoc | 4, cfaDefCFA}, uleb(10), uleb(0),
					[]byte{cfaAdvanceLoc | 4, cfaDefCFAExpression, 3, opBreg0 + 6}, sleb(-8), []byte{opDeref})},
			},
			want: []Row{
				{PC: 0x1000, Kind: KindCFASP, CFAOff: 16, RAOff: -8},
				{PC: 0x1006, Kind: KindCFASP, CFAOff: 24, RAOff: -8},
				{PC: 0x1010, Kind: KindPLT, CFAOff: 8, FPOff: 11, RAOff: -8},
				{PC: 0x1020, Kind: KindGap},
				{PC: 0x1100, Kind: KindStop},
				{PC: 0x1110, Kind: KindGap},
				{PC: 0x1200, Kind: KindCFASP, CFAOff: 8, RAOff: -8},
				{PC: 0x1204, Kind: KindUnsupported},
				{PC: 0x1208, Kind: KindCFADerefFP, CFAOff: -8, RAOff: -8},
				{PC: 0x1240, Kind: KindGap},
			},
		},
		{
			name: "x86 signal trampoline",
			arch: ArchAMD64, aug: "zRS", cie: x86CIE,
			fdes: [][3]any{{uint32(0x3000), uint32(0x10), []byte{cfaDefCFAExpression, 3, opBreg0 + 7, 0x20, opDeref}}},
			want: []Row{{PC: 0x3000, Kind: KindSignal}, {PC: 0x3010, Kind: KindGap}},
		},
		{
			name: "arm64 stp x29, x30, [sp, -32]!; mov x29, sp",
			arch: ArchARM64, aug: "zR", cie: arm64CIE,
			fdes: [][3]any{{uint32(0x4000), uint32(0x40), cat(
				[]byte{cfaAdvanceLoc | 1, cfaDefCFAOffset}, uleb(32), []byte{cfaOffset | 29}, uleb(4), []byte{cfaOffset | 30}, uleb(3),
				[]byte{cfaAdvanceLoc | 1, cfaDefCFARegister}, uleb(29),
				[]byte{cfaAdvanceLoc | 8, cfaRestore | 30, cfaRestore | 29, cfaDefCFA}, uleb(31), uleb(0),
			)}},
			want: []Row{
				{PC: 0x4000, Kind: KindCFASP, RARule: RAInLR},
				{PC: 0x4004, Kind: KindCFASP, CFAOff: 32, FPRule: FPAtCFA, FPOff: -32, RAOff: -24},
				{PC: 0x4008, Kind: KindCFAFP, CFAOff: 32, FPRule: FPAtCFA, FPOff: -32, RAOff: -24},
				{PC: 0x4028, Kind: KindCFASP, RARule: RAInLR},
				{PC: 0x4040, Kind: KindGap},
			},
		},
		{
			name: "arm64 signal frame is not followed",
			arch: ArchARM64, aug: "zRS", cie: arm64CIE,
			fdes: [][3]any{{uint32(0x5000), uint32(0x8), nil}},
			want: []Row{{PC: 0x5000, Kind: KindUnsupported}, {PC: 0x5008, Kind: KindGap}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e ehBuilder
			align := int64(-8)
			codeAlign := uint64(1)
			ra := tc.arch.RA
			if tc.arch.Name == "arm64" {
				codeAlign = 4
			}
			e.cie(tc.aug, codeAlign, align, ra, tc.cie)
			for _, f := range tc.fdes {
				instr, _ := f[2].([]byte)
				e.fde(f[0].(uint32), f[1].(uint32), instr)
			}
			got, err := buildSections(tc.arch, frameSection{data: e.b, eh: true, addrSize: 8})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("rows:\n%v\nwant:\n%v", got, tc.want)
			}
			for _, r := range got {
				back, err := DecodeRow(r.AppendBinary(nil))
				if err != nil || back != r {
					t.Errorf("row %v round trip: %v %v", r, back, err)
				}
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	var e ehBuilder
	e.cie("zR", 1, -8, 16, x86CIE)
	e.fde(0x1000, 0x10, []byte{cfaRestoreState})
	good := len(e.b)
	e.fde(0x2000, 0x10, []byte{0x3f}) // unknown opcode
	rows, err := buildSections(ArchAMD64, frameSection{data: e.b, eh: true, addrSize: 8})
	if err != nil {
		t.Fatalf("a bad FDE must not lose the others: %v", err)
	}
	want := []Row{{PC: 0x1000, Kind: KindUnsupported}, {PC: 0x1010, Kind: KindGap}, {PC: 0x2000, Kind: KindUnsupported}, {PC: 0x2010, Kind: KindGap}}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows %v, want %v", rows, want)
	}
	for _, cut := range []int{3, 9, good - 3} {
		if _, err := buildSections(ArchAMD64, frameSection{data: e.b[:cut], eh: true, addrSize: 8}); err == nil {
			t.Errorf("truncated at %d: no error", cut)
		}
	}
}

func FuzzBuildSections(f *testing.F) {
	var e ehBuilder
	e.cie("zR", 1, -8, 16, x86CIE)
	e.fde(0x1000, 0x20, cat([]byte{cfaAdvanceLoc | 1, cfaDefCFAOffset}, uleb(16), []byte{cfaOffset | 6}, uleb(2), []byte{cfaRememberState, cfaAdvanceLoc2, 1, 0, cfaRestoreState}))
	f.Add(e.b, true)
	f.Add(e.b, false)
	f.Fuzz(func(t *testing.T, data []byte, eh bool) {
		for _, arch := range []Arch{ArchAMD64, ArchARM64} {
			rows, err := buildSections(arch, frameSection{data: data, eh: eh, addrSize: 8})
			if err != nil {
				continue
			}
			for i := 1; i < len(rows); i++ {
				if rows[i].PC <= rows[i-1].PC {
					t.Fatalf("rows not strictly sorted at %d: %v %v", i, rows[i-1], rows[i])
				}
				if rows[i].sameRule(rows[i-1]) {
					t.Fatalf("unmerged rows at %d: %v", i, rows[i])
				}
			}
		}
	})
}
