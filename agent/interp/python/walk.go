package python

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxFrames is the depth limit of a walk: deeper chains are truncated (the
// oldest frames are dropped) and reported so.
const MaxFrames = 64

// maxInterpreters and maxThreads bound the thread-state search.
const (
	maxInterpreters = 8
	maxThreads      = 256
)

// ErrNoThread is returned when no thread state belongs to the thread.
var ErrNoThread = errors.New("thread has no python thread state")

// RawFrame is one frame as a walk reads it: what the kernel walker will
// report per frame.
type RawFrame struct {
	Code        uint64 // code object address
	FirstLineno uint32 // co_firstlineno, the code object's generation check
	Entry       bool   // oldest frame of one native eval call
}

// Stack is the result of one walk, leaf first.
type Stack struct {
	Frames    []RawFrame
	Truncated bool // MaxFrames reached with older frames left
}

// Memory reads another process's memory (/proc/PID/mem is one).
type Memory = io.ReaderAt

func readU64(m Memory, addr uint64) (uint64, error) {
	var b [8]byte
	if _, err := m.ReadAt(b[:], int64(addr)); err != nil {
		return 0, fmt.Errorf("read %#x: %w", addr, err)
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

func readU8(m Memory, addr uint64) (uint8, error) {
	var b [1]byte
	if _, err := m.ReadAt(b[:], int64(addr)); err != nil {
		return 0, fmt.Errorf("read %#x: %w", addr, err)
	}
	return b[0], nil
}

// ThreadState finds the thread state of thread id in every interpreter.
// id is the kernel thread id for 3.11+ and the pthread handle for 3.10.
func ThreadState(m Memory, p Process, id uint64) (uint64, error) {
	l := p.Layout
	interp, err := readU64(m, p.Runtime+uint64(l.RuntimeInterpHead))
	if err != nil {
		return 0, err
	}
	for i := 0; interp != 0 && i < maxInterpreters; i++ {
		ts, err := readU64(m, interp+uint64(l.InterpThreadsHead))
		if err != nil {
			return 0, err
		}
		for j := 0; ts != 0 && j < maxThreads; j++ {
			tid, err := readU64(m, ts+uint64(l.TstateThreadID))
			if err != nil {
				return 0, err
			}
			if tid == id {
				return ts, nil
			}
			if ts, err = readU64(m, ts+uint64(l.TstateNext)); err != nil {
				return 0, err
			}
		}
		if interp, err = readU64(m, interp+uint64(l.InterpNext)); err != nil {
			return 0, err
		}
	}
	return 0, ErrNoThread
}

// Walk reads the frame chain of thread state ts, leaf first. A read that
// fails ends the walk with the frames read so far and the error.
func Walk(m Memory, l Layout, ts uint64) (Stack, error) {
	var st Stack
	frame, err := readU64(m, ts+uint64(l.TstateFrame))
	if err != nil {
		return st, err
	}
	if l.CFrameCurrent >= 0 && frame != 0 {
		if frame, err = readU64(m, frame+uint64(l.CFrameCurrent)); err != nil {
			return st, err
		}
	}
	for frame != 0 {
		if len(st.Frames) == MaxFrames {
			st.Truncated = true
			return st, nil
		}
		f, skip, err := readFrame(m, l, frame)
		if err != nil {
			return st, err
		}
		if skip {
			// A C-stack shim below an eval call's frames: the frame
			// above it (already read) was that call's oldest.
			if n := len(st.Frames); n > 0 {
				st.Frames[n-1].Entry = true
			}
		} else {
			st.Frames = append(st.Frames, f)
		}
		if frame, err = readU64(m, frame+uint64(l.FramePrevious)); err != nil {
			return st, err
		}
	}
	return st, nil
}

func readFrame(m Memory, l Layout, frame uint64) (RawFrame, bool, error) {
	var f RawFrame
	if l.Kind == FramesShim {
		owner, err := readU8(m, frame+uint64(l.FrameOwner))
		if err != nil {
			return f, false, err
		}
		if owner == l.OwnerCStack {
			return f, true, nil
		}
	}
	code, err := readU64(m, frame+uint64(l.FrameCode))
	if err != nil {
		return f, false, err
	}
	f.Code = code
	var b [4]byte
	if _, err := m.ReadAt(b[:], int64(code+uint64(l.CodeFirstLineno))); err != nil {
		return f, false, fmt.Errorf("read code %#x: %w", code, err)
	}
	f.FirstLineno = binary.LittleEndian.Uint32(b[:])
	switch l.Kind {
	case FrameObjects:
		f.Entry = true
	case FramesIsEntry:
		e, err := readU8(m, frame+uint64(l.FrameIsEntry))
		if err != nil {
			return f, false, err
		}
		f.Entry = e != 0
	}
	return f, false, nil
}
