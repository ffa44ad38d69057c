// Package findings defines the versioned JSON record that fleetprof's analyzer emits and
// that storage, the web UI, the PR bot and the MCP tools consume: one Finding per detected
// regression (defense) or optimization opportunity (offense).
//
// The package is dependency-free (stdlib only) so that every consumer can import it.
// The wire format is documented field by field in SCHEMA.md next to this file; the Go
// types carry the same names in their json tags. A document is a File:
//
//	{"schema":"fleetprof.findings/v1","generated_at":"...","findings":[...]}
//
// Compatibility: v1 readers ignore unknown fields; adding an optional field keeps v1,
// renaming or changing the meaning of a field needs v2.
package findings
