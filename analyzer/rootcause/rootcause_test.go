package rootcause

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/internal/testenv"
)

func TestParseSubject(t *testing.T) {
	tests := []struct {
		subject, body string
		pr            int
		title         string
	}{
		{"Merge pull request #123 from ada/cache", "Fix pricing cache\n\nmore", 123, "Fix pricing cache"},
		{"Merge pull request #7 from ada/x", "", 7, "ada/x"},
		{"Fix pricing cache (#123)", "", 123, "Fix pricing cache"},
		{"Fix pricing cache", "", 0, "Fix pricing cache"},
		{"Bump (#12) deps", "", 0, "Bump (#12) deps"},
	}
	for _, tt := range tests {
		pr, title := ParseSubject(tt.subject, tt.body)
		if pr != tt.pr || title != tt.title {
			t.Errorf("ParseSubject(%q) = %d, %q; want %d, %q", tt.subject, pr, title, tt.pr, tt.title)
		}
	}
}

const oldGo = `package pricing

// Engine quotes.
type Engine struct{}

// Quote is a method.
func (e *Engine) Quote(n int) int {
	s := 0
	return s
}

func helper() int {
	return 1
}

func (t Table[K]) Get(k K) int {
	return 0
}

type Table[K comparable] map[K]int
`

const newGo = `package pricing

// Engine quotes.
type Engine struct{}

// Quote is a method.
func (e *Engine) Quote(n int) int {
	s := 0
	s += n
	return s
}

func helperV2() int {
	return 1
}

func (t Table[K]) Get(k K) int {
	return 0
}

type Table[K comparable] map[K]int
`

func TestGoFunctionsTouched(t *testing.T) {
	tests := []struct {
		name   string
		module string
		fd     FileDiff
		want   []string
	}{
		{"insertion inside method", "billing", FileDiff{Old: "pricing/p.go", New: "pricing/p.go",
			OldLines: []LineRange{{9, 8}}, NewLines: []LineRange{{9, 9}}}, []string{"billing/pricing.(*Engine).Quote"}},
		{"rename counts both names", "billing", FileDiff{Old: "pricing/p.go", New: "pricing/p.go",
			OldLines: []LineRange{{12, 12}}, NewLines: []LineRange{{13, 13}}},
			[]string{"billing/pricing.helper", "billing/pricing.helperV2"}},
		{"generic receiver", "", FileDiff{Old: "pricing/p.go", New: "pricing/p.go",
			OldLines: []LineRange{{17, 17}}, NewLines: []LineRange{{18, 18}}},
			[]string{"pricing.Table[...].Get"}},
		{"between functions", "billing", FileDiff{Old: "pricing/p.go", New: "pricing/p.go",
			OldLines: []LineRange{{11, 10}}, NewLines: []LineRange{{12, 12}}}, nil},
		{"new file", "billing", FileDiff{New: "pricing/p.go", NewLines: []LineRange{{1, 22}}},
			[]string{"billing/pricing.(*Engine).Quote", "billing/pricing.helperV2", "billing/pricing.Table[...].Get"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := GoFunctionsTouched(tt.module, tt.fd, []byte(oldGo), []byte(newGo))
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			slices.Sort(tt.want)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := GoFunctionsTouched("", FileDiff{New: "x.go", NewLines: []LineRange{{1, 1}}}, nil, []byte("not go")); err == nil {
		t.Error("unparsable Go: no error")
	}
}

func TestParseDiff(t *testing.T) {
	diff := `diff --git a/a.go b/a.go
index 1..2 100644
--- a/a.go
+++ b/a.go
@@ -3,0 +4,2 @@ func (e *Engine) Quote(n int) int {
+x
+y
@@ -10 +12 @@ func helper() int {
-a
+b
diff --git a/src/parse.c b/src/parse.c
--- a/src/parse.c
+++ b/src/parse.c
@@ -20,2 +20,0 @@ static int parse_header(struct req *r)
-x
-y
diff --git a/gone.txt b/gone.txt
deleted file mode 100644
--- a/gone.txt
+++ /dev/null
@@ -1 +0,0 @@
-bye
diff --git a/bin.dat b/bin.dat
Binary files a/bin.dat and b/bin.dat differ
`
	got, err := ParseDiff([]byte(diff))
	if err != nil {
		t.Fatal(err)
	}
	want := []FileDiff{
		{Old: "a.go", New: "a.go", OldLines: []LineRange{{4, 3}, {10, 10}}, NewLines: []LineRange{{4, 5}, {12, 12}}, Contexts: []string{"Quote", "helper"}},
		{Old: "src/parse.c", New: "src/parse.c", OldLines: []LineRange{{20, 21}}, NewLines: []LineRange{{21, 20}}, Contexts: []string{"parse_header"}},
		{Old: "gone.txt", OldLines: []LineRange{{1, 1}}, NewLines: []LineRange{{1, 0}}},
		{Old: "bin.dat", New: "bin.dat"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseDiff:\n got %+v\nwant %+v", got, want)
	}
	if _, err := ParseDiff([]byte("diff --git a/x b/x\n@@ bogus @@\n")); err == nil {
		t.Error("bad hunk header: no error")
	}
}

func TestTokens(t *testing.T) {
	got := tokens("billing/pricing.(*HTTPEngine).QuoteFast")
	want := []string{"billing", "pricing", "http", "engine", "quote", "fast"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tokens = %q, want %q", got, want)
	}
}

func TestRank(t *testing.T) {
	const fn = "billing/pricing.(*Engine).Quote"
	t0 := time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)
	stacks := []StackDelta{
		{Frames: []string{"main", "billing/api.(*Handler).ServeQuote", fn}, Before: 100, After: 150},
		{Frames: []string{"main", "billing/api.(*Handler).ServeQuote", fn, "runtime.mallocgc"}, Before: 50, After: 60},
		{Frames: []string{"main", "billing/ledger.Post"}, Before: 850, After: 790},
	}
	culprit := Candidate{Change: Change{Commit: "c1", PR: 1, Title: "Add validation to Quote",
		Files: []string{"pricing/engine.go"}, Functions: []string{fn}}, DeployedAt: t0.Add(-10 * time.Minute)}
	caller := Candidate{Change: Change{Commit: "c2", PR: 2, Title: "Add tracing span to ServeQuote",
		Files: []string{"api/handler.go"}, Functions: []string{"billing/api.(*Handler).ServeQuote"}}, DeployedAt: t0.Add(-10 * time.Minute)}
	unrelated := Candidate{Change: Change{Commit: "c3", PR: 3, Title: "Tidy ledger",
		Files: []string{"ledger/post.go"}, Functions: []string{"billing/ledger.Post"}}, DeployedAt: t0.Add(-10 * time.Minute)}
	late := culprit
	late.Commit, late.PR, late.DeployedAt = "c4", 4, t0.Add(5*time.Hour)
	reg := Regression{Function: fn, ChangeTime: t0, Stacks: stacks}
	tests := []struct {
		name    string
		cands   []Candidate
		wantTop int // PR; 0 = None
	}{
		{"culprit beats caller and unrelated", []Candidate{unrelated, caller, culprit}, 1},
		{"only unrelated is none", []Candidate{unrelated}, 0},
		{"no candidates is none", nil, 0},
		{"deployed after the change loses", []Candidate{late, caller}, 0},
		{"caller alone is named", []Candidate{caller, unrelated}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Rank(reg, tt.cands, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			if !res.None {
				got = res.Top[0].PR
			}
			if got != tt.wantTop {
				t.Errorf("top PR %d (none=%v), want %d; ranking %+v", got, res.None, tt.wantTop, res.Top)
			}
			if res.None && res.RootCauses() != nil {
				t.Error("RootCauses() not nil for None")
			}
		})
	}
	if _, err := Rank(Regression{}, nil, DefaultConfig()); err == nil {
		t.Error("regression without function: no error")
	}
}

func TestParseVersionMap(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
		bad  bool
	}{
		{`{"v1":"abc","v2":"def"}`, map[string]string{"v1": "abc", "v2": "def"}, false},
		{"# comment\nv1 abc\n\nv2 def # trailing\n", map[string]string{"v1": "abc", "v2": "def"}, false},
		{"v1 abc extra\n", nil, true},
		{`{"v1":`, nil, true},
	}
	for _, tt := range tests {
		got, err := ParseVersionMap([]byte(tt.in))
		if (err != nil) != tt.bad || (!tt.bad && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("ParseVersionMap(%q) = %v, %v; want %v bad=%v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestRepoErrors(t *testing.T) {
	testenv.LookPath(t, "git", "git")
	r := Repo{Dir: t.TempDir()}
	if _, err := r.Changes(context.Background(), "v1", "v2"); err == nil {
		t.Error("changes in a non-repository: no error")
	}
	if _, err := r.Resolve(context.Background(), "--all"); err == nil {
		t.Error("option-like ref accepted")
	}
}
