// Package detect finds CPU regressions per function in fleet-wide profiles, after
// FBDetect (SOSP'24): it tracks each function's inclusive CPU share (samples whose
// stack contains the function ÷ all samples of the service) per time bucket, which
// makes detection scale-free and turns a tiny service-level regression into a large
// relative change of one function.
//
// Input: a Service (per-bucket service totals, per-function inclusive/self counts,
// optionally broken down per host group and per version, caller→callee edges, stacks).
// Builder makes one from stack samples. Output: findings.Finding values of kind
// "regression" (schema fleetprof.findings/v1).
//
// Pipeline (Run), every parameter in Config:
//
//  1. min share: functions below Config.MinShare (0.001%) are skipped.
//  2. significance: change points on the share series (package changepoint, α = 0.01),
//     kept if they start inside the analysis window and leave at least the extended
//     window after them; the persisted change is then tested with a quasi-binomial
//     z-test whose variance is the binomial one inflated by the over-dispersion seen
//     between host groups (or buckets).
//     Version-paired mode: when two versions ran in the same buckets (a rollout), their
//     shares are compared bucket by bucket instead, which cancels diurnal and traffic
//     effects and needs only Config.MinOverlapBuckets buckets of overlap.
//  3. seasonality: with two periods of history a per-phase median profile is removed
//     first, so a daily wave is not a change.
//  4. went-away / merge: all change points of a function in the window merge into one
//     net change (baseline → latest level); if that keeps less than
//     Config.WentAwayFraction of the peak level change and the fall from the peak is
//     significant, the change was a transient and is dropped.
//  5. threshold: absolute and relative change.
//  6. dedup: callers whose inclusive rise is explained by a callee's rise are grouped
//     under the deepest such callee (Finding.DedupGroup).
//  7. cost shift: a rise matched by same-domain (package) falls at the same time is
//     moved cost, not added cost, and dropped.
//  8. dedup again on the survivors.
package detect
