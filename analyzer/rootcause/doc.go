// Package rootcause attributes a CPU regression of one function to the change (pull
// request) that most likely caused it.
//
// The git layer (Repo) lists the commits between two versions of a service along the
// first-parent history, maps each to its pull request ("Merge pull request #N from …"
// merge commits and "Title (#N)" squash commits), author, title, files and the
// functions its diff touched. For Go files both sides are parsed with go/ast and the
// changed line ranges are mapped to FuncDecl ranges, named the way Go profilers name
// functions ("billing/pricing.(*Engine).Quote"); other files fall back to the function
// context git prints in hunk headers.
//
// Rank scores candidates for a regression of function F (FBDetect, SOSP'24):
//   - stack attribution: the share of F's rise found in stacks that contain a function
//     the change touched, counted fully when the touched function is F or below it in
//     the stack (code that runs inside F) and half when only above it (a caller that
//     may call F more often);
//   - directness: the change touched F itself;
//   - timing: deployed shortly before the change point (a change deployed after it
//     cannot have caused it);
//   - text similarity: F's package, type and method words found in the change's files,
//     title and touched functions.
//
// It returns the top candidates with a confidence and reports None when the best one
// is not convincing: a wrong culprit costs an innocent author more than no answer.
// Everything but Repo is a pure function.
package rootcause
