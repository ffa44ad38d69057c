// Package opportunity ranks optimization opportunities (offense) by what they cost the
// fleet.
//
// Cost: a function's self and inclusive share of a service's samples times the
// service's CPU (cores = samples × sampling period / wall time), converted to watts and
// money with configurable per-core figures (Config).
//
// Classification: each stack is matched against stack signatures of known fix
// patterns (Patterns), most specific first; a matched stack is charged to the pattern
// and to its site, the nearest caller outside the Go standard library and runtime (the
// code a developer would change). Each pattern carries the fraction of its samples a
// fix is expected to save and a confidence. Rank returns the (pattern, site) pairs by
// estimated saved cores; Finding turns one into a findings.Finding of kind
// "opportunity".
package opportunity
