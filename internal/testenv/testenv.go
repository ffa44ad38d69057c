package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Reason says why a test cannot run.
type Reason string

// Reasons; see the package doc for which of them strict mode accepts.
const (
	KernelFeature Reason = "kernel lacks a feature"
	Short         Reason = "-short"
	Platform      Reason = "other platform"
	MissingTool   Reason = "missing tool"
	NotRoot       Reason = "not root"
	MissingData   Reason = "missing data"
	TooFewSamples Reason = "too few samples"
)

// allowed are the reasons a strict run accepts as skips.
var allowed = map[Reason]bool{KernelFeature: true, Short: true, Platform: true}

// Allowed reports whether strict mode accepts a skip for reason r.
func Allowed(r Reason) bool { return allowed[r] }

// Strict reports whether skips outside the allowlist fail: in CI (CI=true) or
// when FLEETPROF_STRICT_TESTS=1.
func Strict() bool {
	return os.Getenv("CI") == "true" || os.Getenv("FLEETPROF_STRICT_TESTS") == "1"
}

// Skip skips tb for reason r, or fails it in strict mode when r is not allowed.
func Skip(tb testing.TB, r Reason, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() && !Allowed(r) {
		tb.Fatalf("would skip (%s: %s), but skips for this reason are failures in CI (see internal/testenv)", r, msg)
	}
	tb.Skipf("%s: %s", r, msg)
}

// LookPath returns the path of the command name, or skips tb (MissingTool)
// naming the Debian package that provides it.
func LookPath(tb testing.TB, name, debianPackage string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Skip(tb, MissingTool, "%s not in PATH (Debian package %s; make setup installs it)", name, debianPackage)
	}
	return p
}

// Root skips tb (NotRoot) unless the test runs as root.
func Root(tb testing.TB, why string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		Skip(tb, NotRoot, "needs root: %s (CI runs as root)", why)
	}
}
