package samplertest

import (
	"errors"
	"sync"

	"github.com/fleetprof/fleetprof/agent/interp/python"
	"github.com/fleetprof/fleetprof/agent/sampler"
)

// Fake is a sampler.Source whose samples, drops and events the test
// supplies. Create it with New.
type Fake struct {
	mu      sync.Mutex
	pending []sampler.Sample
	stats   sampler.Stats
	failErr error
	closed  bool
	events  chan sampler.ProcEvent
	python  map[uint32]python.Process
}

var _ sampler.Source = (*Fake)(nil)

// New returns a Fake whose Events channel holds eventBuffer events.
func New(eventBuffer int) *Fake {
	return &Fake{events: make(chan sampler.ProcEvent, eventBuffer)}
}

// Add queues samples for the next Drain and counts them in Stats.
func (f *Fake) Add(samples ...sampler.Sample) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range samples {
		f.stats.Samples += s.Count
	}
	f.pending = append(f.pending, samples...)
}

// Drop counts n losses for reason in Stats (and, for whole-sample drops,
// in Stats.Samples, as the kernel does).
func (f *Fake) Drop(reason sampler.DropReason, n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.Drops[reason] += n
	if reason == sampler.DropCountMapFull || reason == sampler.DropCountMapError {
		f.stats.Samples += n
	}
}

// FailNextDrain makes the next Drain return err and keep pending samples.
func (f *Fake) FailNextDrain(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failErr = err
}

// Drain returns the samples added since the previous Drain.
func (f *Fake) Drain() ([]sampler.Sample, sampler.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, sampler.Stats{}, errors.New("drain: sampler closed")
	}
	if err := f.failErr; err != nil {
		f.failErr = nil
		return nil, sampler.Stats{}, err
	}
	out := f.pending
	f.pending = nil
	for _, s := range out {
		f.stats.Drained += s.Count
	}
	return out, f.stats, nil
}

// Emit queues ev on the Events channel. It reports false, dropping ev,
// if the Fake is closed or the channel's buffer is full.
func (f *Fake) Emit(ev sampler.ProcEvent) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	select {
	case f.events <- ev:
		return true
	default:
		return false
	}
}

// Events returns the events passed to Emit.
func (f *Fake) Events() <-chan sampler.ProcEvent {
	return f.events
}

// Close closes the Events channel. It is safe to call twice.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.events)
	}
	return nil
}

// SetPython records p as a Python process.
func (f *Fake) SetPython(p python.Process) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.python == nil {
		f.python = map[uint32]python.Process{}
	}
	f.python[p.PID] = p
	return nil
}

// ForgetPython forgets pid's Python record.
func (f *Fake) ForgetPython(pid uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.python, pid)
	return nil
}

// Python returns the Python record last set for pid.
func (f *Fake) Python(pid uint32) (python.Process, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.python[pid]
	return p, ok
}
