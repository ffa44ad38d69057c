// Package ui is fleetprof's web UI: a single-page application (flame graph, flame diff,
// top functions, per-function gCPU over time, analyzer findings) served from assets
// embedded in the binary. It talks only to the aggregator's JSON API under /api/v1/, so
// it needs no Node.js at build or run time.
//
// The aggregator mounts Handler at "/" (aggregator.WithUI). The front end is
// hand-written JavaScript with a canvas flame graph (see web/static/app.js): an SVG or
// DOM flame graph (d3-flame-graph) creates one element per frame and cannot stay
// smooth at 100k nodes; the canvas skips sub-pixel subtrees and draws only what is
// visible.
package ui
