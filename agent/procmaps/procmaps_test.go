package procmaps

import (
	"os"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Mapping
		wantErr bool
	}{
		{
			name: "paths with spaces, pseudo-files and anonymous",
			in: `00400000-00401000 r--p 00000000 fd:01 1234                       /usr/bin/prog
00401000-00402000 r-xp 00001000 fd:01 1234                       /usr/bin/prog
7f0000000000-7f0000001000 r-xp 00002000 fd:01 99 /opt/my app/lib.so (deleted)
7f0000002000-7f0000003000 rwxp 00000000 00:00 0 
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]
`,
			want: []Mapping{
				{Start: 0x400000, End: 0x401000, Dev: "fd:01", Inode: 1234, Path: "/usr/bin/prog"},
				{Start: 0x401000, End: 0x402000, Offset: 0x1000, Exec: true, Dev: "fd:01", Inode: 1234, Path: "/usr/bin/prog"},
				{Start: 0x7f0000000000, End: 0x7f0000001000, Offset: 0x2000, Exec: true, Dev: "fd:01", Inode: 99, Path: "/opt/my app/lib.so (deleted)"},
				{Start: 0x7f0000002000, End: 0x7f0000003000, Exec: true, Dev: "00:00"},
				{Start: 0x7ffd00000000, End: 0x7ffd00002000, Exec: true, Dev: "00:00", Path: "[vdso]"},
			},
		},
		{name: "empty", in: "", want: []Mapping{}},
		{name: "too few fields", in: "00400000-00401000 r-xp 0\n", want: []Mapping{}, wantErr: true},
		{name: "bad range", in: "00400000 r-xp 00000000 fd:01 1 /x\n", want: []Mapping{}, wantErr: true},
		{name: "bad hex", in: "zz-00401000 r-xp 00000000 fd:01 1 /x\n", want: []Mapping{}, wantErr: true},
		{name: "end before start", in: "2000-1000 r-xp 00000000 fd:01 1 /x\n", want: []Mapping{}, wantErr: true},
		{
			name:    "a bad line among good ones is left out",
			in:      "bad line\n1000-2000 r-xp 00000000 fd:01 7 /x\n",
			want:    []Mapping{{Start: 0x1000, End: 0x2000, Exec: true, Dev: "fd:01", Inode: 7, Path: "/x"}},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestReadSelf reads this process's maps: its own executable is mapped
// executable and file-backed.
func TestReadSelf(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ms, err := Read("/proc", uint32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(ms, func(m Mapping) bool { return m.Exec && m.FileBacked() && m.Path == exe && m.Inode != 0 }) {
		t.Errorf("no executable mapping of %s in %+v", exe, ms)
	}
	if _, err := Read("/proc", 0); err == nil {
		t.Error("maps of pid 0 read without error")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("55d0c0a01000-55d0c0a02000 r-xp 00001000 fd:01 1234 /tmp/chain\n"))
	f.Add([]byte("x-y r-xp z fd 1 /\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, _ := Parse(b)
		for _, m := range ms {
			if m.End < m.Start {
				t.Fatalf("bad mapping %+v", m)
			}
		}
	})
}

// BenchmarkRead reads and parses this process's maps.
func BenchmarkRead(b *testing.B) {
	pid := uint32(os.Getpid())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Read("/proc", pid); err != nil {
			b.Fatal(err)
		}
	}
}
