package symbolize

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/agent/procmaps"
)

func TestExecMappings(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []mapping
		wantErr bool
	}{
		{
			name: "executable only, paths with spaces and specials",
			in: `00400000-00401000 r--p 00000000 fd:01 1234                       /usr/bin/prog
00401000-00402000 r-xp 00001000 fd:01 1234                       /usr/bin/prog
7f0000000000-7f0000001000 r-xp 00002000 fd:01 99 /opt/my app/lib.so (deleted)
7f0000002000-7f0000003000 rwxp 00000000 00:00 0 
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]
`,
			want: []mapping{
				{start: 0x401000, end: 0x402000, offset: 0x1000, inode: 1234, dev: "fd:01", path: "/usr/bin/prog"},
				{start: 0x7f0000000000, end: 0x7f0000001000, offset: 0x2000, inode: 99, dev: "fd:01", path: "/opt/my app/lib.so (deleted)"},
				{start: 0x7f0000002000, end: 0x7f0000003000, dev: "00:00"},
				{start: 0x7ffd00000000, end: 0x7ffd00002000, dev: "00:00", path: "[vdso]"},
			},
		},
		{name: "empty", in: "", want: nil},
		{name: "too few fields", in: "00400000-00401000 r-xp 0\n", wantErr: true},
		{name: "bad range", in: "00400000 r-xp 00000000 fd:01 1 /x\n", wantErr: true},
		{name: "bad hex", in: "zz-00401000 r-xp 00000000 fd:01 1 /x\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			all, err := procmaps.Parse([]byte(tt.in))
			got := execMappings(all)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseKallsyms(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		lookups map[uint64]string // "" means not found
		wantErr error
	}{
		{
			name: "text symbols, aliases, modules",
			in: `ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81000100 t helper
ffffffff81000200 D some_data
ffffffff81000300 W weak_fn
ffffffffc0000000 t mod_fn	[mymod]
`,
			lookups: map[uint64]string{
				0xffffffff80ffffff: "",
				0xffffffff81000000: "_stext_[k]",
				0xffffffff81000150: "helper_[k]",
				0xffffffff81000250: "helper_[k]", // data symbols are skipped
				0xffffffff81000300: "weak_fn_[k]",
				0xffffffffc0000010: "mod_fn_[k]",
			},
		},
		{
			name:    "kptr_restrict",
			in:      "0000000000000000 T _stext\n0000000000000000 t helper\n",
			wantErr: errKptrRestrict,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := parseKallsyms(strings.NewReader(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			for addr, want := range tt.lookups {
				got, ok := k.lookup(addr)
				if ok != (want != "") || got != want {
					t.Errorf("lookup(%#x) = %q, %v; want %q", addr, got, ok, want)
				}
			}
		})
	}
}

func TestParseNotes(t *testing.T) {
	note := func(name string, typ uint32, desc []byte) []byte {
		b := binary.LittleEndian.AppendUint32(nil, uint32(len(name)+1))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(desc)))
		b = binary.LittleEndian.AppendUint32(b, typ)
		n := append([]byte(name), 0)
		for len(n)%4 != 0 {
			n = append(n, 0)
		}
		b = append(b, n...)
		d := slices.Clone(desc)
		for len(d)%4 != 0 {
			d = append(d, 0)
		}
		return append(b, d...)
	}
	tests := []struct {
		name     string
		in       []byte
		id, kind string
	}{
		{"gnu", note("GNU", 3, []byte{0xde, 0xad, 0xbe, 0xef, 0x01}), "deadbeef01", "gnu"},
		{"go then gnu", append(note("Go", 4, []byte("abc/def")), note("GNU", 3, []byte{0xab})...), "ab", "gnu"},
		{"go only", note("Go", 4, []byte("abc/def")), "abc/def", "go"},
		{"other", note("stapsdt", 3, []byte{1}), "", ""},
		{"truncated", note("GNU", 3, []byte{1, 2, 3, 4})[:14], "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, kind := parseNotes(tt.in, binary.LittleEndian)
			if id != tt.id || kind != tt.kind {
				t.Errorf("parseNotes = %q, %q; want %q, %q", id, kind, tt.id, tt.kind)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"zero is valid", Config{}, ""},
		{"negative max files", Config{MaxFiles: -1}, "max files -1 is negative"},
		{"negative grace", Config{ExitGrace: -time.Second}, "exit grace -1s is negative"},
		{"negative refresh", Config{MinRefresh: -1}, "min refresh"},
		{"negative dwarf", Config{MaxDWARFBytes: -1}, "max dwarf bytes"},
		{"empty debug dir", Config{DebugDirs: []string{""}}, "debug dir 0 is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Validate() = %v, want %q", err, tt.wantErr)
			}
			_, err = New(tt.cfg)
			if (err == nil) != (tt.wantErr == "") {
				t.Errorf("New() = %v, want %q", err, tt.wantErr)
			}
		})
	}
	var c Config
	c.setDefaults()
	if c.ProcRoot != "/proc" || c.MaxFiles != defaultMaxFiles || !slices.Equal(c.DebugDirs, []string{"/usr/lib/debug"}) {
		t.Errorf("defaults = %+v", c)
	}
}

func TestUnknownFrame(t *testing.T) {
	tests := []struct {
		file string
		off  uint64
		want string
	}{
		{"/usr/lib/x86_64-linux-gnu/libc.so.6", 0x2a1c0, "[unknown] libc.so.6+0x2a1c0"},
		{"/tmp/prog (deleted)", 0x10, "[unknown] prog+0x10"},
		{"", 0x10, "[unknown] anon+0x10"},
	}
	for _, tt := range tests {
		if got := unknownFrame(tt.file, tt.off); got != tt.want {
			t.Errorf("unknownFrame(%q, %#x) = %q, want %q", tt.file, tt.off, got, tt.want)
		}
	}
}

func TestObjectLookup(t *testing.T) {
	o := &object{syms: []symbol{
		{addr: 0x1000, size: 0x10, name: "sized"},
		{addr: 0x1020, name: "unsized"},
		{addr: 0x1100, size: 0x20, name: "_ZN3foo3barEi", mangled: true},
		{addr: 0x1200, size: 0x20, name: "_ZZZ_not_mangled", mangled: true},
	}}
	tests := []struct {
		addr uint64
		want string // "" means no symbol
	}{
		{0xfff, ""},
		{0x1000, "sized"},
		{0x100f, "sized"},
		{0x1010, ""}, // past sized's end, before the next symbol
		{0x1020, "unsized"},
		{0x10ff, "unsized"}, // no size: runs up to the next symbol
		{0x1105, "foo::bar(int)"},
		{0x1105, "foo::bar(int)"}, // demangled once, cached
		{0x1201, "_ZZZ_not_mangled"},
		{0x1220, ""},
	}
	for _, tt := range tests {
		s, ok := o.lookup(tt.addr)
		got := ""
		if ok {
			got = s.name
		}
		if got != tt.want {
			t.Errorf("lookup(%#x) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestFlattenCalls(t *testing.T) {
	// f inlines g over [10,50); g inlines h over [20,30) and [40,45).
	calls := []inlineCall{
		{lo: 10, hi: 50, name: "g"},
		{lo: 20, hi: 30, name: "h"},
		{lo: 40, hi: 45, name: "h"},
	}
	got := flattenCalls(nil, calls)
	want := []inlineRun{
		{lo: 10, hi: 20, chain: []string{"g"}},
		{lo: 20, hi: 30, chain: []string{"g", "h"}},
		{lo: 30, hi: 40, chain: []string{"g"}},
		{lo: 40, hi: 45, chain: []string{"g", "h"}},
		{lo: 45, hi: 50, chain: []string{"g"}},
	}
	if !slices.EqualFunc(got, want, func(a, b inlineRun) bool {
		return a.lo == b.lo && a.hi == b.hi && slices.Equal(a.chain, b.chain)
	}) {
		t.Errorf("flattenCalls =\n%+v\nwant\n%+v", got, want)
	}
	o := &object{inl: compactInlines(got)}
	for _, tc := range []struct {
		addr uint64
		want []string
	}{{5, nil}, {10, []string{"g"}}, {25, []string{"g", "h"}}, {44, []string{"g", "h"}}, {49, []string{"g"}}, {50, nil}} {
		if got := o.inlines(nil, tc.addr); !slices.Equal(got, tc.want) {
			t.Errorf("inlines(%d) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// TestGoSymFallback covers the debug/gosym path used when the pclntab
// layout is not the one parseGoPclntab knows.
func TestGoSymFallback(t *testing.T) {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pc := reflect.ValueOf(TestGoSymFallback).Pointer()
	want := runtime.FuncForPC(pc).Name()
	for _, c := range appendGoSymbols(nil, f) {
		if c.addr == uint64(pc) {
			if c.name != want {
				t.Errorf("gosym name %q, want %q", c.name, want)
			}
			return
		}
	}
	t.Errorf("gosym has no function at %#x (%s)", pc, want)
}
