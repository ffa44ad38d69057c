package python

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is a CPython major.minor.
type Version struct{ Major, Minor int }

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// ErrUnsupported is returned for a CPython version without a layout.
var ErrUnsupported = errors.New("unsupported python version")

// FrameKind says how a version links its frames and marks eval calls.
type FrameKind int

const (
	// FrameObjects: 3.10, PyFrameObject chain, one frame per eval call.
	FrameObjects FrameKind = iota
	// FramesIsEntry: 3.11, _PyInterpreterFrame chain, is_entry ends an eval call.
	FramesIsEntry
	// FramesShim: 3.12+, _PyInterpreterFrame chain, a C-stack-owned shim
	// frame sits below each eval call's frames.
	FramesShim
)

// Layout holds the offsets (bytes, LP64) of every field a walk reads.
// CFrame < 0 means the thread state points at the current frame directly.
type Layout struct {
	Version Version
	Kind    FrameKind

	RuntimeInterpHead int64 // _PyRuntime.interpreters.head
	InterpNext        int64 // PyInterpreterState.next
	InterpThreadsHead int64 // PyInterpreterState.threads.head (3.10 tstate_head)

	TstateNext     int64 // PyThreadState.next
	TstateThreadID int64 // native_thread_id (3.11+) or thread_id (3.10)
	TstateNativeID bool  // TstateThreadID holds the kernel thread id
	TstateFrame    int64 // 3.10 frame, 3.11/3.12 cframe, 3.13 current_frame
	CFrameCurrent  int64 // _PyCFrame.current_frame; < 0: no cframe

	FrameCode     int64 // f_code / f_executable
	FramePrevious int64 // previous / f_back
	FrameIsEntry  int64 // 3.11 is_entry; < 0 when absent
	FrameOwner    int64 // owner; < 0 when absent
	OwnerCStack   uint8 // FRAME_OWNED_BY_CSTACK (3.12+)
	// FrameInstr: prev_instr (3.11, 3.12) or instr_ptr (3.13), pointers
	// into the code's bytecode; f_lasti (3.10, an int counting code units).
	FrameInstr int64

	CodeAdaptive int64 // co_code_adaptive: start of the bytecode (3.11+)

	CodeFilename    int64
	CodeName        int64 // co_qualname (3.11+), co_name (3.10)
	CodeFirstLineno int64

	UnicodeState  int64 // PyASCIIObject.state
	UnicodeLength int64 // PyASCIIObject.length
	ASCIIData     int64 // sizeof(PyASCIIObject): data of a compact ASCII string
	CompactData   int64 // sizeof(PyCompactUnicodeObject): data of other compact strings
}

// layouts per minor version of CPython 3. See doc.go for their sources.
var layouts = map[int]Layout{
	10: {
		Kind: FrameObjects, RuntimeInterpHead: 32, InterpNext: 0, InterpThreadsHead: 8,
		TstateNext: 8, TstateThreadID: 176, TstateFrame: 24, CFrameCurrent: -1,
		FrameCode: 32, FramePrevious: 24, FrameIsEntry: -1, FrameOwner: -1, FrameInstr: 96, CodeAdaptive: -1,
		CodeFilename: 104, CodeName: 112, CodeFirstLineno: 40,
		UnicodeState: 32, UnicodeLength: 16, ASCIIData: 48, CompactData: 72,
	},
	11: {
		Kind: FramesIsEntry, RuntimeInterpHead: 40, InterpNext: 0, InterpThreadsHead: 16,
		TstateNext: 8, TstateThreadID: 160, TstateNativeID: true, TstateFrame: 56, CFrameCurrent: 8,
		FrameCode: 32, FramePrevious: 48, FrameIsEntry: 68, FrameOwner: 69, FrameInstr: 56, CodeAdaptive: 184,
		CodeFilename: 112, CodeName: 128, CodeFirstLineno: 72,
		UnicodeState: 32, UnicodeLength: 16, ASCIIData: 48, CompactData: 72,
	},
	12: {
		Kind: FramesShim, RuntimeInterpHead: 40, InterpNext: 0, InterpThreadsHead: 72,
		TstateNext: 8, TstateThreadID: 144, TstateNativeID: true, TstateFrame: 56, CFrameCurrent: 0,
		FrameCode: 0, FramePrevious: 8, FrameIsEntry: -1, FrameOwner: 70, OwnerCStack: 3, FrameInstr: 56, CodeAdaptive: 192,
		CodeFilename: 112, CodeName: 128, CodeFirstLineno: 68,
		UnicodeState: 32, UnicodeLength: 16, ASCIIData: 40, CompactData: 56,
	},
	13: {
		Kind: FramesShim, RuntimeInterpHead: 32 + 0, InterpNext: 0, InterpThreadsHead: 0, // from _Py_DebugOffsets
		TstateNext: 8, TstateThreadID: 160, TstateNativeID: true, TstateFrame: 72, CFrameCurrent: -1,
		FrameCode: 0, FramePrevious: 8, FrameIsEntry: -1, FrameOwner: 70, OwnerCStack: 3, FrameInstr: 56, CodeAdaptive: 200,
		CodeFilename: 112, CodeName: 128, CodeFirstLineno: 68,
		UnicodeState: 32, UnicodeLength: 16, ASCIIData: 40, CompactData: 56,
	},
}

// debugOffsetsMinor is the first minor version whose _PyRuntime starts with
// _Py_DebugOffsets.
const debugOffsetsMinor = 13

// debugCookie starts _Py_DebugOffsets.
const debugCookie = "xdebugpy"

// Positions in _Py_DebugOffsets (3.13, checked with gdb on pyenv's
// 3.13.0): cookie[8], version, free_threaded, then
// runtime_state{size, finalizing, interpreters_head} and
// interpreter_state{size, id, next, threads_head, ...}.
const (
	debugVersionAt     = 8
	debugInterpHeadAt  = 40
	debugInterpNextAt  = 64
	debugThreadsHeadAt = 72
	debugPrefixSize    = 80
)

// LayoutFor returns the layout of version v. For 3.13 runtime is the start
// of _PyRuntime's initialized data (its _Py_DebugOffsets); it is ignored
// for earlier versions.
func LayoutFor(v Version, runtime []byte) (Layout, error) {
	l, ok := layouts[v.Minor]
	if v.Major != 3 || !ok {
		return Layout{}, fmt.Errorf("%w: %s (supported: 3.10-3.13)", ErrUnsupported, v)
	}
	l.Version = v
	if v.Minor < debugOffsetsMinor {
		return l, nil
	}
	if len(runtime) < debugPrefixSize || string(runtime[:len(debugCookie)]) != debugCookie {
		return Layout{}, fmt.Errorf("%w: %s without _Py_DebugOffsets cookie", ErrUnsupported, v)
	}
	le := binary.LittleEndian
	// version is PY_VERSION_HEX: major<<24 | minor<<16 | ...
	if hex := le.Uint64(runtime[debugVersionAt:]); int(hex>>24) != v.Major || int(hex>>16&0xff) != v.Minor {
		return Layout{}, fmt.Errorf("%w: _Py_DebugOffsets says %#x, binary says %s", ErrUnsupported, hex, v)
	}
	l.RuntimeInterpHead = int64(le.Uint64(runtime[debugInterpHeadAt:]))
	l.InterpNext = int64(le.Uint64(runtime[debugInterpNextAt:]))
	l.InterpThreadsHead = int64(le.Uint64(runtime[debugThreadsHeadAt:]))
	return l, nil
}

// VersionFromHex decodes Py_Version (PY_VERSION_HEX).
func VersionFromHex(hex uint64) Version {
	return Version{Major: int(hex >> 24 & 0xff), Minor: int(hex >> 16 & 0xff)}
}
