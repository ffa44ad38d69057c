// Package mcpserver exposes the analyzer's tool layer (analyzer/tools) as a Model
// Context Protocol server (github.com/modelcontextprotocol/go-sdk), so an agent gets
// the same tools the skills use: profile queries (top, flame, diff), findings,
// opportunities and function costs, code search, change history, skill docs,
// experiment results, and the pipeline's resolution of a finding.
//
// Every tool has a typed input and output struct (analyzer/tools) whose jsonschema
// tags document the fields; errors come back as tool errors, not protocol errors.
// Serve it over stdio (fleetprof mcp) or streamable HTTP (fleetprof mcp --http ADDR).
package mcpserver
