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
// TestEvaluateSanity is a fast two-size run with loose bounds; BenchmarkEvaluate is
// the full sweep (`go test ./analyzer/evaluate -bench Evaluate -benchtime 1x -v`).
package evaluate
