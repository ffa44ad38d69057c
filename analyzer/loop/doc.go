// Package loop is the analyzer as a long-running component: every Config.Interval
// (first at once) it runs regression detection (analyzer/defense) and then
// opportunity ranking (analyzer/offense) over the profile store and stores their
// findings, where /api/v1/findings and /api/v1/opportunities serve them.
//
// `fleetprof aggregator` and `fleetprof up` run one Loop each as an oklog/run actor
// (Run, Interrupt). Loop.Now runs the same analyses on request (POST
// /api/v1/analyze), one run at a time with the periodic ones, so a client can
// analyze a live store without opening it. Collector exports per-run metrics:
// duration, series read and findings written.
package loop
