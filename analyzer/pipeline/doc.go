// Package pipeline is the shared agent pipeline of both halves of fleetprof:
//
//	context (collect through the tool layer) → skill → resolution
//
// The context phase gathers, for one finding, where its function is defined and
// called, the flame diff around a regression, and the changes involved (root-cause
// commits for a regression, recent changes of the function for an opportunity). A
// skill (analyzer/skills) turns that into a resolution, which Write publishes as PR
// bot output in a directory per finding:
//
//	0001-<slug>.patch  the patch in git format-patch form (applies with git am): the skill's
//	                   verified rewrite, or for a regression the revert of the root-cause change
//	title.txt          the PR title
//	body.md            the PR body (Markdown)
//	resolution.json    the record (schema fleetprof.resolution/v1)
//
// and optionally as a local branch in the repository.
package pipeline
