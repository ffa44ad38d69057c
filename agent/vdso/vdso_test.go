package vdso

import (
	"bytes"
	"debug/elf"
	"errors"
	"strings"
	"testing"

	"github.com/fleetprof/fleetprof/internal/testenv"
)

func TestFind(t *testing.T) {
	tests := []struct {
		name       string
		maps       string
		start, end uint64
		err        error // wanted error (bad: any error)
		bad        bool
	}{
		{"vdso", "55d0c0a01000-55d0c0a02000 r-xp 00001000 fd:01 1234 /tmp/chain\n" +
			"7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]\n", 0x7ffd00000000, 0x7ffd00002000, nil, false},
		{"none", "55d0c0a01000-55d0c0a02000 r-xp 00001000 fd:01 1234 /tmp/chain\n" +
			"7ffd00003000-7ffd00004000 r--p 00000000 00:00 0 [vvar]\n", 0, 0, ErrNotMapped, false},
		{"file named [vdso]", "55d0c0a01000-55d0c0a02000 r-xp 00001000 fd:01 1234 /tmp/[vdso]\n", 0, 0, ErrNotMapped, false},
		{"bad range", "7ffd00002000-7ffd00000000 r-xp 00000000 00:00 0 [vdso]\n", 0, 0, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, end, err := Find([]byte(tt.maps))
			if tt.bad {
				if err == nil {
					t.Errorf("got %#x-%#x, want an error", start, end)
				}
				return
			}
			if !errors.Is(err, tt.err) || start != tt.start || end != tt.end {
				t.Errorf("got %#x-%#x %v, want %#x-%#x %v", start, end, err, tt.start, tt.end, tt.err)
			}
		})
	}
}

// TestImage reads this process's vDSO: an ELF shared object with the
// clock functions and the .eh_frame the unwinder compiles.
func TestImage(t *testing.T) {
	img, err := Image("/proc")
	if errors.Is(err, ErrNotMapped) {
		testenv.Skip(t, testenv.KernelFeature, "no [vdso] mapping in this process")
	}
	if err != nil {
		t.Fatal(err)
	}
	ef, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if ef.Type != elf.ET_DYN {
		t.Errorf("vDSO type %v, want ET_DYN", ef.Type)
	}
	syms, err := ef.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range syms {
		found = found || strings.HasSuffix(s.Name, "clock_gettime")
	}
	if !found {
		t.Errorf("no clock_gettime among %d vDSO symbols", len(syms))
	}
	if ef.Section(".eh_frame") == nil {
		t.Error("vDSO has no .eh_frame")
	}
}
