package bpf

import (
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
)

// TestSpec checks the embedded object without loading it (no root needed).
func TestSpec(t *testing.T) {
	spec, err := LoadProfiler()
	if err != nil {
		t.Fatalf("LoadProfiler: %v", err)
	}
	progs := map[string]ebpf.ProgramType{
		ProfilerProgDoSample:   ebpf.PerfEvent,
		ProfilerProgHandleExec: ebpf.Tracing,
		ProfilerProgHandleExit: ebpf.Tracing,
		ProfilerProgHandleFork: ebpf.Tracing,
	}
	for name, typ := range progs {
		p, ok := spec.Programs[name]
		if !ok {
			t.Errorf("program %s missing", name)
			continue
		}
		if p.Type != typ {
			t.Errorf("program %s type %v, want %v", name, p.Type, typ)
		}
	}
	maps := map[string]ebpf.MapType{
		ProfilerMapStacks0: ebpf.StackTrace,
		ProfilerMapStacks1: ebpf.StackTrace,
		ProfilerMapCounts0: ebpf.Hash,
		ProfilerMapCounts1: ebpf.Hash,
		ProfilerMapStats:   ebpf.PerCPUArray,
		ProfilerMapEvents:  ebpf.RingBuf,
	}
	for name, typ := range maps {
		m, ok := spec.Maps[name]
		if !ok {
			t.Errorf("map %s missing", name)
			continue
		}
		if m.Type != typ {
			t.Errorf("map %s type %v, want %v", name, m.Type, typ)
		}
	}
	if got, want := spec.Maps[ProfilerMapCounts0].KeySize, uint32(unsafe.Sizeof(ProfilerSampleKey{})); got != want {
		t.Errorf("count map key size %d, Go type %d", got, want)
	}
	if got := spec.Maps[ProfilerMapStats].MaxEntries; got != uint32(ProfilerStatIdxSTAT_MAX) {
		t.Errorf("stats map has %d entries, want STAT_MAX %d", got, ProfilerStatIdxSTAT_MAX)
	}
	for _, v := range []string{ProfilerVarSkipIdle, ProfilerVarActiveBuf} {
		if _, ok := spec.Variables[v]; !ok {
			t.Errorf("variable %s missing", v)
		}
	}
}
