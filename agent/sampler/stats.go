package sampler

import (
	"fmt"

	"github.com/fleetprof/fleetprof/bpf"
)

// DropReason says why a sample, a stack or an event was lost.
type DropReason int

// Drop reasons. Stack drops keep the sample (with that stack missing);
// count map drops lose the whole sample.
const (
	DropCountMapFull         DropReason = iota // sample lost: count map full
	DropCountMapError                          // sample lost: other count map error
	DropUserStackCollision                     // user stack lost: stack map bucket taken (EEXIST)
	DropKernelStackCollision                   // kernel stack lost: stack map bucket taken (EEXIST)
	DropUserStackFault                         // user stack lost: unreadable (EFAULT)
	DropUserStackError                         // user stack lost: other error
	DropKernelStackError                       // kernel stack lost: other error
	DropStackMissing                           // stack id not in the stack map at drain (not expected)
	DropEventsLost                             // process event lost: kernel ring buffer full
	DropEventMalformed                         // process event record too short to decode
	NumDropReasons                             // number of reasons; not a reason
)

var dropReasonNames = [NumDropReasons]string{
	DropCountMapFull:         "count_map_full",
	DropCountMapError:        "count_map_error",
	DropUserStackCollision:   "user_stack_collision",
	DropKernelStackCollision: "kernel_stack_collision",
	DropUserStackFault:       "user_stack_fault",
	DropUserStackError:       "user_stack_error",
	DropKernelStackError:     "kernel_stack_error",
	DropStackMissing:         "stack_missing",
	DropEventsLost:           "events_lost",
	DropEventMalformed:       "event_malformed",
}

// String returns a snake_case name suitable as a metric label.
func (r DropReason) String() string {
	if r < 0 || r >= NumDropReasons {
		return "unknown"
	}
	return dropReasonNames[r]
}

// Stats are cumulative counters since New.
type Stats struct {
	// Samples is the number of perf samples the kernel program handled
	// (idle samples excluded unless Config.SampleIdle).
	Samples uint64
	// IdleSkipped counts samples of the idle task that were skipped.
	IdleSkipped uint64
	// UserMode counts samples taken while the CPU ran user code; they
	// have no kernel stack, which is expected and not a loss.
	UserMode uint64
	// Drained is the sum of Sample.Count returned by Drain.
	Drained uint64
	// Drops counts losses by reason.
	Drops [NumDropReasons]uint64
	// TruncatedUserStacks counts drained samples whose user walk did not
	// reach the root (WalkEnds other than WalkRoot).
	TruncatedUserStacks uint64
	// Python counts the kernel Python walker's work and early ends.
	Python PythonStats
	// WalkEnds counts drained samples with a user stack by how its walk ended.
	WalkEnds [NumWalkEnds]uint64
}

// WalkEnd is how the kernel's user-stack walk ended (enum walk_end).
type WalkEnd uint32

// Walk ends.
const (
	WalkRoot    WalkEnd = WalkEnd(bpf.ProfilerWalkEndWALK_ROOT)     // stop rule or zero return address
	WalkNoRule  WalkEnd = WalkEnd(bpf.ProfilerWalkEndWALK_NO_RULE)  // a pc without a usable rule, frame pointers failed
	WalkBadRead WalkEnd = WalkEnd(bpf.ProfilerWalkEndWALK_BAD_READ) // unreadable or implausible stack slot
	WalkDepth   WalkEnd = WalkEnd(bpf.ProfilerWalkEndWALK_DEPTH)    // frame limit reached
	NumWalkEnds         = 4
)

var walkEndNames = [NumWalkEnds]string{"root", "no_rule", "bad_read", "depth"}

func (e WalkEnd) String() string {
	if e < NumWalkEnds {
		return walkEndNames[e]
	}
	return fmt.Sprintf("WalkEnd(%d)", uint32(e))
}

// DroppedSamples is the number of samples lost entirely.
func (s Stats) DroppedSamples() uint64 {
	return s.Drops[DropCountMapFull] + s.Drops[DropCountMapError]
}
