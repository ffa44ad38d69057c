package skills

import (
	"context"
	"fmt"
	"strings"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/rootcause"
	"github.com/fleetprof/fleetprof/analyzer/tools"
)

// Defense is the defense skill: a regression → a mitigation note addressed to the
// root-cause pull request's author.
type Defense struct{}

// Doc implements Skill.
func (Defense) Doc() tools.Doc {
	return tools.Doc{Name: "regression-mitigation", Kind: "defense",
		Summary: "regression → mitigation for the root-cause PR's author (evidence, flame diff, touched functions, revert)",
		Text: "Input: a finding of kind regression with root-cause candidates (analyzer/rootcause).\n\n" +
			"Output: a Markdown note addressed to the author of the most likely pull request with the evidence table " +
			"(share before/after with 95% intervals, change, p-value, cores), the flame-diff summary (functions whose " +
			"inclusive share moved most), the functions the change touched, the other candidates, and the revert " +
			"command (`git revert -m 1` for merge commits). The pipeline attaches that revert as a patch when it applies cleanly on HEAD; " +
			"the author decides between a fix and the revert.\n"}
}

// Applies implements Skill.
func (Defense) Applies(c *Context) bool {
	return c.Finding.Kind == findings.KindRegression && len(c.Finding.RootCauses) > 0
}

// Resolve implements Skill.
func (d Defense) Resolve(_ context.Context, c *Context) (*Resolution, error) {
	if !d.Applies(c) {
		return nil, ErrNoResolution
	}
	f := c.Finding
	rc := f.RootCauses[0]
	var ch *rootcause.Change
	for i := range c.Changes {
		if c.Changes[i].Commit == rc.Commit {
			ch = &c.Changes[i]
		}
	}
	author, title, files, funcs, merge := rc.Author, rc.Title, rc.Files, rc.Functions, false
	if ch != nil {
		author, merge = ch.Author, ch.Merge
		if title == "" {
			title = ch.Title
		}
		if len(files) == 0 {
			files = ch.Files
		}
		if len(funcs) == 0 {
			funcs = ch.Functions
		}
	}
	pr := short(rc.Commit)
	if rc.PR > 0 {
		pr = fmt.Sprintf("#%d", rc.PR)
	}
	handle := mention(author, c.Logins)
	revert, mainline := "git revert "+rc.Commit, 0
	if merge {
		revert, mainline = "git revert -m 1 "+rc.Commit, 1
	}
	ttl := fmt.Sprintf("CPU regression in %s: %s %+.2f%% of the service after %s", f.Service, shortName(f.Function), f.AbsoluteChange*100, pr)

	var b strings.Builder
	fmt.Fprintf(&b, "%s — fleetprof attributes a CPU regression in `%s` to your change %s (%q, %.0f%% confidence).\n\n", handle, f.Service, pr, title, rc.Confidence*100)
	fmt.Fprintf(&b, "## Evidence\n\n| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| function | `%s` |\n", f.Function)
	fmt.Fprintf(&b, "| inclusive share before | %s (95%% CI %s – %s) |\n", pct(f.Before.Value), pct(f.Before.Lo), pct(f.Before.Hi))
	fmt.Fprintf(&b, "| inclusive share after | %s (95%% CI %s – %s) |\n", pct(f.After.Value), pct(f.After.Lo), pct(f.After.Hi))
	fmt.Fprintf(&b, "| change | %+.3f%% of the service (%+.1f%% relative) |\n", f.AbsoluteChange*100, f.RelativeChange*100)
	fmt.Fprintf(&b, "| p-value | %.2g |\n", f.PValue)
	if f.EstimatedCores != 0 {
		fmt.Fprintf(&b, "| estimated cost | %.3g cores |\n", f.EstimatedCores)
	}
	if !f.ChangeTime.IsZero() {
		fmt.Fprintf(&b, "| change point | %s |\n", f.ChangeTime.UTC().Format("2006-01-02 15:04 MST"))
	}
	if f.VersionBefore != "" || f.VersionAfter != "" {
		fmt.Fprintf(&b, "| versions | %s → %s |\n", f.VersionBefore, f.VersionAfter)
	}
	if c.Diff != nil && len(c.Diff.Movers) > 0 {
		fmt.Fprintf(&b, "\n## Flame diff\n\n%d samples before, %d after. Largest moves of inclusive share:\n\n", c.Diff.BaseTotal, c.Diff.CmpTotal)
		fmt.Fprintf(&b, "| function | before | after | change |\n|---|---:|---:|---:|\n")
		n := 0
		for _, m := range c.Diff.Movers {
			if m.DeltaInclusivePct == 0 && m.BaseSelfPct == m.CmpSelfPct {
				continue // unchanged: noise in the table
			}
			if n++; n > 8 {
				break
			}
			fmt.Fprintf(&b, "| `%s` | %.2f%% | %.2f%% | %+.2f%% |\n", m.Function, m.BaseInclusivePct, m.CmpInclusivePct, m.DeltaInclusivePct)
		}
	}
	if len(f.RepresentativeStacks) > 0 {
		fmt.Fprintf(&b, "\nStack that grew most (leaf last):\n\n```\n%s\n```\n", strings.Join(tail(f.RepresentativeStacks[0].Frames, 8), "\n"))
	}
	fmt.Fprintf(&b, "\n## The change\n\n%s %s by %s", pr, title, author)
	if ch != nil && !ch.Time.IsZero() {
		fmt.Fprintf(&b, ", merged %s", ch.Time.UTC().Format("2006-01-02 15:04 MST"))
	}
	fmt.Fprintf(&b, " (commit `%s`).\n", rc.Commit)
	if len(funcs) > 0 {
		fmt.Fprintf(&b, "\nFunctions it touched:\n\n")
		for _, fn := range funcs {
			mark := ""
			if fn == f.Function || containsFunc(f.RepresentativeStacks, fn) {
				mark = " ← on the regressed stacks"
			}
			fmt.Fprintf(&b, "- `%s`%s\n", fn, mark)
		}
	}
	if len(files) > 0 {
		fmt.Fprintf(&b, "\nFiles: %s\n", "`"+strings.Join(files, "`, `")+"`")
	}
	if len(f.RootCauses) > 1 {
		fmt.Fprintf(&b, "\nOther candidates:\n\n| change | author | confidence |\n|---|---|---:|\n")
		for _, o := range f.RootCauses[1:] {
			id := short(o.Commit)
			if o.PR > 0 {
				id = fmt.Sprintf("#%d", o.PR)
			}
			fmt.Fprintf(&b, "| %s %s | %s | %.0f%% |\n", id, o.Title, o.Author, o.Confidence*100)
		}
	}
	fmt.Fprintf(&b, "\n## Suggested mitigation\n\n")
	fmt.Fprintf(&b, "Fix the hot path in the touched functions above, or revert the change while you do (the attached patch is that revert):\n\n```sh\n%s\n```\n", revert)
	fmt.Fprintf(&b, "\n---\nGenerated by fleetprof (skill `regression-mitigation`, finding `%s`).\n", f.ID)
	return &Resolution{Skill: "regression-mitigation", Kind: "defense", Title: ttl, Body: b.String(),
		Addressee: author, Reviewers: []string{author}, RevertCommand: revert, RevertCommit: rc.Commit, RevertMainline: mainline}, nil
}

// authorName is the name part of "Name <email>".
// githubNoreply is the domain of GitHub's private commit addresses
// (ID+login@users.noreply.github.com or login@…): the only addresses that name a login.
const githubNoreply = "@users.noreply.github.com"

// mention is how the PR body addresses the author: "@login" when logins maps the
// commit's email (or, failing that, its author name) to a login, or when the
// address is a GitHub noreply one; else the name without "@" (a display name is
// no login, and "@Dana Cohen" would ping nobody or the wrong person).
func mention(author string, logins map[string]string) string {
	name := authorName(author)
	email := ""
	if i, j := strings.Index(author, "<"), strings.LastIndex(author, ">"); i >= 0 && j > i {
		email = strings.ToLower(author[i+1 : j])
	}
	for _, k := range []string{email, name} {
		if login := strings.TrimPrefix(logins[k], "@"); k != "" && login != "" {
			return "@" + login
		}
	}
	if email != "" {
		if local, ok := strings.CutSuffix(email, githubNoreply); ok {
			if _, login, ok := strings.Cut(local, "+"); ok {
				local = login
			}
			if local != "" {
				return "@" + local
			}
		}
	}
	return name
}

func authorName(a string) string {
	if i := strings.Index(a, " <"); i > 0 {
		return a[:i]
	}
	return a
}

func containsFunc(stacks []findings.Stack, fn string) bool {
	for _, s := range stacks {
		for _, f := range s.Frames {
			if f == fn {
				return true
			}
		}
	}
	return false
}
