// Package tools is the analyzer's tool layer: one Go API that both halves of the
// product (defense and offense skills) and the MCP server use to gather context.
//
// Tools: profile queries (top, flame, diff) through the aggregator's HTTP API
// (aggregator/queryclient); findings (from a findings document and the aggregator) and
// opportunities ranked from a live profile (analyzer/opportunity); code search in a
// source checkout (a profiler function name → file:line via go/ast, callers by
// identifier); change history (analyzer/rootcause's git layer: commits, pull requests,
// touched functions); skill docs; and experiment results (two selections compared as
// a diff summary with the function's share on each side).
//
// Every tool takes a typed input struct and returns a typed output struct; the
// structs carry json and jsonschema tags so the MCP server exposes them unchanged.
package tools
