package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// Every command's --help exits 0 (the flags go to stderr), and `query --help`
// names its subcommands.
func TestEveryHelpExitsZero(t *testing.T) {
	for name := range commands {
		for _, args := range [][]string{{name, "--help"}, {name, "-h"}} {
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != 0 {
				t.Errorf("fleetprof %s: exit %d, want 0; stderr: %s", strings.Join(args, " "), code, errb.String())
			}
		}
	}
	for _, sub := range []string{"top", "flame", "diff"} {
		var out, errb bytes.Buffer
		if code := run([]string{"query", sub, "--help"}, &out, &errb); code != 0 {
			t.Errorf("query %s --help: exit %d", sub, code)
		}
	}
	var out, errb bytes.Buffer
	run([]string{"query", "--help"}, &out, &errb)
	for _, w := range []string{"top", "flame", "diff"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("query --help lacks %q: %s", w, out.String())
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "fleetprof ") || !strings.Contains(out.String(), "go1.") {
			t.Errorf("%v: exit %d, output %q", args, code, out.String())
		}
	}
}

func TestConnHint(t *testing.T) {
	refused := errors.New(`dial tcp 127.0.0.1:1: connect: connection refused`)
	got := withConnHint(withConnHint(refused)).Error()
	if strings.Count(got, "is fleetprof up running?") != 1 || !errors.Is(withConnHint(refused), refused) {
		t.Errorf("hint %q", got)
	}
	other := errors.New("bad flag")
	if withConnHint(other).Error() != other.Error() {
		t.Error("hint added to an unrelated error")
	}
}
