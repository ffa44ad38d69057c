// Package skills holds the analyzer's skills: small registered units that turn a
// finding plus the context gathered through the tool layer (analyzer/tools) into a
// resolution — a Markdown PR body, and for offense a verified source patch.
//
// Defense and offense differ only here:
//   - defense ("regression-mitigation"): a regression → a note to the root-cause
//     pull request's author with the evidence table, the flame-diff summary, the
//     change's touched functions and a revert command;
//   - offense ("go-source-fix"): an opportunity → deterministic Go rewrites via go/ast
//     (Transforms: hoist constant regexps, Sprintf("%d") → strconv.Itoa, preallocate
//     appended slices, strings.Builder for += in loops), formatted with go/format and
//     verified by go build, go vet and go test on a copy of the module; a rewrite
//     that does not verify is never returned;
//   - an optional LLM-backed skill ("llm-advice"), off unless FLEETPROF_LLM_URL is set.
package skills
