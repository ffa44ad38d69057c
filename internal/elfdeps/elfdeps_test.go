package elfdeps

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/fleetprof/fleetprof/internal/testenv"
)

func TestClosure(t *testing.T) {
	if runtime.GOOS != "linux" {
		testenv.Skip(t, testenv.Platform, "ELF dynamic linking")
	}
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		testenv.Skip(t, testenv.MissingTool, "/bin/sh: %v", err)
	}
	interp, err := Interpreter(sh)
	if err != nil || interp == "" {
		t.Fatalf("Interpreter(%s) = %q, %v; want the dynamic loader", sh, interp, err)
	}
	libc, err := filepath.Glob("/lib/*/libc.so.6")
	if err != nil || len(libc) == 0 {
		testenv.Skip(t, testenv.MissingTool, "no /lib/*/libc.so.6 (not Debian multiarch)")
	}
	dir := filepath.Dir(libc[0])
	notELF := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		roots   []string
		dirs    []string
		want    []string // load paths that must be in the closure
		wantErr string
	}{
		{name: "shell", roots: []string{sh}, dirs: []string{dir}, want: []string{interp, dir + "/libc.so.6"}},
		{name: "library not in dirs", roots: []string{sh}, dirs: []string{t.TempDir()}, wantErr: "needs libc.so.6"},
		{name: "not elf", roots: []string{notELF}, dirs: []string{dir}, wantErr: "read elf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Closure(tt.roots, tt.dirs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Closure error = %v, want it to say %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				host, ok := got[w]
				if !ok {
					t.Errorf("closure %v lacks %s", got, w)
					continue
				}
				if fi, err := os.Lstat(host); err != nil || fi.Mode()&os.ModeSymlink != 0 {
					t.Errorf("%s → %s: want a resolved regular file (%v)", w, host, err)
				}
			}
		})
	}
}
