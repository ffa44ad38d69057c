package sampler

import (
	"encoding/binary"
	"fmt"
	"time"
	"unsafe"

	"github.com/fleetprof/fleetprof/bpf"
)

// EventKind is the kind of a process lifecycle event.
type EventKind uint8

// Event kinds.
const (
	EventExec EventKind = EventKind(bpf.ProfilerEventKindEVENT_EXEC) // process replaced its image
	EventExit EventKind = EventKind(bpf.ProfilerEventKindEVENT_EXIT) // last thread of the process exited
	EventFork EventKind = EventKind(bpf.ProfilerEventKindEVENT_FORK) // new process (not thread) created
	// EventRefresh: a sample met a pc outside the process's known mappings
	// (new process, dlopen, libraries mapped after exec): re-read its maps.
	EventRefresh EventKind = EventKind(bpf.ProfilerEventKindEVENT_REFRESH)
	// EventPythonCode: the Python walker met a code object (Code, Lineno)
	// for the first time; naming it now works even if the process exits
	// before its samples are drained.
	EventPythonCode EventKind = EventKind(bpf.ProfilerEventKindEVENT_PYTHON_CODE)
	// EventWantTable: a walk met a file (FileID) whose unwind table is not
	// loaded; compiling it now spares the next samples a frame-pointer walk.
	EventWantTable EventKind = EventKind(bpf.ProfilerEventKindEVENT_WANT_TABLE)
)

func (k EventKind) String() string {
	switch k {
	case EventExec:
		return "exec"
	case EventExit:
		return "exit"
	case EventFork:
		return "fork"
	case EventRefresh:
		return "refresh"
	case EventPythonCode:
		return "python-code"
	case EventWantTable:
		return "want-table"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// ProcEvent is a process lifecycle event.
type ProcEvent struct {
	Kind EventKind
	PID  uint32 // process id (tgid); for fork, the child
	TID  uint32 // thread that caused the event
	PPID uint32 // process id of the real parent
	Comm string // for exec, the new command name
	// Start is the process's start time since boot (CLOCK_BOOTTIME), the
	// same clock as /proc/PID/stat's starttime: (PID, Start) identifies a
	// process across pid reuse.
	Start time.Duration
	// At is when the event happened, since boot (CLOCK_BOOTTIME).
	At time.Duration
	// Code and Lineno (low 16 bits of co_firstlineno) are set for
	// EventPythonCode, whose record carries them in start_ns and ppid.
	Code   uint64
	Lineno uint16
	// FileID is set for EventWantTable (carried in start_ns): the loader's
	// id of the file.
	FileID uint32
}

const eventSize = int(unsafe.Sizeof(bpf.ProfilerEvent{}))

// decodeEvent decodes a struct event record from the ring buffer.
func decodeEvent(b []byte) (ProcEvent, error) {
	if len(b) < eventSize {
		return ProcEvent{}, fmt.Errorf("event record of %d bytes, want %d", len(b), eventSize)
	}
	var e bpf.ProfilerEvent
	ne := binary.NativeEndian
	off := func(f uintptr) []byte { return b[f:] }
	e.StartNs = ne.Uint64(off(unsafe.Offsetof(e.StartNs)))
	e.TsNs = ne.Uint64(off(unsafe.Offsetof(e.TsNs)))
	e.Kind = ne.Uint32(off(unsafe.Offsetof(e.Kind)))
	e.Pid = ne.Uint32(off(unsafe.Offsetof(e.Pid)))
	e.Tid = ne.Uint32(off(unsafe.Offsetof(e.Tid)))
	e.Ppid = ne.Uint32(off(unsafe.Offsetof(e.Ppid)))
	comm := off(unsafe.Offsetof(e.Comm))[:len(e.Comm)]
	switch EventKind(e.Kind) {
	case EventPythonCode:
		return ProcEvent{Kind: EventPythonCode, PID: e.Pid, Code: e.StartNs, Lineno: uint16(e.Ppid), At: time.Duration(e.TsNs)}, nil
	case EventWantTable:
		return ProcEvent{Kind: EventWantTable, PID: e.Pid, FileID: uint32(e.StartNs), At: time.Duration(e.TsNs)}, nil
	}
	return ProcEvent{
		Kind:  EventKind(e.Kind),
		PID:   e.Pid,
		TID:   e.Tid,
		PPID:  e.Ppid,
		Comm:  cString(comm),
		Start: time.Duration(e.StartNs),
		At:    time.Duration(e.TsNs),
	}, nil
}

// cString returns b up to its first NUL.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func commString(c [16]int8) string {
	b := make([]byte, len(c))
	for i, v := range c {
		b[i] = byte(v)
	}
	return cString(b)
}
