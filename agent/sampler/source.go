package sampler

import (
	"github.com/fleetprof/fleetprof/agent/interp/python"
	"github.com/fleetprof/fleetprof/agent/unwind"
)

// Source is the kernel boundary of the agent: what it needs from a
// sampler. *Sampler implements it; samplertest.Fake is the hand-written
// fake for unit tests of code that consumes samples and events.
type Source interface {
	// Drain returns the samples counted since the previous call and
	// cumulative stats.
	Drain() ([]Sample, Stats, error)
	// Events delivers process lifecycle events until Close.
	Events() <-chan ProcEvent
	// Close stops sampling and closes the Events channel.
	Close() error
	// Tables are the unwind-table maps the walker follows.
	unwind.Tables
	// SetPython makes the kernel walk the Python frames of a detected
	// CPython process; ForgetPython undoes it.
	SetPython(p python.Process) error
	ForgetPython(pid uint32) error
}

var _ Source = (*Sampler)(nil)
