package sampler

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/fleetprof/fleetprof/internal/testenv"
)

const unprivilegedEnv = "FLEETPROF_SAMPLER_UNPRIVILEGED_CHILD"

// TestUnprivilegedErrorNamesCapabilities runs New as user nobody (no
// capabilities) in a child process and checks the error says what is missing.
func TestUnprivilegedErrorNamesCapabilities(t *testing.T) {
	if os.Getenv(unprivilegedEnv) == "1" {
		_, err := New(Config{})
		fmt.Printf("NEW ERROR: %v\n", err)
		fmt.Printf("UNAVAILABLE: %v\n", errors.Is(err, ErrUnavailable))
		return
	}
	testenv.Root(t, "starts a child as user nobody")
	// The test binary lives in a root-only directory; give nobody a copy.
	dir, err := os.MkdirTemp("", "sampler-unprivileged")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sampler.test")
	if err := copyFile(self, bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestUnprivilegedErrorNamesCapabilities$", "-test.count=1")
	cmd.Env = append(os.Environ(), unprivilegedEnv+"=1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	got := string(out)
	if !strings.Contains(got, "NEW ERROR: ") || strings.Contains(got, "NEW ERROR: <nil>") {
		t.Fatalf("New succeeded without privileges:\n%s", got)
	}
	if !strings.Contains(got, "missing capability CAP_BPF") {
		t.Errorf("error does not name the capabilities:\n%s", got)
	}
	if !strings.Contains(got, "UNAVAILABLE: true") {
		t.Errorf("error does not wrap ErrUnavailable:\n%s", got)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
