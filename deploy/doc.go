// Package deploy holds the Helm chart that installs fleetprof on Kubernetes (agent
// DaemonSet, aggregator, storage wiring) and renders it the way `helm template` does,
// so the chart can be linted, strictly decoded and policy-checked in Go tests, and the
// plain manifests under manifests/ can be regenerated from it. OPS.md is the ops guide.
package deploy
