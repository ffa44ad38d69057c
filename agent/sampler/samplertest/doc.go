// Package samplertest provides Fake, a scripted sampler.Source for unit
// tests of code that consumes samples and process events without loading
// eBPF programs.
package samplertest
