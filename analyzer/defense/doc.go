// Package defense runs regression detection against the profile store: for each
// service it reads the per-(version, host group, bucket, function) rollup, builds the
// detector's input (analyzer/detect) with host-group and version breakdowns, runs the
// pipeline, attributes each regression to a pull request with analyzer/rootcause when
// a git repository is configured for the service (versions seen in the store → git
// revisions), and stores the findings (storage.FindingRecord, body = the finding's
// JSON, schema fleetprof.findings/v1) where /api/v1/findings serves them.
//
// Store is the one interface at the storage boundary (the real one is
// *storage.Store); Loop runs Analyze every Config.Interval for `fleetprof up` and the
// aggregator.
//
// Root-cause failures (missing repository, unknown tag) do not drop findings: they are
// stored without root causes and the failures are returned in Report.Errors.
package defense
