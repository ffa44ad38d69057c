package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/model"
)

// workloadSpec is one profiled workload process: its service name and schedule,
// and which of its functions' series are held out.
type workloadSpec struct {
	service string
	knots   []knot
	heldOut map[string]bool
}

// shareBuckets is the recording length in buckets (35 minutes at 20 s).
const shareBuckets = 105

func shareSchedule() []workloadSpec {
	return []workloadSpec{
		{
			service: "recwork-a",
			knots: []knot{
				{At: 0, Frac: map[string]float64{"parseRecords": .40, "hashKeys": .30, "compressBlock": .20, "encodeJSON": .10}},
				{At: 20, Frac: map[string]float64{"parseRecords": .40, "hashKeys": .36, "compressBlock": .14, "encodeJSON": .10}},
				{At: 45, Frac: map[string]float64{"parseRecords": .40, "hashKeys": .36, "compressBlock": .14, "encodeJSON": .10}},
				{At: 60, Frac: map[string]float64{"parseRecords": .30, "hashKeys": .36, "compressBlock": .14, "encodeJSON": .20}, Linear: true},
				{At: 80, Frac: map[string]float64{"parseRecords": .30, "hashKeys": .30, "compressBlock": .20, "encodeJSON": .20}},
			},
			heldOut: map[string]bool{"hashKeys": true, "encodeJSON": true},
		},
		{
			service: "recwork-b",
			knots: []knot{
				{At: 0, Frac: map[string]float64{"scanIndex": .25, "mergeRuns": .25, "checksum": .25, "formatRows": .25}},
				{At: 30, Frac: map[string]float64{"scanIndex": .35, "mergeRuns": .25, "checksum": .15, "formatRows": .25}},
				{At: 55, Frac: map[string]float64{"scanIndex": .32, "mergeRuns": .28, "checksum": .15, "formatRows": .25}},
				{At: 75, Frac: map[string]float64{"scanIndex": .22, "mergeRuns": .28, "checksum": .25, "formatRows": .25}},
			},
			heldOut: map[string]bool{"mergeRuns": true, "formatRows": true},
		},
	}
}

// Ports and sampling of the recorder's own `fleetprof up`, apart from a developer's.
const (
	upHTTP = "127.0.0.1:17070"
	upGRPC = "127.0.0.1:17071"
	upHz   = 99
	// warmupBuckets run the first phase before bucket 0, so the agent has found the
	// processes and their symbols when recording starts.
	warmupBuckets = 3
	// ingestLag is how long after the last bucket the shares are read, so its last
	// batch is stored.
	ingestLag = 30 * time.Second
)

// recordShares runs `fleetprof up` and the workloads, closes started at bucket 0,
// and reads every function's self share per bucket through `fleetprof query top`.
func recordShares(ctx context.Context, fleetprof string, bucket time.Duration, started chan<- struct{}) ([]Series, error) {
	defer close(started)
	fleetprof, err := filepath.Abs(fleetprof)
	if err != nil {
		return nil, fmt.Errorf("fleetprof path: %w", err)
	}
	dataDir, err := os.MkdirTemp("", "recordseries-up-")
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	defer os.RemoveAll(dataDir)
	upLog, err := os.CreateTemp("", "recordseries-up-*.log")
	if err != nil {
		return nil, fmt.Errorf("up log: %w", err)
	}
	defer upLog.Close()
	up := exec.CommandContext(ctx, fleetprof, "up", "--data", dataDir, "--http", upHTTP, "--grpc", upGRPC,
		"--agent-metrics", "off", "--hz", strconv.Itoa(upHz), "--analyze-interval", "0")
	up.Stdout, up.Stderr = upLog, upLog
	if err := up.Start(); err != nil {
		return nil, fmt.Errorf("start fleetprof up: %w", err)
	}
	defer func() {
		_ = up.Process.Signal(os.Interrupt)
		_ = up.Wait()
	}()
	url := "http://" + upHTTP
	if err := waitReady(ctx, fleetprof, url); err != nil {
		return nil, fmt.Errorf("%w (log: %s)", err, upLog.Name())
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("own executable: %w", err)
	}
	b := int64(bucket / time.Second)
	t0 := time.Unix((time.Now().Unix()/b+1+warmupBuckets)*b, 0)
	sched := shareSchedule()
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	}()
	for _, w := range sched {
		js, err := json.Marshal(w.knots)
		if err != nil {
			return nil, fmt.Errorf("encode schedule: %w", err)
		}
		cmd := exec.CommandContext(ctx, self, "workload", "-schedule", string(js),
			"-start", strconv.FormatInt(t0.Unix(), 10), "-bucket", bucket.String(), "-buckets", strconv.Itoa(shareBuckets))
		cmd.Env = append(os.Environ(), "FLEETPROF_SERVICE="+w.service, "FLEETPROF_VERSION=v1")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start workload %s: %w", w.service, err)
		}
		procs = append(procs, cmd)
	}
	logf("shares: up at %s, workloads started, bucket 0 at %s, %d buckets of %s", url, t0.UTC().Format(time.RFC3339), shareBuckets, bucket)
	if !sleepUntil(ctx, t0) {
		return nil, ctx.Err()
	}
	started <- struct{}{}
	end := t0.Add(time.Duration(shareBuckets) * bucket)
	if !sleepUntil(ctx, end.Add(ingestLag)) {
		return nil, ctx.Err()
	}
	var out []Series
	for _, w := range sched {
		names := sortedKeys(w.knots[0].Frac)
		vals := map[string][]*float64{}
		for k := range shareBuckets {
			from := t0.Add(time.Duration(k) * bucket)
			top, err := queryTop(ctx, fleetprof, url, w.service, from, from.Add(bucket))
			if err != nil {
				return nil, err
			}
			for _, f := range names {
				vals[f] = append(vals[f], selfShare(top, f))
			}
		}
		for _, f := range names {
			ann := changeBuckets(w.knots, f)
			if ann == nil {
				ann = []int{}
			}
			out = append(out, Series{
				Name:        "share-" + w.service + "-" + f,
				License:     "CC0 (recorded by the fleetprof project)",
				Values:      vals[f],
				Annotations: map[string][]int{annotator: ann},
				HeldOut:     w.heldOut[f],
				Provenance: fmt.Sprintf("self share (%%) of main.%s per %s bucket in service %s, read with `fleetprof query top --service %s --from --to` from `fleetprof up --hz %d` (eBPF agent, embedded ClickHouse) profiling a workload process (~0.2 core at most, niced with the recorder) whose work per function follows the schedule %s; bucket 0 at %s",
					f, bucket, w.service, w.service, upHz, scheduleText(w.knots, f), t0.UTC().Format(time.RFC3339)),
			})
		}
	}
	return out, nil
}

func waitReady(ctx context.Context, fleetprof, url string) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := exec.CommandContext(ctx, fleetprof, "query", "top", "--http", url, "--limit", "1").Run()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("fleetprof up not ready after 3m: %w", err)
		}
		if !sleepUntil(ctx, time.Now().Add(2*time.Second)) {
			return ctx.Err()
		}
	}
}

func queryTop(ctx context.Context, fleetprof, url, service string, from, to time.Time) (*model.Top, error) {
	cmd := exec.CommandContext(ctx, fleetprof, "query", "top", "--http", url, "--service", service,
		"--from", strconv.FormatInt(from.Unix(), 10), "--to", strconv.FormatInt(to.Unix(), 10), "--limit", "1000", "--json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("query top %s %s: %w: %s", service, from.UTC().Format(time.RFC3339), err, stderr.String())
	}
	var top model.Top
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("decode query top: %w", err)
	}
	return &top, nil
}

// selfShare is function f's self share of the bucket in percent, nil (missing) when
// the bucket holds no samples.
func selfShare(top *model.Top, f string) *float64 {
	if top.Total == 0 {
		return nil
	}
	v := 0.0
	for _, fs := range top.Functions {
		if fs.Function == "main."+f {
			v = fs.SelfPct
		}
	}
	return &v
}

func scheduleText(knots []knot, f string) string {
	var parts []string
	for i, k := range knots {
		if i > 0 && k.Frac[f] == knots[i-1].Frac[f] {
			continue
		}
		verb := "from"
		if k.Linear {
			verb = "ramping until"
		}
		parts = append(parts, fmt.Sprintf("%s bucket %d %.0f%%", verb, k.At, 100*k.Frac[f]))
	}
	return strings.Join(parts, ", ")
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func sortedKeys(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortSeries(ss []Series) {
	sort.Slice(ss, func(i, j int) bool { return ss[i].Name < ss[j].Name })
}

// val is x as a JSON value, nil (null, missing) when it is not finite.
func val(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}
