package samplertest

import (
	"errors"
	"sync"

	"github.com/fleetprof/fleetprof/agent/interp/python"
	"github.com/fleetprof/fleetprof/agent/sampler"
	"github.com/fleetprof/fleetprof/agent/unwind"
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

	rows   []unwind.Row
	files  map[uint32][2]uint32
	procs  map[uint32][]unwind.Mapping
	python map[uint32]python.Process
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

// WriteRows stores rows in the Fake's row array (grown as needed).
func (f *Fake) WriteRows(first uint32, rows []unwind.Row) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if need := int(first) + len(rows); need > len(f.rows) {
		f.rows = append(f.rows, make([]unwind.Row, need-len(f.rows))...)
	}
	copy(f.rows[first:], rows)
	return nil
}

// SetFile records file id's row range.
func (f *Fake) SetFile(id, first, count uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.files == nil {
		f.files = map[uint32][2]uint32{}
	}
	f.files[id] = [2]uint32{first, count}
	return nil
}

// SetProcess records pid's mappings.
func (f *Fake) SetProcess(pid uint32, maps []unwind.Mapping) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.procs == nil {
		f.procs = map[uint32][]unwind.Mapping{}
	}
	f.procs[pid] = append([]unwind.Mapping(nil), maps...)
	return nil
}

// DeleteProcess forgets pid's mappings.
func (f *Fake) DeleteProcess(pid uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.procs, pid)
	return nil
}

// Process returns the mappings last written for pid.
func (f *Fake) Process(pid uint32) ([]unwind.Mapping, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.procs[pid]
	return m, ok
}

// FileRows returns the rows file id points at (nil: none).
func (f *Fake) FileRows(id uint32) []unwind.Row {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.files[id]
	if !ok || r[1] == 0 {
		return nil
	}
	return append([]unwind.Row(nil), f.rows[r[0]:r[0]+r[1]]...)
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
