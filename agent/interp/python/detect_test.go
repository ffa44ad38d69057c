package python

import (
	"context"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fleetprof/fleetprof/internal/testenv"
)

// TestReadFileLauncher checks how a python3.X executable without
// _PyRuntime is classified: a launcher linked against libpython (seen at
// exec, before the loader maps the library) is not a Python process yet;
// any other such file is an unsupported one.
func TestReadFileLauncher(t *testing.T) {
	gcc := testenv.LookPath(t, "gcc", "gcc")
	dir := t.TempDir()
	src := filepath.Join(dir, "main.c")
	if err := os.WriteFile(src, []byte("int py_main(void);\nint main(void) { return py_main(); }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(dir, "lib.c")
	if err := os.WriteFile(lib, []byte("int py_main(void) { return 0; }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		lib  string // the library the executable links (-l)
		want error
	}{
		{"launcher", "python3.12", ErrNotPython},
		{"other", "other", ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			so := filepath.Join(dir, "lib"+tc.lib+".so")
			exe := filepath.Join(dir, tc.name, "python3.12")
			if err := os.MkdirAll(filepath.Dir(exe), 0o700); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{
				{"-shared", "-fPIC", "-o", so, lib},
				{"-o", exe, src, "-L" + dir, "-l" + tc.lib},
			} {
				if out, err := exec.CommandContext(context.Background(), gcc, args...).CombinedOutput(); err != nil {
					t.Fatalf("gcc %v: %v\n%s", args, err, out)
				}
			}
			ef, err := elf.Open(exe)
			if err != nil {
				t.Fatal(err)
			}
			defer ef.Close()
			_, err = readFile(ef, exe, 12)
			if !errors.Is(err, tc.want) {
				t.Fatalf("readFile: %v, want %v", err, tc.want)
			}
			t.Logf("%v", err)
		})
	}
}
