// Package simulate generates a deterministic synthetic fleet for testing and evaluating
// the regression pipeline end to end: services running on many hosts, a Zipf-distributed
// catalogue of Go-like functions over a call tree, per-host random effects, a diurnal
// cycle, traffic drift, transients (spikes, host failures), staged rollouts of versions
// and — the point of it all — injected regressions with ground truth.
//
// Every version is a tag of a generated git repository (one per service, written by
// WriteRepos) whose commits are pull requests (merge commits and squash commits) editing
// Go source files that define the catalogue's functions, so a root-cause analysis can be
// checked against the change that really caused a regression.
//
// Sample counts are drawn, not computed: each host's samples in a bucket are Poisson in
// number and multinomial over its stacks, so the noise a detector sees is real sampling
// noise plus the over-dispersion the host effects add. A Fleet is deterministic for a
// Config (including Seed), and each bucket is drawn from its own random stream, so
// buckets can be generated in any order or in parallel.
//
// Two output forms: Bucket.Samples gives sample-batch rows for the real ingest path;
// Bucket.Rollup gives rollup rows (per service, version, host group, bucket, function)
// for fast large runs. Truth is the JSON ground truth.
package simulate
