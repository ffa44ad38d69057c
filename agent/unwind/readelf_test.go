package unwind

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fleetprof/fleetprof/agent/vdso"
	"github.com/fleetprof/fleetprof/internal/testenv"
)

// readelfRow is one LOC line of readelf --debug-dump=frames-interp.
type readelfRow struct {
	pc           uint64
	cfa, rbp, ra string
}

// readelfFrames runs readelf on path and returns the .eh_frame FDE rows.
func readelfFrames(t *testing.T, path string) []readelfRow {
	t.Helper()
	readelf := testenv.LookPath(t, "readelf", "binutils")
	// readelf exits 1 over unrelated sections (e.g. missing debug links)
	// while printing the frames in full.
	out, err := exec.CommandContext(context.Background(), readelf, "--debug-dump=frames-interp", path).Output()
	if err != nil && !bytes.Contains(out, []byte("Contents of the .eh_frame")) {
		t.Fatalf("readelf %s: %v", path, err)
	}
	var rows []readelfRow
	var cols []string
	inFDE, inEH := false, false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Contents of the "):
			inEH = strings.Contains(line, ".eh_frame section")
			inFDE = false
		case len(f) >= 4 && f[3] == "FDE":
			inFDE = inEH
		case len(f) >= 4 && f[3] == "CIE", len(f) >= 2 && f[1] == "ZERO":
			inFDE = false
		case len(f) > 0 && f[0] == "LOC":
			cols = f
		case inFDE && len(f) == len(cols) && len(f) >= 2:
			pc, err := strconv.ParseUint(f[0], 16, 64)
			if err != nil {
				continue
			}
			r := readelfRow{pc: pc, cfa: f[1], rbp: "u", ra: "u"}
			for i, c := range cols {
				switch c {
				case "rbp":
					r.rbp = f[i]
				case "ra":
					r.ra = f[i]
				}
			}
			rows = append(rows, r)
		}
	}
	return rows
}

// checkAgainstReadelf compares the rows Build makes for path with readelf's
// interpretation of the same CFI at every location readelf lists.
func checkAgainstReadelf(t *testing.T, path string) {
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := Build(f)
	if err != nil {
		t.Fatal(err)
	}
	ref := readelfFrames(t, path)
	if len(ref) == 0 {
		t.Fatalf("readelf listed no FDE rows for %s", path)
	}
	bad := 0
	kinds := map[Kind]int{}
	for _, want := range ref {
		got, ok := Lookup(rows, uint32(want.pc))
		kinds[got.Kind]++
		if msg := mismatch(want, got, ok); msg != "" {
			if bad < 10 {
				t.Errorf("%s %#x: readelf cfa=%s rbp=%s ra=%s, row %v: %s", filepath.Base(path), want.pc, want.cfa, want.rbp, want.ra, got, msg)
			}
			bad++
		}
	}
	t.Logf("%s: %d rows for %d readelf locations (%d bytes), by kind %v; %d mismatches", path, len(rows), len(ref), len(rows)*RowSize, kinds, bad)
}

func mismatch(want readelfRow, got Row, ok bool) string {
	if !ok {
		return "no row"
	}
	if want.ra == "u" {
		if got.Kind != KindStop {
			return "want stop"
		}
		return ""
	}
	switch {
	case want.cfa == "exp":
		switch got.Kind {
		case KindPLT, KindCFADerefFP, KindSignal, KindUnsupported:
			return ""
		}
		return "want an expression kind"
	case strings.HasPrefix(want.cfa, "rsp+"), strings.HasPrefix(want.cfa, "rbp+"):
		wk := KindCFASP
		if want.cfa[:3] == "rbp" {
			wk = KindCFAFP
		}
		off, _ := strconv.ParseInt(want.cfa[4:], 10, 64)
		if got.Kind == KindSignal {
			return ""
		}
		if got.Kind != wk || int64(got.CFAOff) != off {
			return "cfa differs"
		}
	default:
		if got.Kind != KindUnsupported && got.Kind != KindSignal {
			return "want unsupported"
		}
		return ""
	}
	if want.ra != "c-8" || got.RARule != RAAtCFA || got.RAOff != -8 {
		return "ra differs"
	}
	if strings.HasPrefix(want.rbp, "c") {
		off, _ := strconv.ParseInt(want.rbp[1:], 10, 64)
		if got.FPRule != FPAtCFA || int64(got.FPOff) != off {
			return "rbp differs"
		}
	} else if got.FPRule != FPSame {
		return "rbp differs"
	}
	return ""
}

// TestAgainstReadelf checks Debian's libc, a gcc -O2 fixture (PIE and
// not) and the running kernel's vDSO against binutils' own CFI interpreter.
func TestAgainstReadelf(t *testing.T) {
	gcc := testenv.LookPath(t, "gcc", "gcc")
	dir := t.TempDir()
	var paths []string
	for _, pie := range []string{"-pie", "-no-pie"} {
		bin := filepath.Join(dir, "chain"+pie)
		out, err := exec.CommandContext(context.Background(), gcc, "-O2", pie, "-o", bin, "testdata/chain.c").CombinedOutput()
		if err != nil {
			t.Fatalf("gcc: %v\n%s", err, out)
		}
		paths = append(paths, bin)
	}
	libc, err := filepath.Glob("/usr/lib/*-linux-gnu/libc.so.6")
	if err != nil || len(libc) == 0 {
		testenv.Skip(t, testenv.MissingData, "no Debian libc.so.6")
	}
	paths = append(paths, libc...)
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) { checkAgainstReadelf(t, p) })
	}
	t.Run("vdso", func(t *testing.T) {
		img, err := vdso.Image("/proc")
		if errors.Is(err, vdso.ErrNotMapped) {
			testenv.Skip(t, testenv.KernelFeature, "no [vdso] mapping in this process")
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "vdso.so")
		if err := os.WriteFile(p, img, 0o600); err != nil {
			t.Fatal(err)
		}
		checkAgainstReadelf(t, p)
	})
}
