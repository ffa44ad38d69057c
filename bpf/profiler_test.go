package bpf

import (
	"errors"

	"testing"
	"unsafe"

	"github.com/fleetprof/fleetprof/internal/testenv"

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

// TestLoadVerifier loads every program into the running kernel, so a
// walker the verifier rejects fails here first.
func TestLoadVerifier(t *testing.T) {
	testenv.Root(t, "loading BPF programs needs root")
	spec, err := LoadProfiler()
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]uint32{ProfilerMapUnwindRows: 1 << 16, ProfilerMapUnwindFiles: 1024, ProfilerMapPidMaps: 1024}
	for name, n := range sizes {
		spec.Maps[name].MaxEntries = n
	}
	var objs ProfilerObjects
	if err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{LogSizeStart: 1 << 20}}); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Fatalf("verifier: %+v", ve)
		}
		t.Fatal(err)
	}
	defer objs.Close()
	info, err := objs.DoSample.Info()
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := info.VerifiedInstructions(); ok {
		t.Logf("do_sample: %d instructions verified", n)
	}
}
