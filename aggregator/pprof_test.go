package aggregator

import (
	"bufio"
	"bytes"
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/pprofconv"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

var sink float64

//go:noinline
func busyHot(n int) float64 {
	x := 1.0
	for i := 0; i < n; i++ {
		x = math.Sqrt(x*x + float64(i))
	}
	return x
}

//go:noinline
func busyWarm(n int) float64 {
	x := 0.0
	for i := 0; i < n; i++ {
		x += math.Sin(float64(i))
	}
	return x
}

// profileCPU is how much CPU time cpuProfile collects: at the runtime's 100 Hz
// that is ~50 samples however loaded the machine is (its wall time grows instead).
const profileCPU = 500 * time.Millisecond

// profileWallLimit bounds cpuProfile's wall time on a starved machine.
const profileWallLimit = 60 * time.Second

// cpuProfile profiles busy work in this process until it has used profileCPU of
// CPU time and returns the pprof bytes.
func cpuProfile(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		t.Fatalf("start cpu profile: %v", err)
	}
	start, deadline := cpuTime(), time.Now().Add(profileWallLimit)
	for cpuTime()-start < profileCPU && time.Now().Before(deadline) {
		sink += busyHot(200_000)
		sink += busyWarm(60_000)
	}
	pprof.StopCPUProfile()
	return buf.Bytes()
}

// pprofTop runs `go tool pprof -top` and returns function → flat%.
func pprofTop(t *testing.T, file string) map[string]float64 {
	t.Helper()
	goBin := testenv.LookPath(t, "go", "golang-go, or Go from go.dev")
	out, err := exec.Command(goBin, "tool", "pprof", "-top", "-nodecount=10", file).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof: %v\n%s", err, out)
	}
	// "     0.80s 65.04% 65.04%      0.80s 65.04%  main.hashLoop"
	line := regexp.MustCompile(`^\s*\S+\s+([\d.]+)%\s+[\d.]+%\s+\S+\s+[\d.]+%\s+(.+)$`)
	got := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := line.FindStringSubmatch(sc.Text()); m != nil {
			pct, _ := strconv.ParseFloat(m[1], 64)
			got[strings.TrimSpace(m[2])] = pct
		}
	}
	if len(got) == 0 {
		t.Fatalf("no rows in go tool pprof output:\n%s", out)
	}
	return got
}

// TestPprofRoundTrip imports a real CPU profile, then checks that the query API's top
// table and `go tool pprof -top` on the exported profile agree.
func TestPprofRoundTrip(t *testing.T) {
	if testing.Short() {
		testenv.Skip(t, testenv.Short, "profiles %v of CPU time", profileCPU)
	}
	raw := cpuProfile(t)
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			ts := startServer(t, be.open(t), Config{})
			svc := uniqueService(t)
			samples, err := pprofconv.Parse(raw, pprofconv.ImportOptions{Labels: samplebatch.Labels{Service: svc, Version: "test"}})
			if err != nil {
				t.Fatal(err)
			}
			resps, err := write(ctx, ts.conn, "", &ingestv1.WriteRequest{BatchId: svc, ArrowIpc: encode(t, samples)})
			if err != nil || resps[0].Status != ingestv1.WriteResponse_STATUS_ACKED {
				t.Fatalf("write: %v %v", resps, err)
			}
			sel := model.Selection{Service: svc, From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Minute)}
			top, err := ts.client.Top(ctx, sel, 10)
			if err != nil {
				t.Fatal(err)
			}
			if top.Total < 20 {
				t.Fatalf("only %d samples after %v of CPU time; want >= 20 to compare shares", top.Total, profileCPU)
			}
			data, err := ts.client.ProfileBytes(ctx, sel, "pprof")
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "export.pb.gz")
			if err := os.WriteFile(file, data, 0o644); err != nil {
				t.Fatal(err)
			}
			pp := pprofTop(t, file)
			hot := "github.com/fleetprof/fleetprof/aggregator.busyHot"
			// The busy function dominates (by inclusive share: under -race the race
			// runtime's leaf frames take the self samples).
			all, err := ts.client.Top(ctx, sel, 1000)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, f := range all.Functions {
				if f.Function == hot {
					found = true
					if f.InclusivePct < 5 {
						t.Errorf("%s inclusive %.1f%%, want the bulk of the profile", hot, f.InclusivePct)
					}
				}
			}
			if !found {
				t.Errorf("%s missing from query top", hot)
			}
			compared := 0
			for _, f := range top.Functions {
				if f.SelfPct < 5 {
					continue
				}
				got, ok := pp[f.Function]
				if !ok {
					t.Errorf("%s (%.2f%% self in query top) missing from go tool pprof -top: %v", f.Function, f.SelfPct, pp)
					continue
				}
				// pprof prints two decimals.
				if math.Abs(got-f.SelfPct) > 0.011 {
					t.Errorf("%s: query top %.3f%%, pprof %.2f%%", f.Function, f.SelfPct, got)
				}
				compared++
			}
			if compared == 0 {
				t.Errorf("no function with ≥5%% self to compare: %+v", top.Functions)
			}
		})
	}
}
