package rootcause

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Change is one commit on the first-parent history: a merged pull request or a direct
// commit.
type Change struct {
	Commit string    `json:"commit"`
	PR     int       `json:"pr,omitempty"` // 0 when the commit names no pull request
	Author string    `json:"author"`       // "Name <email>" of the change's author
	Title  string    `json:"title"`
	Time   time.Time `json:"time"` // commit (merge) time
	Merge  bool      `json:"merge,omitempty"`
	Files  []string  `json:"files,omitempty"`
	// Functions are the functions whose code the diff touched (profiler names for Go).
	Functions []string `json:"functions,omitempty"`
}

// Repo is a local git repository. It runs the git command.
type Repo struct {
	Dir string
}

// emptyTree is git's well-known empty tree, the "parent" of a root commit.
const emptyTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

func (r Repo) git(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", r.Dir, "-c", "core.quotepath=off"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// Resolve turns a tag, branch or (abbreviated) hash into a full commit hash.
func (r Repo) Resolve(ctx context.Context, ref string) (string, error) {
	if ref == "" || strings.HasPrefix(ref, "-") {
		return "", fmt.Errorf("resolve %q: not a revision", ref)
	}
	out, err := r.git(ctx, "rev-parse", "--verify", "--quiet", ref+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("resolve %q: unknown revision", ref)
	}
	return strings.TrimSpace(string(out)), nil
}

var (
	mergeRE  = regexp.MustCompile(`^Merge pull request #(\d+) from (\S+)`)
	squashRE = regexp.MustCompile(`^(.*\S)\s*\(#(\d+)\)\s*$`)
)

// ParseSubject extracts the pull request number and title from a commit message
// (subject, then body): merge commits "Merge pull request #N from user/branch" take
// the title from the body's first line; squash commits end in "(#N)".
func ParseSubject(subject, body string) (pr int, title string) {
	if m := mergeRE.FindStringSubmatch(subject); m != nil {
		pr, _ = strconv.Atoi(m[1])
		for l := range strings.SplitSeq(body, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				return pr, l
			}
		}
		return pr, m[2]
	}
	if m := squashRE.FindStringSubmatch(subject); m != nil {
		pr, _ = strconv.Atoi(m[2])
		return pr, m[1]
	}
	return 0, subject
}

// Changes lists the first-parent commits in (from, to], oldest first, each with the
// files and functions its diff against its first parent touched (for a merge commit
// that is the whole pull request).
func (r Repo) Changes(ctx context.Context, from, to string) ([]Change, error) {
	toH, err := r.Resolve(ctx, to)
	if err != nil {
		return nil, fmt.Errorf("list changes: %w", err)
	}
	rng := toH
	if from != "" {
		fromH, err := r.Resolve(ctx, from)
		if err != nil {
			return nil, fmt.Errorf("list changes: %w", err)
		}
		rng = fromH + ".." + toH
	}
	out, err := r.git(ctx, "log", "--first-parent", "--reverse", "--format=%H%x00%P%x00%an <%ae>%x00%ct%x00%s%x00%b%x1e", rng)
	if err != nil {
		return nil, fmt.Errorf("list changes: %w", err)
	}
	var changes []Change
	for rec := range strings.SplitSeq(string(out), "\x1e") {
		rec = strings.TrimLeft(rec, "\n")
		if rec == "" {
			continue
		}
		f := strings.SplitN(rec, "\x00", 6)
		if len(f) != 6 {
			return nil, fmt.Errorf("list changes: bad log record %q", rec)
		}
		parents := strings.Fields(f[1])
		ts, _ := strconv.ParseInt(f[3], 10, 64)
		c := Change{Commit: f[0], Author: f[2], Time: time.Unix(ts, 0).UTC(), Merge: len(parents) > 1}
		c.PR, c.Title = ParseSubject(f[4], f[5])
		if c.Merge {
			// The merge commit's author is whoever pressed the button; the pull
			// request's author wrote its head commit.
			if a, err := r.git(ctx, "log", "-1", "--format=%an <%ae>", parents[1]); err == nil {
				c.Author = strings.TrimSpace(string(a))
			}
		}
		parent := emptyTree
		if len(parents) > 0 {
			parent = parents[0]
		}
		if err := r.touched(ctx, parent, c.Commit, &c); err != nil {
			return nil, fmt.Errorf("list changes: commit %s: %w", c.Commit[:min(12, len(c.Commit))], err)
		}
		changes = append(changes, c)
	}
	return changes, nil
}

// touched fills c.Files and c.Functions from the diff parent..commit.
func (r Repo) touched(ctx context.Context, parent, commit string, c *Change) error {
	out, err := r.git(ctx, "diff", "-U0", "--no-color", "--no-renames", "--no-ext-diff", parent, commit)
	if err != nil {
		return err
	}
	fds, err := ParseDiff(out)
	if err != nil {
		return err
	}
	module := ""
	if gm, err := r.git(ctx, "show", commit+":go.mod"); err == nil {
		module = ModulePath(gm)
	}
	var fns []string
	for _, fd := range fds {
		c.Files = append(c.Files, fd.Path())
		if strings.HasSuffix(fd.Path(), ".go") {
			var oldSrc, newSrc []byte
			if fd.Old != "" {
				oldSrc, _ = r.git(ctx, "show", parent+":"+fd.Old)
			}
			if fd.New != "" {
				newSrc, _ = r.git(ctx, "show", commit+":"+fd.New)
			}
			got, err := GoFunctionsTouched(module, fd, oldSrc, newSrc)
			if err == nil {
				fns = append(fns, got...)
				continue
			}
			// Unparsable Go falls through to the hunk headers.
		}
		fns = append(fns, fd.Contexts...)
	}
	slices.Sort(fns)
	c.Functions = slices.Compact(fns)
	return nil
}

// FileDiff is one file's changes: the line ranges removed from the old version and
// added to the new one (1-based, inclusive), and the function contexts of the hunks.
type FileDiff struct {
	Old, New string // paths; "" when the file was added / deleted
	OldLines []LineRange
	NewLines []LineRange
	Contexts []string
}

// Path is the file's path after the change (before it, for a deleted file).
func (d FileDiff) Path() string {
	if d.New != "" {
		return d.New
	}
	return d.Old
}

// LineRange is a range of lines, First..Last inclusive. A pure insertion is recorded
// on the old side as the empty range after line First-1 (Last = First-1).
type LineRange struct{ First, Last int }

var hunkRE = regexp.MustCompile(`^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$`)

// ParseDiff parses `git diff -U0` output.
func ParseDiff(diff []byte) ([]FileDiff, error) {
	var out []FileDiff
	var cur *FileDiff
	sc := bufio.NewScanner(bytes.NewReader(diff))
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "diff --git "):
			// Paths from the header; ---/+++ lines (absent for mode-only and binary
			// changes) refine them.
			out = append(out, FileDiff{})
			cur = &out[len(out)-1]
			if i := strings.LastIndex(l, " b/"); i > 0 {
				cur.Old = strings.TrimPrefix(l[len("diff --git "):i], "a/")
				cur.New = l[i+3:]
			}
		case cur == nil:
			continue
		case strings.HasPrefix(l, "--- "):
			cur.Old = diffPath(l[4:], "a/")
		case strings.HasPrefix(l, "+++ "):
			cur.New = diffPath(l[4:], "b/")
		case strings.HasPrefix(l, "@@ "):
			m := hunkRE.FindStringSubmatch(l)
			if m == nil {
				return nil, fmt.Errorf("parse diff line %d: bad hunk header %q", line, l)
			}
			os, oc := atoiDef(m[1], 0), atoiDef(m[2], 1)
			ns, nc := atoiDef(m[3], 0), atoiDef(m[4], 1)
			if oc > 0 {
				cur.OldLines = append(cur.OldLines, LineRange{os, os + oc - 1})
			} else {
				cur.OldLines = append(cur.OldLines, LineRange{os + 1, os})
			}
			if nc > 0 {
				cur.NewLines = append(cur.NewLines, LineRange{ns, ns + nc - 1})
			} else {
				cur.NewLines = append(cur.NewLines, LineRange{ns + 1, ns})
			}
			if name := contextFunction(m[5]); name != "" && !slices.Contains(cur.Contexts, name) {
				cur.Contexts = append(cur.Contexts, name)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse diff: %w", err)
	}
	return out, nil
}

func diffPath(s, prefix string) string {
	s = strings.TrimSuffix(s, "\t")
	if s == "/dev/null" {
		return ""
	}
	return strings.TrimPrefix(s, prefix)
}

func atoiDef(s string, def int) int {
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return n
}

var identRE = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_:.]*)\s*\(`)

// contextFunction extracts a function name from a hunk header's context, e.g.
// "static int parse_header(struct req *r)" → "parse_header", "def handle(self):" →
// "handle". It returns "" when the context names no call-like identifier.
func contextFunction(ctx string) string {
	ctx = strings.TrimSpace(ctx)
	if ctx == "" {
		return ""
	}
	for _, m := range identRE.FindAllStringSubmatch(ctx, -1) {
		switch m[1] {
		case "if", "for", "while", "switch", "return", "func", "sizeof":
			continue
		}
		return m[1]
	}
	return ""
}
