// Package evaluate measures the regression pipeline against simulated ground truth:
// for a sweep of injected regression sizes it simulates a fleet (analyzer/simulate:
// two quiet days of history, then a day with three staged releases), runs detection
// (analyzer/detect) with the release day as the analysis window and root cause
// (analyzer/rootcause), and reports per size and per inclusive-share band: recall,
// false positives per series per analysis window, detection latency after full
// rollout, root-cause top-3 accuracy, negative controls reported, and the
// sampling-noise floor sqrt(p(1−p)/N) for the same sample counts, so each injected
// change reads as a multiple of the floor ("×floor").
//
// Config.Seeds runs every size on several simulation seeds and pools the counts: one
// seed hid a false-positive rate another showed.
//
// Scoring. A finding is true when it names an injected function (or has it in its
// dedup group) with a change time from two buckets before the rollout start to
// three hours after full rollout. A finding on a caller of an injected function is
// redundant, not false (its inclusive share rose with it); every other finding is a
// false positive, including findings on the injected function's callees: the
// simulator scales only the self weight of the injected function's own call-tree
// nodes (callees are separate nodes whose cost stays; their shares only dilute), and
// noise PRs change no cost, so a callee's rise is not a side effect of the release.
//
// TestEvaluateSanity is a fast two-size run with loose bounds; BenchmarkEvaluate is
// the full sweep on fifteen seeds (`go test ./analyzer/evaluate -run XXX -bench Evaluate
// -benchtime 1x -v`; `-args -seeds 0,1000` chooses them, `-sizes 0.2` the sizes). It
// logs every false positive (with the injections that touched its function) and every
// regression at ≥ 2× the noise floor that was missed (with the stage that dropped it).
//
// Staged rollouts (RunStaged, BenchmarkEvaluateStaged): releases rolled out 10% → 50%
// → 100% with stages hours apart (longer than the merge tolerance), analysed every
// 10 minutes through each rollout with the analyzer loop's window, each run's
// findings stored as the loop stores them (defense.MergeStored). It scores the stored
// findings per regression (one is the aim), whether the last one is dated at the
// first stage and sized on the full rollout (self-sized for a function with
// callees), and how many runs report the cost shift made in the first release, in
// its 10% stage and through its whole rollout.
package evaluate
