package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/skills"
	"github.com/fleetprof/fleetprof/analyzer/tools"
)

// RecordSchema is the schema of resolution.json.
const RecordSchema = "fleetprof.resolution/v1"

// DefaultAuthor signs the generated commits.
const DefaultAuthor = "fleetprof-bot <fleetprof-bot@users.noreply.fleetprof.dev>"

// Config configures a pipeline run.
type Config struct {
	Tools  *tools.Toolbox
	Skills *skills.Registry // default skills.Default()
	// Out is the output directory; each finding gets a subdirectory named by its id.
	Out string
	// Branch, when set, also creates a local branch with the patch in the repository
	// (suffixed with the finding id when a run produces several patches).
	Branch string
	// Author signs the patch commits ("Name <email>"); default DefaultAuthor.
	Author string
	// Logins maps commit authors' emails or names to the logins PR bodies mention
	// (LoadLogins); without an entry a GitHub noreply address gives the login.
	Logins map[string]string
	// Now dates the commits; default time.Now.
	Now func() time.Time
	// Selection is the window opportunities are ranked over.
	Selection tools.SelectionInput
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Skills == nil {
		c.Skills = skills.Default()
	}
	if c.Author == "" {
		c.Author = DefaultAuthor
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

var authorRE = regexp.MustCompile(`^[^<>]+ <[^<>]+>$`)

// Validate reports the first invalid field.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.Tools == nil {
		return errors.New("no tool layer")
	}
	if c.Out == "" {
		return errors.New("no output directory")
	}
	if !authorRE.MatchString(c.Author) {
		return fmt.Errorf("author %q: want \"Name <email>\"", c.Author)
	}
	if c.Branch != "" && (strings.HasPrefix(c.Branch, "-") || strings.ContainsAny(c.Branch, " ~^:?*[\\")) {
		return fmt.Errorf("branch %q: not a valid branch name", c.Branch)
	}
	return nil
}

// Request says which findings to resolve: one by id, or the top ones of a kind.
type Request struct {
	FindingID string
	Kind      findings.Kind
	Limit     int // default 5
}

// Result is the outcome for one finding.
type Result struct {
	Finding    findings.Finding   `json:"finding"`
	Resolution *skills.Resolution `json:"resolution,omitempty"`
	Dir        string             `json:"dir,omitempty"`
	Patch      string             `json:"patch,omitempty"` // file name in Dir
	Branch     string             `json:"branch,omitempty"`
	Skipped    string             `json:"skipped,omitempty"` // why no resolution
	Warnings   []string           `json:"warnings,omitempty"`
}

// Run resolves the requested findings and writes the PR bot output.
func Run(ctx context.Context, cfg Config, req Request) ([]Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline config: %w", err)
	}
	cfg = cfg.WithDefaults()
	fs, err := Select(ctx, cfg, req)
	if err != nil {
		return nil, err
	}
	var out []Result
	patches := 0
	for _, f := range fs {
		c, warns := Gather(ctx, cfg.Tools, f)
		c.Logins = cfg.Logins
		res, skipped := Resolve(ctx, cfg.Skills, c)
		if res != nil && len(res.Edits) > 0 {
			patches++
		}
		out = append(out, Result{Finding: f, Resolution: res, Skipped: skipped, Warnings: warns})
	}
	for i := range out {
		if out[i].Resolution == nil {
			continue
		}
		branch := cfg.Branch
		if branch != "" && patches > 1 {
			branch += "-" + out[i].Finding.ID
		}
		if err := Write(ctx, cfg, &out[i], branch); err != nil {
			return out, err
		}
	}
	return out, nil
}

// Select returns the findings a request names.
func Select(ctx context.Context, cfg Config, req Request) ([]findings.Finding, error) {
	tb := cfg.Tools
	if req.Limit <= 0 {
		req.Limit = 5
	}
	switch {
	case req.FindingID != "":
		f, err := tb.Finding(ctx, req.FindingID)
		if err != nil {
			return nil, fmt.Errorf("select finding: %w", err)
		}
		return []findings.Finding{*f}, nil
	case req.Kind == findings.KindOpportunity:
		ops, err := tb.Opportunities(ctx, tools.OpportunitiesInput{Selection: cfg.Selection, Limit: req.Limit})
		if err != nil {
			return nil, fmt.Errorf("select opportunities: %w", err)
		}
		return ops.Findings, nil
	case req.Kind == findings.KindRegression:
		fs, err := tb.Findings(ctx, tools.FindingsInput{Service: cfg.Selection.Service, Kind: string(findings.KindRegression), Limit: req.Limit})
		if err != nil {
			return nil, fmt.Errorf("select regressions: %w", err)
		}
		return fs.Findings, nil
	}
	return nil, fmt.Errorf("select: want a finding id or kind %q or %q", findings.KindOpportunity, findings.KindRegression)
}

// Gather is the context phase: everything the skills need about f, collected through
// the tool layer. Tools that fail (no checkout, aggregator without data) leave their
// part empty and add a warning.
func Gather(ctx context.Context, tb *tools.Toolbox, f findings.Finding) (*skills.Context, []string) {
	cfg := tb.Config()
	c := &skills.Context{Finding: f, RepoDir: cfg.Repo, ModuleDir: cfg.Module}
	var warns []string
	warn := func(what string, err error) {
		if !errors.Is(err, tools.ErrNoRepo) {
			warns = append(warns, fmt.Sprintf("%s: %v", what, err))
		}
	}
	if loc, err := tb.FindFunction(ctx, tools.CodeInput{Function: f.Function}); err == nil {
		c.Locations = loc.Locations
	} else {
		warn("find function", err)
	}
	if cl, err := tb.Callers(ctx, tools.CodeInput{Function: f.Function}); err == nil {
		c.Callers = cl.Locations[:min(len(cl.Locations), 20)]
	} else {
		warn("callers", err)
	}
	switch f.Kind {
	case findings.KindRegression:
		if !f.ChangeTime.IsZero() && !f.WindowStart.IsZero() && !f.WindowEnd.IsZero() {
			base := tools.SelectionInput{Service: f.Service, From: f.WindowStart.Format(time.RFC3339Nano), To: f.ChangeTime.Format(time.RFC3339Nano)}
			cmp := tools.SelectionInput{Service: f.Service, From: f.ChangeTime.Format(time.RFC3339Nano), To: f.WindowEnd.Format(time.RFC3339Nano)}
			if d, err := tb.Diff(ctx, tools.DiffInput{Base: base, Cmp: cmp, Movers: 10}); err == nil {
				c.Diff = d
			} else {
				warn("flame diff", err)
			}
		}
		if cfg.Repo != "" {
			for _, rc := range f.RootCauses {
				h, err := tb.History(ctx, tools.HistoryInput{From: rc.Commit + "^", To: rc.Commit})
				if err != nil {
					warn("history "+rc.Commit, err)
					continue
				}
				c.Changes = append(c.Changes, h.Changes...)
			}
		}
	case findings.KindOpportunity:
		if cfg.Repo != "" {
			if h, err := tb.History(ctx, tools.HistoryInput{Function: f.Function, Limit: 3}); err == nil {
				c.Changes = h.Changes
			} else {
				warn("history", err)
			}
		}
	}
	return c, warns
}

// Resolve applies the first skill that resolves c; skipped says why none did.
func Resolve(ctx context.Context, reg *skills.Registry, c *skills.Context) (res *skills.Resolution, skipped string) {
	var reasons []string
	for _, s := range reg.For(c) {
		r, err := s.Resolve(ctx, c)
		if err == nil {
			return r, ""
		}
		reasons = append(reasons, s.Doc().Name+": "+err.Error())
	}
	if len(reasons) == 0 {
		return nil, "no skill applies to this finding"
	}
	return nil, strings.Join(reasons, "; ")
}

// record is resolution.json.
type record struct {
	Schema     string             `json:"schema"`
	Finding    findings.Finding   `json:"finding"`
	Resolution *skills.Resolution `json:"resolution"`
	Patch      string             `json:"patch,omitempty"`
	Branch     string             `json:"branch,omitempty"`
	Warnings   []string           `json:"warnings,omitempty"`
}

// Write publishes r's resolution into cfg.Out/<finding id>/ (and a branch when set).
func Write(ctx context.Context, cfg Config, r *Result, branch string) error {
	cfg = cfg.WithDefaults()
	res := r.Resolution
	dir := filepath.Join(cfg.Out, r.Finding.ID)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("write resolution: %w", err)
	}
	r.Dir = dir
	if len(res.Edits) > 0 || res.RevertCommit != "" {
		patch, err := FormatPatch(ctx, cfg, res, branch)
		switch {
		case errors.Is(err, errNoRevert):
			// The revert does not apply on HEAD: the body's command stays the advice.
			r.Warnings = append(r.Warnings, err.Error())
		case err != nil:
			return fmt.Errorf("write resolution %s: %w", r.Finding.ID, err)
		default:
			r.Patch = "0001-" + slug(res.Title) + ".patch"
			if err := os.WriteFile(filepath.Join(dir, r.Patch), patch, 0o600); err != nil {
				return fmt.Errorf("write resolution: %w", err)
			}
			r.Branch = branch
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "title.txt"), []byte(res.Title+"\n"), 0o600); err != nil {
		return fmt.Errorf("write resolution: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "body.md"), []byte(res.Body), 0o600); err != nil {
		return fmt.Errorf("write resolution: %w", err)
	}
	b, err := json.MarshalIndent(record{Schema: RecordSchema, Finding: r.Finding, Resolution: res, Patch: r.Patch, Branch: r.Branch, Warnings: r.Warnings}, "", "  ")
	if err != nil {
		return fmt.Errorf("write resolution: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "resolution.json"), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write resolution: %w", err)
	}
	return nil
}

// FormatPatch commits the resolution's edits on top of the repository's HEAD in a
// scratch clone and returns `git format-patch` output; with branch set, the commit
// also becomes that local branch in the repository.
func FormatPatch(ctx context.Context, cfg Config, res *skills.Resolution, branch string) ([]byte, error) {
	cfg = cfg.WithDefaults()
	tc := cfg.Tools.Config()
	if tc.Repo == "" {
		return nil, fmt.Errorf("format patch: %w", tools.ErrNoRepo)
	}
	repo, err := filepath.Abs(tc.Repo)
	if err != nil {
		return nil, fmt.Errorf("format patch: %w", err)
	}
	mod, err := filepath.Abs(tc.Module)
	if err != nil {
		return nil, fmt.Errorf("format patch: %w", err)
	}
	modRel, err := filepath.Rel(repo, mod)
	if err != nil || strings.HasPrefix(modRel, "..") {
		return nil, fmt.Errorf("format patch: module %s is outside the repository %s", mod, repo)
	}
	tmp, err := os.MkdirTemp("", "fleetprof-patch-")
	if err != nil {
		return nil, fmt.Errorf("format patch: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := git(ctx, "", nil, "clone", "--quiet", "--shared", repo, tmp); err != nil {
		return nil, fmt.Errorf("format patch: %w", err)
	}
	name, email := splitAuthor(cfg.Author)
	date := cfg.Now().UTC().Format(time.RFC3339)
	env := []string{"GIT_AUTHOR_NAME=" + name, "GIT_AUTHOR_EMAIL=" + email, "GIT_COMMITTER_NAME=" + name,
		"GIT_COMMITTER_EMAIL=" + email, "GIT_AUTHOR_DATE=" + date, "GIT_COMMITTER_DATE=" + date}
	if len(res.Edits) == 0 && res.RevertCommit != "" {
		args := []string{"revert", "--no-edit"}
		if res.RevertMainline > 0 {
			args = append(args, "-m", fmt.Sprint(res.RevertMainline))
		}
		if _, err := git(ctx, tmp, env, append(args, res.RevertCommit)...); err != nil {
			return nil, fmt.Errorf("%w: %w", errNoRevert, err)
		}
		return finishPatch(ctx, tmp, repo, branch)
	}
	for _, e := range res.Edits {
		p := filepath.Join(tmp, modRel, filepath.FromSlash(e.Path))
		if err := os.WriteFile(p, e.New, 0o600); err != nil {
			return nil, fmt.Errorf("format patch: %w", err)
		}
		if _, err := git(ctx, tmp, nil, "add", "--", filepath.Join(modRel, filepath.FromSlash(e.Path))); err != nil {
			return nil, fmt.Errorf("format patch: %w", err)
		}
	}
	msg := res.CommitMessage
	if msg == "" {
		msg = res.Title + "\n"
	}
	if _, err := git(ctx, tmp, env, "commit", "--quiet", "--no-verify", "-m", msg); err != nil {
		return nil, fmt.Errorf("format patch: %w", err)
	}
	return finishPatch(ctx, tmp, repo, branch)
}

// errNoRevert: the root-cause change does not revert cleanly on HEAD.
var errNoRevert = errors.New("revert does not apply cleanly")

// finishPatch formats the scratch clone's HEAD commit and optionally fetches it into
// the repository as branch.
func finishPatch(ctx context.Context, tmp, repo, branch string) ([]byte, error) {
	patch, err := git(ctx, tmp, nil, "format-patch", "-1", "--stdout", "--no-signature", "HEAD")
	if err != nil {
		return nil, fmt.Errorf("format patch: %w", err)
	}
	if branch != "" {
		if _, err := git(ctx, repo, nil, "fetch", "--quiet", tmp, "+HEAD:refs/heads/"+branch); err != nil {
			return nil, fmt.Errorf("create branch %s: %w", branch, err)
		}
	}
	return patch, nil
}

func git(ctx context.Context, dir string, env []string, args ...string) ([]byte, error) {
	if dir != "" {
		args = append([]string{"-C", dir}, args...)
	}
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

func splitAuthor(a string) (name, email string) {
	i := strings.Index(a, " <")
	return a[:i], strings.TrimSuffix(a[i+2:], ">")
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

// slug is the file-name form of a title, as git format-patch makes it.
func slug(s string) string {
	s = strings.Trim(nonSlug.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > 52 {
		s = strings.TrimRight(s[:52], "-")
	}
	return s
}
