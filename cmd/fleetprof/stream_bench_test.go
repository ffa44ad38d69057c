package main

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/fleetprof/fleetprof/agent/ship"
	"github.com/fleetprof/fleetprof/aggregator/pprofconv"
	"github.com/fleetprof/fleetprof/aggregator/queryclient"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// The pprof-stream shape of issue 14, the one Parca was measured with on
// this machine: 2,000 Go CPU profiles of about 350 samples from 100 hosts,
// sent by 4 concurrent importers, then the same again twice (3×).
const (
	streamProfiles = 2000
	streamHosts    = 100
	streamSenders  = 4
	streamRounds   = 3
	// streamSources real CPU profiles are recorded by the benchmark; each of
	// the 2,000 draws its streamSamples samples from one of them and has its
	// own host and time, so stacks and names are those of real Go code.
	streamSources = 4
	streamSamples = 350
	streamService = "stream"
)

// BenchmarkPprofStream runs a real `fleetprof aggregator` on embedded chDB
// and imports the pprof stream into it the way `fleetprof import` does
// (pprofconv.Parse, samplebatch.Encode, ship.Client; one batch per
// profile). Per round it reports samples/s, the aggregator's CPU-seconds
// per million samples (from /proc, engine threads included), the
// importers' CPU-seconds per million samples, and after rounds 1 and 3 the
// aggregator's peak RSS and the latency of a merged flame graph and a top
// table over all data. Parca's figures for the same shape are in README.md.
func BenchmarkPprofStream(b *testing.B) {
	if !chdbInstalled() {
		testenv.Skip(b, testenv.MissingTool, "chDB library not installed: run scripts/fetch-chdb.sh (or make setup)")
	}
	bin := filepath.Join(b.TempDir(), "fleetprof")
	if out, err := exec.CommandContext(context.Background(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	sources := recordSources(b)
	for range b.N {
		agg := newAggProc(b, bin, "embedded:"+filepath.Join(b.TempDir(), "data"))
		agg.start(b)
		pid := agg.cmd.Process.Pid
		qc, err := queryclient.New("http://"+agg.http, nil)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now().Add(-6 * time.Hour).Truncate(time.Hour)
		var total int64
		for round := 1; round <= streamRounds; round++ {
			profiles, n := streamRound(b, sources, round, start)
			srvCPU0, cliCPU0, t0 := procCPUTime(b, pid), selfCPUTime(), time.Now()
			sendStream(b, agg.grpc, profiles)
			wall := time.Since(t0)
			srvCPU, cliCPU := procCPUTime(b, pid)-srvCPU0, selfCPUTime()-cliCPU0
			total += n
			r := strconv.Itoa(round)
			b.ReportMetric(float64(n)/wall.Seconds(), "samples/s-round"+r)
			b.ReportMetric(srvCPU.Seconds()/(float64(n)/1e6), "server-cpu-s/M-round"+r)
			b.ReportMetric(cliCPU.Seconds()/(float64(n)/1e6), "client-cpu-s/M-round"+r)
			if round != 1 && round != streamRounds {
				continue
			}
			sel := model.Selection{Service: streamService, From: start, To: time.Now().Add(time.Hour)}
			checkStreamTotal(b, qc, sel, total)
			x := strconv.Itoa(round) + "x"
			b.ReportMetric(peakRSSMiB(b, pid), "server-peak-rss-MiB-"+x)
			b.ReportMetric(queryMillis(b, func(ctx context.Context) error { _, err := qc.Flame(ctx, sel); return err }), "flame-ms-"+x)
			b.ReportMetric(queryMillis(b, func(ctx context.Context) error { _, err := qc.Top(ctx, sel, 50); return err }), "top-ms-"+x)
		}
		agg.stop(b)
	}
}

// recordSources profiles this process running a mix of real Go work
// (compression, hashing, JSON, regexp, sorting) and returns the profiles.
func recordSources(tb testing.TB) []*profile.Profile {
	tb.Helper()
	out := make([]*profile.Profile, streamSources)
	for i := range out {
		var buf bytes.Buffer
		if err := pprof.StartCPUProfile(&buf); err != nil {
			tb.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range 2 {
			wg.Go(func() { busyGo(i*2+g, 900*time.Millisecond) })
		}
		wg.Wait()
		pprof.StopCPUProfile()
		p, err := profile.Parse(&buf)
		if err != nil {
			tb.Fatal(err)
		}
		if len(p.Sample) == 0 {
			tb.Fatalf("source profile %d has no samples", i)
		}
		out[i] = p
	}
	return out
}

var streamRe = regexp.MustCompile(`(\w+)@(\w+)\.(com|org)`)

// busyGo runs real library code for d, the mix chosen by seed.
func busyGo(seed int, d time.Duration) {
	rnd := rand.New(rand.NewPCG(uint64(seed), 1))
	text := make([]byte, 64<<10)
	for i := range text {
		text[i] = "abcdefgh @.ijklmnop\n"[rnd.IntN(20)]
	}
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		switch rnd.IntN(5) {
		case 0:
			w, _ := flate.NewWriter(&bytes.Buffer{}, flate.BestCompression)
			w.Write(text)
			w.Close()
		case 1:
			sha256.Sum256(text)
		case 2:
			m := map[string]any{}
			for k := range 200 {
				m[strconv.Itoa(k)] = []any{k, "v" + strconv.Itoa(k), float64(k) / 3}
			}
			if j, err := json.Marshal(m); err == nil {
				var back map[string]any
				_ = json.Unmarshal(j, &back)
			}
		case 3:
			streamRe.FindAll(text, -1)
		default:
			xs := make([]string, 5000)
			for k := range xs {
				xs[k] = strconv.Itoa(rnd.IntN(1 << 30))
			}
			slices.Sort(xs)
		}
	}
}

// streamRound builds round's 2,000 gzipped pprof profiles: profile k is
// host k%100's profile number k/100, 5 minutes apart (each round after the
// last), each streamSamples samples drawn from a source's stacks in
// proportion to their counts.
func streamRound(tb testing.TB, sources []*profile.Profile, round int, start time.Time) ([][]byte, int64) {
	tb.Helper()
	out := make([][]byte, streamProfiles)
	perHost := streamProfiles / streamHosts
	for k := range out {
		rnd := rand.New(rand.NewPCG(uint64(round), uint64(k)))
		src := sources[k%len(sources)]
		cum := make([]int64, len(src.Sample))
		var have int64
		for i, s := range src.Sample {
			have += s.Value[0]
			cum[i] = have
		}
		counts := make([]int64, len(src.Sample))
		for range streamSamples {
			i, _ := slices.BinarySearch(cum, rnd.Int64N(have)+1)
			counts[i]++
		}
		p := src.Copy()
		p.Sample = p.Sample[:0]
		for i, s := range src.Sample {
			if c := counts[i]; c > 0 {
				v := slices.Clone(s.Value)
				v[0], v[1] = c, c*p.Period
				p.Sample = append(p.Sample, &profile.Sample{Location: s.Location, Value: v,
					Label: map[string][]string{"host": {fmt.Sprintf("host-%03d", k%streamHosts)}}})
			}
		}
		slot := (round-1)*perHost + k/streamHosts
		p.TimeNanos = start.Add(time.Duration(slot) * 5 * time.Minute).UnixNano()
		var buf bytes.Buffer
		if err := p.Write(&buf); err != nil {
			tb.Fatal(err)
		}
		out[k] = buf.Bytes()
	}
	return out, streamProfiles * streamSamples
}

// sendStream imports profiles with streamSenders concurrent importers,
// each profile parsed, encoded and written as its own batch.
func sendStream(tb testing.TB, addr string, profiles [][]byte) {
	tb.Helper()
	var wg sync.WaitGroup
	errc := make(chan error, streamSenders)
	for s := range streamSenders {
		wg.Go(func() {
			c, err := ship.NewClient(ship.Config{Addr: addr}, 0)
			if err != nil {
				errc <- err
				return
			}
			defer c.Close()
			for k := s; k < len(profiles); k += streamSenders {
				samples, err := pprofconv.Parse(profiles[k], pprofconv.ImportOptions{Labels: samplebatch.Labels{Service: streamService}})
				if err != nil {
					errc <- err
					return
				}
				enc, err := samplebatch.Encode(samples)
				if err != nil {
					errc <- err
					return
				}
				if _, err := c.Write(context.Background(), importBatchID(samples, samplebatch.Labels{Service: streamService}, samplebatch.ProfileCPU), enc); err != nil {
					errc <- fmt.Errorf("profile %d: %w", k, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		tb.Fatal(err)
	}
}

// checkStreamTotal fails unless the stored total equals what was sent.
func checkStreamTotal(tb testing.TB, qc *queryclient.Client, sel model.Selection, want int64) {
	tb.Helper()
	top, err := qc.Top(context.Background(), sel, 1)
	if err != nil {
		tb.Fatal(err)
	}
	if top.Total != want {
		tb.Fatalf("stored %d samples, sent %d", top.Total, want)
	}
}

// queryMillis is the median latency of 3 runs of q, in milliseconds.
func queryMillis(tb testing.TB, q func(context.Context) error) float64 {
	tb.Helper()
	var ms []float64
	for range 3 {
		t0 := time.Now()
		if err := q(context.Background()); err != nil {
			tb.Fatal(err)
		}
		ms = append(ms, float64(time.Since(t0).Microseconds())/1000)
	}
	slices.Sort(ms)
	return ms[1]
}

// procCPUTime is a process's user+system CPU time (all its threads).
func procCPUTime(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(ut+st) * time.Second / 100
}

// selfCPUTime is this process's CPU time (the importers).
func selfCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSSMiB is a process's peak resident set (VmHWM).
func peakRSSMiB(tb testing.TB, pid int) float64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb / 1024
		}
	}
	tb.Fatal("no VmHWM in /proc status")
	return 0
}
