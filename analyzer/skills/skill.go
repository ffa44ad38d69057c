package skills

import (
	"context"
	"errors"
	"sort"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/rootcause"
	"github.com/fleetprof/fleetprof/analyzer/tools"
)

// Context is what the pipeline's context phase gathered for one finding.
type Context struct {
	Finding findings.Finding
	// RepoDir is the source checkout; ModuleDir the Go module in it ("" when absent).
	RepoDir, ModuleDir string
	// Locations are where Finding.Function is declared; Callers where it is called.
	Locations []tools.Location
	Callers   []tools.Location
	// Diff is the flame-diff summary around the finding (defense).
	Diff *tools.DiffOutput
	// Changes are the details of the finding's root-cause commits, best first.
	Changes []rootcause.Change
	// Logins maps a commit author's email (lower case) or name to the login PR
	// bodies mention ("@login"); see LoadLogins.
	Logins map[string]string
}

// Resolution is a skill's output: what the PR bot publishes.
type Resolution struct {
	Skill string `json:"skill"`
	Kind  string `json:"kind"` // offense or defense
	Title string `json:"title"`
	// Body is the PR (or issue comment) body in Markdown.
	Body string `json:"body"`
	// CommitMessage is the patch's commit message (title, blank line, text).
	CommitMessage string    `json:"commit_message,omitempty"`
	Edits         []Edit    `json:"edits,omitempty"`
	Applied       []Applied `json:"applied,omitempty"`
	// Verification lists the commands that passed on the patched module.
	Verification []string `json:"verification,omitempty"`
	// Addressee is who must act (the root-cause author for defense).
	Addressee string   `json:"addressee,omitempty"`
	Reviewers []string `json:"reviewers,omitempty"`
	// RevertCommand undoes the root-cause change (defense); RevertCommit is that
	// change and RevertMainline its parent number for git revert -m (0: not a merge).
	RevertCommand  string `json:"revert_command,omitempty"`
	RevertCommit   string `json:"revert_commit,omitempty"`
	RevertMainline int    `json:"revert_mainline,omitempty"`
}

// Skill turns a finding in context into a resolution.
type Skill interface {
	Doc() tools.Doc
	// Applies reports whether the skill handles the finding.
	Applies(c *Context) bool
	// Resolve produces the resolution; ErrNoResolution when it has nothing to offer.
	Resolve(ctx context.Context, c *Context) (*Resolution, error)
}

// ErrNoResolution means the skill applies to the finding's kind but cannot resolve it
// (no transform matched, nothing verified, no root cause).
var ErrNoResolution = errors.New("no resolution")

// Registry holds skills by name.
type Registry struct{ skills map[string]Skill }

// NewRegistry returns a registry of the given skills.
func NewRegistry(ss ...Skill) *Registry {
	r := &Registry{skills: map[string]Skill{}}
	for _, s := range ss {
		r.skills[s.Doc().Name] = s
	}
	return r
}

// Default returns the built-in skills: defense, offense, and the LLM skill when
// FLEETPROF_LLM_URL is set.
func Default() *Registry {
	ss := []Skill{Defense{}, Offense{}}
	if llm := LLMFromEnv(); llm != nil {
		ss = append(ss, LLMAdvice{LLM: llm})
	}
	return NewRegistry(ss...)
}

// Get returns the skill named name.
func (r *Registry) Get(name string) (Skill, bool) {
	s, ok := r.skills[name]
	return s, ok
}

// All returns the skills by name.
func (r *Registry) All() []Skill {
	out := make([]Skill, 0, len(r.skills))
	for _, s := range r.skills {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Doc().Name < out[j].Doc().Name })
	return out
}

// Docs returns every skill's doc (for the tool layer's docs tool).
func (r *Registry) Docs() []tools.Doc {
	var out []tools.Doc
	for _, s := range r.All() {
		out = append(out, s.Doc())
	}
	return out
}

// For returns the skills that apply to c, deterministic ones first.
func (r *Registry) For(c *Context) []Skill {
	var out []Skill
	for _, s := range r.All() {
		if s.Applies(c) {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		_, li := out[i].(LLMAdvice)
		_, lj := out[j].(LLMAdvice)
		return !li && lj
	})
	return out
}
