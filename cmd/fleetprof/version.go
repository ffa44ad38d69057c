package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

func init() {
	register("version", "print the version, commit and Go version of this binary", runVersion)
}

// version is set at link time (-ldflags "-X main.version=v1.2.3"); otherwise the
// module version or the commit recorded by the Go toolchain is shown.
var version = ""

func runVersion(_ context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] != "-h" && args[0] != "--help" {
		return usageError{fmt.Errorf("unexpected arguments %q", args)}
	}
	_, err := fmt.Fprintln(stdout, versionString())
	return err
}

func versionString() string {
	v, rev, dirty := version, "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	s := "fleetprof " + v
	if rev != "" {
		s += " commit " + rev[:min(12, len(rev))]
		if dirty {
			s += "+dirty"
		}
	}
	return s + " " + runtime.Version()
}
