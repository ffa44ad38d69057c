package sampler

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/fleetprof/fleetprof/agent/unwind"
	"github.com/fleetprof/fleetprof/bpf"
)

// rowBatch is the number of unwind rows written per batch syscall.
const rowBatch = 4096

var _ unwind.Tables = (*Sampler)(nil)

// WriteRows stores rows at unwind_rows[first, first+len(rows)).
func (s *Sampler) WriteRows(first uint32, rows []unwind.Row) error {
	if uint64(first)+uint64(len(rows)) > uint64(s.cfg.UnwindRows) {
		return fmt.Errorf("write rows [%d, %d): beyond %d rows", first, int(first)+len(rows), s.cfg.UnwindRows)
	}
	keys := make([]uint32, 0, rowBatch)
	vals := make([]bpf.ProfilerUnwindRow, 0, rowBatch)
	flush := func() error {
		if len(keys) == 0 {
			return nil
		}
		_, err := s.objs.UnwindRows.BatchUpdate(keys, vals, nil)
		if errors.Is(err, ebpf.ErrNotSupported) {
			for i := range keys {
				if err := s.objs.UnwindRows.Update(keys[i], vals[i], ebpf.UpdateAny); err != nil {
					return fmt.Errorf("write row %d: %w", keys[i], err)
				}
			}
			err = nil
		}
		keys, vals = keys[:0], vals[:0]
		if err != nil {
			return fmt.Errorf("write rows: %w", err)
		}
		return nil
	}
	for i, r := range rows {
		keys = append(keys, first+uint32(i))
		vals = append(vals, bpf.ProfilerUnwindRow{Pc: r.PC, CfaOff: r.CFAOff, Kind: uint8(r.Kind), FpRule: r.FPRule, FpOff: r.FPOff, RaRule: r.RARule, RaOff: r.RAOff})
		if len(keys) == rowBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// SetFile points file id at unwind_rows[first, first+count).
func (s *Sampler) SetFile(id, first, count uint32) error {
	if err := s.objs.UnwindFiles.Update(id, bpf.ProfilerFileRows{First: first, Count: count}, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set unwind file %d: %w", id, err)
	}
	return nil
}

// SetProcess replaces pid's mappings, keeping the interpreter kind set for it.
func (s *Sampler) SetProcess(pid uint32, maps []unwind.Mapping) error {
	s.procMapsMu.Lock()
	defer s.procMapsMu.Unlock()
	pm := &s.procMaps
	*pm = bpf.ProfilerProcMaps{}
	if err := s.objs.PidMaps.Lookup(pid, pm); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("read mappings of %d: %w", pid, err)
	}
	*pm = bpf.ProfilerProcMaps{Interp: pm.Interp}
	n := min(len(maps), len(pm.M))
	for i, m := range maps[:n] {
		pm.M[i].Start, pm.M[i].End, pm.M[i].Bias, pm.M[i].FileId = m.Start, m.End, m.Bias, m.FileID
	}
	pm.N = uint32(n)
	if err := s.objs.PidMaps.Update(pid, pm, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write mappings of %d: %w", pid, err)
	}
	return nil
}

// DeleteProcess forgets pid's mappings.
func (s *Sampler) DeleteProcess(pid uint32) error {
	if err := s.objs.PidMaps.Delete(pid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete mappings of %d: %w", pid, err)
	}
	return nil
}
