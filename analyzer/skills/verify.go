package skills

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Verify builds and vets the module at dir, and runs its tests when it has any. It
// returns the commands that ran; an error means the code must not be proposed.
func Verify(ctx context.Context, dir string) ([]string, error) {
	cmds := [][]string{{"go", "build", "./..."}, {"go", "vet", "./..."}}
	if hasTests(dir) {
		cmds = append(cmds, []string{"go", "test", "-count=1", "./..."})
	}
	var ran []string
	for _, c := range cmds {
		cmd := exec.CommandContext(ctx, c[0], c[1:]...)
		cmd.Dir = dir
		// The module is verified on its own, outside any workspace.
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		ran = append(ran, strings.Join(c, " "))
		if err := cmd.Run(); err != nil {
			return ran, fmt.Errorf("%s: %w: %s", strings.Join(c, " "), err, strings.TrimSpace(out.String()))
		}
	}
	return ran, nil
}

func hasTests(dir string) bool {
	found := false
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || found {
			return filepath.SkipAll
		}
		if d.IsDir() && p != dir && (d.Name() == "testdata" || d.Name() == "vendor" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if strings.HasSuffix(p, "_test.go") {
			found = true
		}
		return nil
	})
	return found
}

// CopyTree copies the directory src to dst (regular files and directories; .git is
// skipped).
func CopyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o750)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p) //nolint:gosec // p comes from walking the checkout being copied
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm()) //nolint:gosec // target is dst joined with a path relative to src
	})
}

// VerifyEdits applies edits to a temporary copy of the module at dir and verifies it.
func VerifyEdits(ctx context.Context, dir string, edits []Edit) ([]string, error) {
	tmp, err := os.MkdirTemp("", "fleetprof-verify-")
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := CopyTree(dir, tmp); err != nil {
		return nil, fmt.Errorf("verify: copy module: %w", err)
	}
	for _, e := range edits {
		if err := os.WriteFile(filepath.Join(tmp, filepath.FromSlash(e.Path)), e.New, 0o600); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
	}
	return Verify(ctx, tmp)
}
