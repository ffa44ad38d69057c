package procmaps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/internal/testenv"
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

// TestQueryMatchesText checks the PROCMAP_QUERY read against the text of
// the same maps: the same executable mappings, devices formatted alike.
func TestQueryMatchesText(t *testing.T) {
	sleep := testenv.LookPath(t, "sleep", "coreutils")
	cmd := exec.CommandContext(context.Background(), sleep, "100")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	waitSleeping(t, cmd.Process.Pid)
	for _, pid := range []int{os.Getpid(), cmd.Process.Pid} {
		path := fmt.Sprintf("/proc/%d/maps", pid)
		fd, err := syscall.Open(path, syscall.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Both reads see the same maps: sleep's are complete once it
		// sleeps (libraries mapped), and this process maps no code
		// meanwhile.
		q, qerr := queryExec(fd)
		syscall.Close(fd)
		if errors.Is(qerr, errNoQuery) {
			testenv.Skip(t, testenv.KernelFeature, "PROCMAP_QUERY (Linux 6.11+)")
		}
		if qerr != nil {
			t.Fatal(qerr)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		all, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		text := slices.DeleteFunc(all, func(m Mapping) bool { return !m.Exec || m.Path == "[vsyscall]" })
		if !slices.Equal(q, text) {
			t.Errorf("pid %d: query %+v\ntext  %+v", pid, q, text)
		}
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

// waitSleeping waits until pid is in an interruptible sleep (state S).
func waitSleeping(t *testing.T, pid int) {
	t.Helper()
	for range 500 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && bytes.HasPrefix(b[i:], []byte(") S")) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d never slept", pid)
}

// TestReadText reads a maps file that does not answer PROCMAP_QUERY (a
// regular file, as on kernels before 6.11): the text is parsed.
func TestReadText(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(root+"/7", 0o755); err != nil {
		t.Fatal(err)
	}
	text := "1000-2000 r--p 00000000 fd:01 7 /x\n2000-3000 r-xp 00001000 fd:01 7 /x\n"
	if err := os.WriteFile(root+"/7/maps", []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Read(root, 7)
	if err != nil {
		t.Fatal(err)
	}
	want := []Mapping{
		{Start: 0x1000, End: 0x2000, Dev: "fd:01", Inode: 7, Path: "/x"},
		{Start: 0x2000, End: 0x3000, Offset: 0x1000, Exec: true, Dev: "fd:01", Inode: 7, Path: "/x"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}
