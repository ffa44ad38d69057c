package sampler

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/fleetprof/fleetprof/agent/interp/python"
	"github.com/fleetprof/fleetprof/bpf"
)

// InterpFrame is one entry of a sample's interpreter section, leaf first,
// as the kernel walker of Kind recorded it. For Python (bpf/python.bpf.h):
// Addr is the code object, Aux packs the generation check, the instruction
// and the entry flag (see PythonFrame); Addr 0 is the end marker, Aux then
// holds the reason (PythonEnd).
type InterpFrame struct {
	Kind uint32
	Aux  uint32
	Addr uint64
}

// InterpPython is the kind of Python entries.
const InterpPython = uint32(bpf.ProfilerInterpKindINTERP_PYTHON)

// PythonEnd says why a kernel Python walk stopped early.
type PythonEnd uint32

// End reasons of the end marker.
const (
	PythonEndDepth   = PythonEnd(bpf.ProfilerPyEndPY_END_DEPTH)    // depth limit reached, older frames left
	PythonEndBadRead = PythonEnd(bpf.ProfilerPyEndPY_END_BAD_READ) // unreadable frame or code object
)

// Aux layout of a Python entry (PY_LINENO_MASK, PY_INSTR_SHIFT,
// PY_ENTRY_BIT in bpf/python.bpf.h).
const (
	pyLinenoMask = 0xffff
	pyInstrShift = 16
	pyInstrMask  = 0x7fff
	pyEntryBit   = 1 << 31
)

// pythonProcs is the python_procs map's size (bpf/python.bpf.h): how many
// CPython processes are walked at once.
const pythonProcs = 4096

// PythonMaxFrames is PY_MAX_FRAMES: deeper chains end with PythonEndDepth.
const PythonMaxFrames = 63

// PythonFrame decodes a Python entry: the low 16 bits of co_firstlineno
// (the name cache's generation check), the instruction's code-unit index
// (saturated at 0x7fff) and whether the frame is the oldest of one native
// eval call.
func PythonFrame(f InterpFrame) (lineno uint16, instr uint16, entry bool) {
	return uint16(f.Aux & pyLinenoMask), uint16(f.Aux >> pyInstrShift & pyInstrMask), f.Aux&pyEntryBit != 0
}

// frameKinds maps python.FrameKind to enum py_frame_kind.
var frameKinds = map[python.FrameKind]uint32{
	python.FrameObjects:  uint32(bpf.ProfilerPyFrameKindPY_FRAME_OBJECTS),
	python.FramesIsEntry: uint32(bpf.ProfilerPyFrameKindPY_FRAMES_IS_ENTRY),
	python.FramesShim:    uint32(bpf.ProfilerPyFrameKindPY_FRAMES_SHIM),
}

// pyFrameBuf is PY_FRAME_BUF: every frame field must lie in its first
// pyFrameBuf-8 bytes.
const pyFrameBuf = 128

// pythonProc converts a detected process to the walker's record.
func pythonProc(p python.Process) (bpf.ProfilerPythonProc, error) {
	l := p.Layout
	for _, off := range []int64{l.FrameCode, l.FramePrevious, l.FrameInstr, l.FrameIsEntry, l.FrameOwner} {
		if off > pyFrameBuf-8 {
			return bpf.ProfilerPythonProc{}, fmt.Errorf("python %s: frame field at %d beyond the walker's read", l.Version, off)
		}
	}
	kind, ok := frameKinds[l.Kind]
	if !ok {
		return bpf.ProfilerPythonProc{}, fmt.Errorf("python %s: unknown frame kind %d", l.Version, l.Kind)
	}
	native := uint32(0)
	if l.TstateNativeID {
		native = 1
	}
	return bpf.ProfilerPythonProc{
		Runtime:           p.Runtime,
		Version:           uint32(l.Version.Major<<8 | l.Version.Minor),
		FrameKind:         kind,
		RuntimeInterpHead: uint32(l.RuntimeInterpHead),
		InterpNext:        uint32(l.InterpNext),
		InterpThreadsHead: uint32(l.InterpThreadsHead),
		TstateNext:        uint32(l.TstateNext),
		TstateThreadId:    uint32(l.TstateThreadID),
		TstateNativeId:    native,
		TstateFrame:       uint32(l.TstateFrame),
		CframeCurrent:     int32(l.CFrameCurrent),
		FrameCode:         int32(l.FrameCode),
		FramePrevious:     int32(l.FramePrevious),
		FrameInstr:        int32(l.FrameInstr),
		FrameIsEntry:      int32(l.FrameIsEntry),
		FrameOwner:        int32(l.FrameOwner),
		OwnerCstack:       uint32(l.OwnerCStack),
		CodeFirstlineno:   uint32(l.CodeFirstLineno),
		CodeAdaptive:      int32(l.CodeAdaptive),
	}, nil
}

// SetPython makes samples of process p.PID carry its Python frames: it
// stores the layout for the kernel walker and marks the process's
// interpreter kind in pid_maps (keeping its mappings).
func (s *Sampler) SetPython(p python.Process) error {
	rec, err := pythonProc(p)
	if err != nil {
		return err
	}
	if err := s.objs.PythonProcs.Update(p.PID, &rec, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set python process %d: %w", p.PID, err)
	}
	s.procMapsMu.Lock() // SetProcess rewrites the same entry
	defer s.procMapsMu.Unlock()
	pm := &s.procMaps
	*pm = bpf.ProfilerProcMaps{}
	if err := s.objs.PidMaps.Lookup(p.PID, pm); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("read mappings of %d: %w", p.PID, err)
	}
	pm.Interp = uint32(bpf.ProfilerInterpKindINTERP_PYTHON)
	if err := s.objs.PidMaps.Update(p.PID, pm, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("mark python process %d: %w", p.PID, err)
	}
	return nil
}

// ForgetPython drops process pid's Python record (it exited or exec'd).
func (s *Sampler) ForgetPython(pid uint32) error {
	if err := s.objs.PythonProcs.Delete(pid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("forget python process %d: %w", pid, err)
	}
	return nil
}

// PythonStats are the kernel Python walker's counters (cumulative).
type PythonStats struct {
	Walks, NoProc, NoThread, TstateCached, SearchFault, Depth, BadRead, Frames uint64
}

func (s *Sampler) pythonStats() (PythonStats, error) {
	var v [bpf.ProfilerPyStatIdxPY_STAT_MAX]uint64
	var perCPU []uint64
	for i := range v {
		if err := s.objs.PythonStats.Lookup(uint32(i), &perCPU); err != nil {
			return PythonStats{}, fmt.Errorf("read python stats: %w", err)
		}
		for _, c := range perCPU {
			v[i] += c
		}
	}
	return PythonStats{
		Walks: v[bpf.ProfilerPyStatIdxPY_STAT_WALKS], NoProc: v[bpf.ProfilerPyStatIdxPY_STAT_NO_PROC],
		NoThread: v[bpf.ProfilerPyStatIdxPY_STAT_NO_THREAD], TstateCached: v[bpf.ProfilerPyStatIdxPY_STAT_TSTATE_CACHED],
		SearchFault: v[bpf.ProfilerPyStatIdxPY_STAT_SEARCH_FAULT], Depth: v[bpf.ProfilerPyStatIdxPY_STAT_DEPTH],
		BadRead: v[bpf.ProfilerPyStatIdxPY_STAT_BAD_READ], Frames: v[bpf.ProfilerPyStatIdxPY_STAT_FRAMES],
	}, nil
}
