package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/fleetprof/fleetprof/agent/interp"
	"github.com/fleetprof/fleetprof/agent/interp/python"
	"github.com/fleetprof/fleetprof/agent/procmaps"
	"github.com/fleetprof/fleetprof/agent/sampler"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// pythonEvalFrame is the native function that runs Python frames (3.10-3.13);
// interp.Merge puts the Python frames in its place.
const pythonEvalFrame = "_PyEval_EvalFrameDefault"

// PythonStats count CPython support in the agent.
type PythonStats struct {
	Processes   uint64 // CPython processes detected and handed to the kernel walker
	Unsupported uint64 // CPython processes of a version without a layout (logged once each)
	SetErrors   uint64 // CPython processes the sampler could not take (maps full)
	Frames      uint64 // Python frames named into stacks
	Unnamed     uint64 // Python frames whose code object could not be read (shown as [python])
	Truncated   uint64 // samples whose Python walk hit the kernel's depth limit
	BadReads    uint64 // samples whose Python walk ended on an unreadable frame
}

// pythons detects CPython processes, hands them to the sampler and names
// the Python frames of their samples.
type pythons struct {
	src    sampler.Source
	mu     sync.Mutex // guards the fields below
	procs  map[uint32]*pyProc
	absent map[uint32]bool // checked at a flush: not (or not a supported) python
	// dead holds exited processes until the flush after the one in
	// progress at their exit has merged their last samples (named from the
	// Namer's cache: their memory is gone).
	dead  map[uint32]uint64
	gen   uint64 // flushes done
	namer *python.Namer
	det   python.Detector
	st    struct{ processes, unsupported, frames, unnamed, truncated, badReads, setErrors atomic.Uint64 }
}

type pyProc struct {
	p   python.Process
	mem *os.File
}

func newPythons(src sampler.Source) *pythons {
	return &pythons{src: src, procs: map[uint32]*pyProc{}, absent: map[uint32]bool{}, dead: map[uint32]uint64{}, namer: python.NewNamer(python.DefaultCacheEntries)}
}

// detect checks pid for CPython; true when it is one now being walked.
// maps are pid's maps if the caller read them already (nil: read them).
// Called with mu held.
func (ps *pythons) detect(pid uint32, maps []procmaps.Mapping) bool {
	if _, ok := ps.procs[pid]; ok {
		return true
	}
	var p python.Process
	var err error
	if maps != nil {
		p, err = ps.det.DetectMaps("/proc", pid, maps)
	} else {
		p, err = ps.det.Detect("/proc", pid)
	}
	if errors.Is(err, python.ErrUnsupported) {
		ps.st.unsupported.Add(1)
		slog.Warn("python version not supported, its frames are not walked", "pid", pid, "err", err)
		return false
	}
	if err != nil {
		return false
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return false
	}
	if err := ps.src.SetPython(p); err != nil {
		ps.st.setErrors.Add(1)
		mem.Close()
		return false
	}
	ps.procs[pid] = &pyProc{p: p, mem: mem}
	ps.st.processes.Add(1)
	return true
}

// started runs on exec and fork discovery: a CPython executable is mapped
// by then (a libpython may not be yet; the first flush with samples of the
// process looks again).
func (ps *pythons) started(pid uint32, maps []procmaps.Mapping) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.forgetLocked(pid)
	ps.detect(pid, maps)
}

// execed forgets pid's old image and detects the new one at once, from the
// maps read at the exec: a process detected only at the next flush is gone
// by then if it lives a few hundred milliseconds. A python3.X executable is mapped by exec; a libpython
// mapped later by the loader is found at the first flush with samples of
// the process.
func (ps *pythons) execed(pid uint32, maps []procmaps.Mapping) { ps.started(pid, maps) }

// exited forgets pid after the next flush (see dead).
func (ps *pythons) exited(pid uint32) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if _, ok := ps.procs[pid]; ok {
		ps.dead[pid] = ps.gen
	} else {
		delete(ps.absent, pid)
	}
}

// sweep runs at the end of each flush's aggregation.
func (ps *pythons) sweep() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for pid, g := range ps.dead {
		if g < ps.gen {
			ps.forgetLocked(pid)
		}
	}
	ps.gen++
}

// code names a code object the kernel walker reported (EventPythonCode)
// while its process still runs.
func (ps *pythons) code(pid uint32, addr uint64, lineno uint16) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	pp := ps.procs[pid]
	if pp == nil {
		return
	}
	if _, err := ps.namer.Name(pp.mem, pp.p.Layout, pid, python.RawFrame{Code: addr, FirstLineno: uint32(lineno)}); err != nil {
		ps.st.unnamed.Add(1)
	}
}

func (ps *pythons) forgetLocked(pid uint32) {
	delete(ps.absent, pid)
	delete(ps.dead, pid)
	pp, ok := ps.procs[pid]
	if !ok {
		return
	}
	pp.mem.Close()
	delete(ps.procs, pid)
	ps.namer.Forget(pid)
	_ = ps.src.ForgetPython(pid) // gone with the process anyway
}

// merge puts the Python frames of sample s into frames (root first, as the
// symbolizer named them), and returns the locations of the result's frames
// too (interp.Merge; nil without Python frames). Processes seen for the first
// time are detected here, so ones running before the agent are walked from
// the next samples.
func (ps *pythons) merge(s sampler.Sample, frames []string) (names, locs []string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	pp := ps.procs[s.TGID]
	if pp == nil {
		if !ps.absent[s.TGID] && !ps.detect(s.TGID, nil) {
			ps.absent[s.TGID] = true
		}
		return frames, nil
	}
	if len(s.Interp) == 0 {
		return frames, nil
	}
	var py []interp.Frame
	truncated := false
	for _, f := range s.Interp {
		if f.Kind != sampler.InterpPython {
			continue
		}
		if f.Addr == 0 { // end marker
			switch sampler.PythonEnd(f.Aux) {
			case sampler.PythonEndDepth:
				truncated = true
				ps.st.truncated.Add(1)
			case sampler.PythonEndBadRead:
				ps.st.badReads.Add(1)
			}
			continue
		}
		lineno, _, entry := sampler.PythonFrame(f)
		fr := interp.Frame{Name: "[python]", Entry: entry}
		c, err := ps.namer.Name(pp.mem, pp.p.Layout, s.TGID, python.RawFrame{Code: f.Addr, FirstLineno: uint32(lineno), Entry: entry})
		if err == nil {
			fr.Name = c.Name
			fr.Location = codeLocation(c)
			ps.st.frames.Add(1)
		} else {
			ps.st.unnamed.Add(1)
		}
		py = append(py, fr)
	}
	return interp.Merge(frames, py, truncated, func(n string) bool { return strings.HasPrefix(n, pythonEvalFrame) })
}

// codeLocation is the frame location of c (samplebatch.Location), "" when c
// has no file or first line, or the location is over the batch's bound.
func codeLocation(c python.Code) string {
	if c.File == "" || c.FirstLineno == 0 {
		return ""
	}
	loc := samplebatch.Location(c.File, int(c.FirstLineno))
	if len(loc) > samplebatch.MaxLocationBytes {
		return ""
	}
	return loc
}

func (ps *pythons) stats() PythonStats {
	return PythonStats{
		Processes: ps.st.processes.Load(), Unsupported: ps.st.unsupported.Load(), SetErrors: ps.st.setErrors.Load(),
		Frames: ps.st.frames.Load(), Unnamed: ps.st.unnamed.Load(),
		Truncated: ps.st.truncated.Load(), BadReads: ps.st.badReads.Load(),
	}
}
