// Package offense runs opportunity ranking (analyzer/opportunity) against the profile
// store: for each service with samples in the window it reads the service's merged
// profile, ranks the fix patterns found in its stacks by estimated saving, and stores
// them as findings of kind "opportunity" (model.FindingRecord, body = the finding's
// JSON, schema fleetprof.findings/v1) where /api/v1/opportunities serves them.
//
// It mirrors analyzer/defense: Store is the one interface at the storage boundary (the
// real one is *storage.Store), Analyze runs once, and the caller schedules runs
// (`fleetprof up` runs it after each defense run).
//
// A service's CPU is samples × period ÷ wall time, where the wall time is the window
// clipped to when the store first saw the service, so young data (a just-started
// `fleetprof up`) is not diluted over the whole window.
package offense
