package skills

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeModule(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/m\n\ngo 1.26.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "m.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestTransforms(t *testing.T) {
	for _, tc := range []struct {
		name, transform, fn, src string
		want, notWant            []string
	}{
		{"hoist MustCompile", "hoist-regexp", "F", `package m

import "regexp"

func F(s string) bool {
	re := regexp.MustCompile("^a+$")
	return re.MatchString(s)
}
`, []string{"var fRe = regexp.MustCompile(\"^a+$\")", "re := fRe"}, nil},
		{"hoist Compile", "hoist-regexp", "F", `package m

import "regexp"

func F(s string) (bool, error) {
	re, err := regexp.Compile(` + "`x[0-9]`" + `)
	if err != nil {
		return false, err
	}
	return re.MatchString(s), nil
}
`, []string{"var fRe = regexp.MustCompile(`x[0-9]`)", "re, err := fRe, error(nil)"}, nil},
		{"no hoist of variable pattern", "hoist-regexp", "F", `package m

import "regexp"

func F(p, s string) bool { return regexp.MustCompile(p).MatchString(s) }
`, nil, []string{"fRe"}},
		{"no hoist of invalid pattern", "hoist-regexp", "F", `package m

import "regexp"

func F(s string) bool { return regexp.MustCompile("(").MatchString(s) }
`, nil, []string{"fRe"}},
		{"sprintf int", "sprintf-itoa", "(*T).F", `package m

import "fmt"

type T struct{}

func (*T) F(n int) string { return fmt.Sprintf("%d", n) }
`, []string{"strconv.Itoa(n)", `import "strconv"`}, []string{"fmt"}},
		{"package main", "sprintf-itoa", "main:F", `package main

import "fmt"

func F(n int) string { return fmt.Sprintf("%d", n) }

func main() { println(F(1)) }
`, []string{"strconv.Itoa(n)"}, nil},
		{"sprintf int64 untouched", "sprintf-itoa", "F", `package m

import "fmt"

func F(n int64) string { return fmt.Sprintf("%d", n) }
`, nil, []string{"strconv"}},
		{"prealloc range", "prealloc-slice", "F", `package m

func F(xs []int) []int {
	var out []int
	for _, x := range xs {
		out = append(out, x*2)
	}
	return out
}
`, []string{"out := make([]int, 0, len(xs))"}, nil},
		{"prealloc for", "prealloc-slice", "F", `package m

func F(n int) []string {
	out := []string{}
	for i := 0; i < n; i++ {
		out = append(out, "x")
	}
	return out
}
`, []string{"out := make([]string, 0, max(n, 0))"}, nil},
		{"no prealloc when conditional", "prealloc-slice", "F", `package m

func F(xs []int) []int {
	var out []int
	for _, x := range xs {
		if x > 0 {
			out = append(out, x)
		}
	}
	return out
}
`, nil, []string{"make("}},
		{"builder", "string-builder", "F", `package m

func F(parts []string) string {
	s := ""
	for _, p := range parts {
		s += p + ","
	}
	return s
}
`, []string{"var sb strings.Builder", "sb.WriteString(p)", `sb.WriteString(",")`, "s := sb.String()"}, []string{"s +="}},
		{"builder keeps prefix", "string-builder", "F", `package m

func F(parts []string) string {
	s := "head:"
	for _, p := range parts {
		s += p
	}
	return s
}
`, []string{"var sb strings.Builder", "s += sb.String()"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeModule(t, tc.src)
			var ts []Transform
			for _, tr := range Transforms {
				if tr.Name == tc.transform {
					ts = append(ts, tr)
				}
			}
			fn := "example.com/m." + tc.fn
			if name, ok := strings.CutPrefix(tc.fn, "main:"); ok {
				fn = "main." + name
			}
			edits, _, err := ApplyTransforms(context.Background(), dir, fn, ts)
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.want) == 0 {
				if len(edits) != 0 {
					t.Fatalf("unexpected edit:\n%s", edits[0].New)
				}
				return
			}
			if len(edits) != 1 {
				t.Fatalf("got %d edits, want 1", len(edits))
			}
			got := string(edits[0].New)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in:\n%s", w, got)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(got, w) {
					t.Errorf("unexpected %q in:\n%s", w, got)
				}
			}
			// Every rewrite must still build and vet.
			if err := os.WriteFile(filepath.Join(dir, edits[0].Path), edits[0].New, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(context.Background(), dir); err != nil {
				t.Fatalf("rewrite does not verify: %v\n%s", err, got)
			}
		})
	}
}

// A package with a type error elsewhere is still rewritten where types are known, and
// verification rejects what does not build.
func TestTransformWithTypeErrorElsewhere(t *testing.T) {
	dir := writeModule(t, `package m

import "fmt"

func F(n int) string { return fmt.Sprintf("%d", n) }

func G() int { return undefinedThing }
`)
	edits, _, err := ApplyTransforms(context.Background(), dir, "example.com/m.F", TransformsFor("go-fmt-sprintf-hot"))
	if err != nil || len(edits) != 1 {
		t.Fatalf("edits %d, err %v", len(edits), err)
	}
	if _, err := VerifyEdits(context.Background(), dir, edits); err == nil {
		t.Fatal("a module that does not build verified")
	}
}
