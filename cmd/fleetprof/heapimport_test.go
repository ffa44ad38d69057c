package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/fleetprof/fleetprof/aggregator/storage/clickhousetest"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
	"github.com/google/pprof/profile"
)

// heapBlocks are what heapAllocate allocates: 64 blocks of 1 MiB, all of them in
// the heap profile with MemProfileRate 1.
const (
	heapBlocks    = 64
	heapBlockSize = 1 << 20
)

var heapKeep [][]byte

// heapAllocate allocates only the blocks (heapKeep is made by the caller), so its
// alloc_space is exactly heapBlocks × heapBlockSize.
//
//go:noinline
func heapAllocate() {
	for i := range heapKeep {
		heapKeep[i] = make([]byte, heapBlockSize)
	}
}

// writeHeapProfile records every allocation of heapAllocate in a real heap profile.
func writeHeapProfile(t *testing.T, dir string) string {
	t.Helper()
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = old }()
	heapKeep = make([][]byte, heapBlocks)
	heapAllocate()
	runtime.GC() // the heap profile is as of the last completed GC
	f := filepath.Join(dir, "heap.pb.gz")
	out, err := os.Create(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.WriteHeapProfile(out); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return f
}

// heapProfileBytes reads sampleType's total from a pprof file and the part of it
// whose leaf function is fn: what the store must answer.
func heapProfileBytes(t *testing.T, file, sampleType, fn string) (total, self int64) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := profile.ParseData(data)
	if err != nil {
		t.Fatal(err)
	}
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == sampleType {
			idx = i
		}
	}
	if idx < 0 {
		t.Fatalf("%s: no sample type %s", file, sampleType)
	}
	for _, smp := range p.Sample {
		v := smp.Value[idx]
		if v <= 0 || len(smp.Location) == 0 {
			continue
		}
		total += v
		if l := smp.Location[0].Line; len(l) > 0 && l[0].Function.Name == fn {
			self += v
		}
	}
	return total, self
}

// TestImportHeapProfile imports a real heap profile with --sample-type
// alloc_space/bytes on embedded chDB and on clickhouse-server: a query of that
// type shows heapAllocate with its bytes, CPU queries are unchanged, and without
// --sample-type the profile is refused naming its types.
func TestImportHeapProfile(t *testing.T) {
	dir := t.TempDir()
	heap := writeHeapProfile(t, dir)
	cpu := writeProfile(t, dir, "cpu.pb.gz", []model.StackCount{{Frames: []string{"main", "serve", "parse"}, Value: 6}})
	const allocFn = "github.com/fleetprof/fleetprof/cmd/fleetprof.heapAllocate"
	wantTotal, wantSelf := heapProfileBytes(t, heap, "alloc_space", allocFn)
	if wantSelf < heapBlocks*heapBlockSize {
		t.Fatalf("heap profile: %s allocated %d bytes, want at least %d", allocFn, wantSelf, heapBlocks*heapBlockSize)
	}
	for _, st := range []struct {
		name string
		uri  func(t *testing.T) string
	}{
		{"embedded", func(t *testing.T) string {
			if !chdbInstalled() {
				testenv.Skip(t, testenv.MissingTool, "chDB library not installed: run scripts/fetch-chdb.sh (or make setup)")
			}
			return "embedded:" + filepath.Join(t.TempDir(), "data")
		}},
		{"server", func(t *testing.T) string { return "clickhouse://" + clickhousetest.Start(t) + "/heaptest" }},
	} {
		t.Run(st.name, func(t *testing.T) {
			grpcAddr, httpAddr := startAggregatorOn(t, st.uri(t), "tk")
			imp := func(args ...string) (string, error) {
				return cli(t, runImport, append(args, "--grpc", grpcAddr, "--token", "tk", "--service", "heapsvc")...)
			}
			if _, err := imp(heap); err == nil || !strings.Contains(err.Error(), "alloc_space/bytes") || !strings.Contains(err.Error(), "--sample-type") {
				t.Fatalf("heap import without --sample-type: %v, want a refusal naming the types and --sample-type", err)
			}
			if out, err := imp(cpu); err != nil {
				t.Fatalf("cpu import: %q %v", out, err)
			}
			if out, err := imp(heap, "--sample-type", "alloc_space/bytes"); err != nil || !strings.HasSuffix(out, "rows stored\n") {
				t.Fatalf("heap import: %q %v", out, err)
			}
			if out, err := imp(heap, "--sample-type", "alloc_space/bytes"); err != nil || !strings.HasSuffix(out, "duplicate (already imported)\n") {
				t.Fatalf("heap re-import: %q %v", out, err)
			}
			top := func(args ...string) model.Top {
				t.Helper()
				out, err := cli(t, runQuery, append([]string{"top", "--json", "--limit", "1000"}, append(args, "--http", httpAddr, "--service", "heapsvc", "--from", "now-1h")...)...)
				if err != nil {
					t.Fatalf("query top %v: %v", args, err)
				}
				var tp model.Top
				if err := json.Unmarshal([]byte(out), &tp); err != nil {
					t.Fatalf("top --json: %v\n%s", err, out)
				}
				return tp
			}
			ht := top("--profile-type", "alloc_space/bytes")
			var alloc model.FunctionStat
			for _, f := range ht.Functions {
				if f.Function == allocFn {
					alloc = f
				}
			}
			if len(ht.Functions) == 0 || ht.Functions[0].Function != allocFn || alloc.Self != wantSelf || ht.Total != wantTotal {
				t.Fatalf("alloc_space top: total %d, first %+v; want total %d, %s first with the profile's %d bytes",
					ht.Total, ht.Functions[:min(1, len(ht.Functions))], wantTotal, allocFn, wantSelf)
			}
			t.Logf("alloc_space/bytes: total %d bytes, %s self %d bytes (%.1f%%)", ht.Total, allocFn, alloc.Self, alloc.SelfPct)
			for _, args := range [][]string{nil, {"--profile-type", "cpu"}} {
				if ct := top(args...); ct.Total != 6 || len(ct.Functions) != 3 || ct.Functions[0].Function != "parse" {
					t.Fatalf("cpu top %v = %+v, want the 6 CPU samples only", args, ct)
				}
			}
			if gt := top("--profile-type", "goroutine/count"); gt.Total != 0 {
				t.Fatalf("goroutine/count top = %+v, want empty", gt)
			}
			if _, err := cli(t, runQuery, "top", "--http", httpAddr, "--profile-type", "Heap"); err == nil || !strings.Contains(err.Error(), "--profile-type") {
				t.Fatalf("bad --profile-type: %v", err)
			}
		})
	}
}
