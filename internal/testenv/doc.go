// Package testenv is the one way a fleetprof test says it cannot run here.
//
// Every skip goes through [Skip] with a [Reason]. Outside strict mode a skip is
// an ordinary t.Skip. In strict mode (CI=true, or FLEETPROF_STRICT_TESTS=1) a
// skip whose reason is not on the allowlist fails the test instead, so a
// missing server, browser, profiler or too few samples can never turn a CI run
// green without having run the test. The allowlist is short on purpose:
//
//   - [KernelFeature]: the running kernel lacks a feature the test needs (BTF,
//     a BPF program type); nothing the project installs can provide it.
//   - [Short]: the test was asked to be brief with go test -short.
//   - [Platform]: the test is about another OS or architecture.
//
// Anything else (a missing tool or package, not root, a machine too loaded
// to collect enough samples) is a failure in CI: setup installs the tools and
// CI runs as root.
package testenv
