package sampler

import (
	"testing"

	"github.com/fleetprof/fleetprof/agent/unwind"
	"github.com/fleetprof/fleetprof/bpf"
)

// TestTables writes rows, a file and a process through the real maps and
// reads them back as the walker sees them; a process's interpreter kind
// (set by another writer) survives SetProcess.
func TestTables(t *testing.T) {
	s := newTestSampler(t, Config{UnwindRows: 64, UnwindFiles: 8, UnwindProcs: 8})
	rows := []unwind.Row{
		{PC: 0x1000, CFAOff: 8, Kind: unwind.KindCFASP, RAOff: -8},
		{PC: 0x1004, CFAOff: 16, Kind: unwind.KindCFASP, FPRule: unwind.FPAtCFA, FPOff: -16, RAOff: -8},
		{PC: 0x1010, Kind: unwind.KindGap},
	}
	if err := s.WriteRows(10, rows); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteRows(62, rows); err == nil {
		t.Error("rows beyond the map accepted")
	}
	for i, want := range rows {
		var got bpf.ProfilerUnwindRow
		if err := s.objs.UnwindRows.Lookup(uint32(10+i), &got); err != nil {
			t.Fatal(err)
		}
		if got.Pc != want.PC || got.CfaOff != want.CFAOff || unwind.Kind(got.Kind) != want.Kind || got.FpRule != want.FPRule || got.FpOff != want.FPOff || got.RaOff != want.RAOff {
			t.Errorf("row %d: got %+v, want %v", i, got, want)
		}
	}
	if err := s.SetFile(3, 10, uint32(len(rows))); err != nil {
		t.Fatal(err)
	}
	var fr bpf.ProfilerFileRows
	if err := s.objs.UnwindFiles.Lookup(uint32(3), &fr); err != nil || fr.First != 10 || fr.Count != 3 {
		t.Errorf("file 3: %+v %v", fr, err)
	}

	const pid = 4242
	pre := bpf.ProfilerProcMaps{Interp: uint32(bpf.ProfilerInterpKindINTERP_PYTHON)}
	if err := s.objs.PidMaps.Put(uint32(pid), &pre); err != nil {
		t.Fatal(err)
	}
	maps := []unwind.Mapping{{Start: 0x5000, End: 0x6000, Bias: 0x4000, FileID: 3}, {Start: 0x7000, End: 0x8000}}
	if err := s.SetProcess(pid, maps); err != nil {
		t.Fatal(err)
	}
	var pm bpf.ProfilerProcMaps
	if err := s.objs.PidMaps.Lookup(uint32(pid), &pm); err != nil {
		t.Fatal(err)
	}
	if pm.N != 2 || pm.Interp != pre.Interp || pm.M[0].Start != 0x5000 || pm.M[0].Bias != 0x4000 || pm.M[0].FileId != 3 || pm.M[1].End != 0x8000 {
		t.Errorf("process maps: n %d interp %d %+v", pm.N, pm.Interp, pm.M[:2])
	}
	if err := s.DeleteProcess(pid); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteProcess(pid); err != nil {
		t.Errorf("second delete: %v", err)
	}
}
