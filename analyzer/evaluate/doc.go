// Package evaluate measures the regression pipeline against simulated ground truth:
// for a sweep of injected regression sizes it simulates a fleet (analyzer/simulate),
// runs detection (analyzer/detect) and root cause (analyzer/rootcause), and reports
// recall, false positives per series, detection latency after full rollout, root-cause
// top-3 accuracy, and the sampling-noise floor sqrt(p(1−p)/N) for the same sample
// counts, so each injected change reads as a multiple of the floor ("×floor").
package evaluate
