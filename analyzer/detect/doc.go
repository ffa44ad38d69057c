// Package detect finds CPU regressions per function in fleet-wide profiles, after
// FBDetect (SOSP'24): it tracks each function's inclusive CPU share (samples whose
// stack contains the function ÷ all samples of the service) per time bucket, which
// makes detection scale-free and turns a tiny service-level regression into a large
// relative change of one function.
//
// Input: a Service (per-bucket service totals, per-function inclusive/self counts,
// optionally broken down per host group, per version and per (version, host group)
// cell, caller→callee edges, stacks). Builder makes one from stack samples. Output:
// findings.Finding values of kind "regression" (schema fleetprof.findings/v1).
//
// Pipeline (Run), every parameter in Config (inner thresholds in Config.Tuning;
// how the defaults were chosen: analyzer/evaluate/TUNING.md). Files follow the
// stages: series.go (per-series analysis, seasonality, estimates), timepath.go (the
// before/after path, its steps in eventSteps), paired.go (the version-paired test),
// dedup.go (call-graph dedup), costshift.go (cost shift), handoff.go (the finding
// handed to root cause). The stages across series run in the order of crossStages;
// a finding lists the stages it passed in the order of filterOrder.
//
//  1. min share: functions below Config.MinShare (0.001%) are skipped.
//  2. change points on the (deseasonalized) share series (package changepoint,
//     α = 0.01) only propose changes. Change points close together form one event:
//     same-direction ones up to the merge tolerance or extended window apart (the
//     stages of a rollout), a rise and a fall up to MinSegment further (a transient:
//     the search cannot place them closer).
//  3. seasonality: functions with a strong daily wave of their own (self share, ≥ 5%
//     of it) dilute every other share by a wave of their own size; other shares are
//     divided by that common factor (seasonalDilution), from the waves' profiles.
//     Then with two periods of history a per-phase median profile is removed
//     first, so a daily wave is not a change — only when the profile stands out of
//     its own estimation noise (most series have no wave, and subtracting a profile
//     of k noisy periods only adds noise); the before/after test then counts the
//     profile's error in its standard errors.
//  4. significance / went-away: an event's net change (level before its first change
//     point → level after its last) must pass a z-test at min(Config.Alpha,
//     Config.FamilyAlpha / series tested) (Bonferroni over the service's inclusive
//     and self series above MinShare; the strongest change point still needs Alpha) whose
//     variance is binomial inflated by the over-dispersion measured within each host
//     group over time (static host-group differences cancel in a before/after
//     comparison of the same hosts, so they must not inflate it), floored by the
//     series' dispersion around its whole segmentation. An event whose peak differed
//     but whose net change is not significant went away (a transient).
//     Version-paired mode: while two versions run in the same buckets on at least
//     Config.MinVersionGroups host groups each, the groups running the new version
//     are compared with those running the old one (Config.PairedAlpha). The noise is
//     the spread between host groups, measured on the history before the rollout
//     (scaled to each cell's samples), or Welch's test without history; so one host
//     in a 1% stage never makes its host effect a "regression". Its level is
//     Bonferroni-corrected too: min(PairedAlpha, FamilyAlpha / (series × rollouts)).
//     Self shares are compared too (Series.CellSelf), so a rise of a function's own
//     code is dated at its rollout's first stage and sized as the version difference;
//     it folds into the same function's inclusive rise anywhere in that rollout.
//     Went-away later: a change whose level is gone again after the series' last
//     event (a revert) or in the last half extended window (a transient the search
//     could not end) is dropped. A time-path change is dated at a rollout start
//     (FilterDeploy) when that start is in the confidence set of its location.
//  5. threshold: absolute and relative change.
//  6. dedup: callers whose inclusive rise is explained by a callee's rise are grouped
//     under the deepest such callee (Finding.DedupGroup).
//  7. cost shift: a rise matched by same-domain (package) falls at the same time is
//     moved cost, not added cost, and dropped. Moved code leaves the body of its old
//     function, so the falls are self-share falls of callers, callees or siblings
//     (inclusive falls only where self shares are unknown); a function that shrank
//     as a whole far more than the rise (a rename) is another change. The falls must
//     balance the rise within Config.CostShiftFraction, all together or one alone.
//     Shares are normalised, so a rise of x dilutes every other share by x/(1+x);
//     only falls beyond that dilution count. A fall explains the rise it balances
//     best: when another function of the domain rose by an amount closer to it (a
//     cost shift's target, a renamed function's new name), it is that one's source.
//     The windows around the change leave out buckets five robust SDs off (spikes).
//     A version-paired rise is also compared with like: the self shares of the
//     domain's other functions between the same versions and host groups over the
//     same buckets (a 10% stage shows a tenth of a moved cost in fleet-wide shares);
//     a fleet-wide rise is never balanced by a paired fall.
//  8. dedup again on the survivors.
//
// Each event of a series is a candidate, so one function can regress in two releases
// of one window, unless a later event brought the level back (went-away across
// events: a revert, or a fix in a later release, within the data analyzed).
package detect
