// Package defense runs regression detection against the profile store: for each
// service it reads the per-(version, host group, bucket, function) rollup, builds the
// detector's input (analyzer/detect) with host-group and version breakdowns, runs the
// pipeline, attributes each regression to a pull request with analyzer/rootcause when
// a git repository is configured for the service (versions seen in the store → git
// revisions), and stores the findings (model.FindingRecord, body = the finding's
// JSON, schema fleetprof.findings/v1) where /api/v1/findings serves them.
//
// Runs overlap (each re-analyzes most of the last window), and a regression's change
// time can move by a bucket or two as data arrives: before storing, a new finding
// that is the same regression as a stored one (same function and kind of share,
// change times within the detector's merge tolerance or extended window) takes the
// stored id and first_seen and advances last_seen, so the store keeps one finding.
//
// Store is the one interface at the storage boundary (the real one is
// *storage.Store). analyzer/loop runs Analyze periodically inside `fleetprof
// aggregator` and `fleetprof up`.
//
// Root-cause failures (missing repository, unknown tag) do not drop findings: they are
// stored without root causes and the failures are returned in Report.Errors.
package defense
