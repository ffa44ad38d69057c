package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/agent/ship"
	"github.com/fleetprof/fleetprof/aggregator/storage"
	"github.com/fleetprof/fleetprof/aggregator/storage/clickhousetest"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// crashCampaign is the shape of one kill -9 campaign.
type crashCampaign struct {
	kills   int           // SIGKILLs of the aggregator
	senders int           // concurrent agents (ship.Shipper, spool and retries)
	maxUp   time.Duration // the aggregator runs a uniform random time up to this before a kill
}

// The short campaign runs in make test; FLEETPROF_SOAK=1 (make soak) runs the long one.
var (
	shortCampaign = crashCampaign{kills: 5, senders: 4, maxUp: 700 * time.Millisecond}
	soakCampaign  = crashCampaign{kills: 25, senders: 4, maxUp: 1500 * time.Millisecond}
)

// TestKillNineExactlyOnce runs a real `fleetprof aggregator` on embedded chDB
// and on clickhouse-server and SIGKILLs it at random points while agents
// stream batches and retry them with the same batch ids. Afterwards the
// stored samples and the rollup totals equal what the agents sent, exactly.
func TestKillNineExactlyOnce(t *testing.T) {
	if testing.Short() {
		testenv.Skip(t, testenv.Short, "kill -9 campaign builds the binary and restarts it several times")
	}
	c := shortCampaign
	if os.Getenv("FLEETPROF_SOAK") == "1" {
		c = soakCampaign
	}
	bin := filepath.Join(t.TempDir(), "fleetprof")
	if out, err := exec.CommandContext(context.Background(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("embedded", func(t *testing.T) {
		if !chdbInstalled() {
			testenv.Skip(t, testenv.MissingTool, "chDB library not installed: run scripts/fetch-chdb.sh (or make setup)")
		}
		runCrashCampaign(t, bin, "embedded:"+filepath.Join(t.TempDir(), "data"), c) // write-ahead log on by default
	})
	t.Run("server", func(t *testing.T) {
		addr := clickhousetest.Start(t)
		runCrashCampaign(t, bin, "clickhouse://"+addr+"/crash", c)
	})
	t.Run("server-wal", func(t *testing.T) {
		addr := clickhousetest.Start(t)
		runCrashCampaign(t, bin, "clickhouse://"+addr+"/crashwal", c, "--wal", filepath.Join(t.TempDir(), "wal"))
	})
}

// aggProc is the aggregator process under test.
type aggProc struct {
	bin, uri, grpc, http string
	extra                []string // more aggregator flags
	logDir               string
	starts               int
	cmd                  *exec.Cmd
	exited               chan struct{} // closed when cmd has been waited for
	waitErr              error
}

func (a *aggProc) start(t testing.TB) {
	t.Helper()
	a.starts++
	logPath := filepath.Join(a.logDir, fmt.Sprintf("aggregator-%03d.log", a.starts))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	// Not tied to a context: the campaign kills it itself.
	cmd := exec.Command(a.bin, append([]string{"aggregator", "--storage", a.uri, "--grpc", a.grpc, "--http", a.http}, a.extra...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a.cmd, a.exited = cmd, make(chan struct{})
	go func() { a.waitErr = cmd.Wait(); close(a.exited) }()
	// Wait until it serves (recovery runs in Open, before the listeners).
	for !ready(a.http) {
		select {
		case <-a.exited:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("aggregator exited at start %d (%v):\n%s", a.starts, a.waitErr, log)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func ready(addr string) bool {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (a *aggProc) kill(t *testing.T) {
	t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.exited
}

func (a *aggProc) stop(t testing.TB) {
	t.Helper()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-a.exited
	if a.waitErr != nil {
		t.Fatalf("aggregator exit after SIGTERM: %v", a.waitErr)
	}
}

// crashService is the campaign's service; its samples are all in [from, from+2h).
const crashService = "crash"

// crashBatch is a batch of rows over a small stack pool; it returns the
// encoded batch and its samples.
func crashBatch(rnd *rand.Rand, agent string, now time.Time) ([]byte, int64, error) {
	rows := 5 + rnd.IntN(40)
	ss := make([]samplebatch.Sample, rows)
	var total int64
	for i := range ss {
		v := int64(1 + rnd.IntN(50))
		total += v
		ss[i] = samplebatch.Sample{
			TS:       now.Add(-time.Duration(rnd.IntN(600)) * time.Second).Unix(),
			Labels:   samplebatch.Labels{Service: crashService, Version: "v" + strconv.Itoa(rnd.IntN(3)), Host: agent, PID: uint32(100 + rnd.IntN(4))},
			Frames:   []string{"main", "serve", "handler" + strconv.Itoa(rnd.IntN(30)), "leaf" + strconv.Itoa(rnd.IntN(20))},
			Value:    v,
			PeriodNS: 10_000_000,
		}
	}
	data, err := samplebatch.Encode(ss)
	return data, total, err
}

// fleetDrainLimit only ends a hung campaign: the agents' spools drain at the
// store's ingest rate after the faults stop.
const fleetDrainLimit = 10 * time.Minute

// fleet is a set of agents (ship.Shipper, spool and retries) streaming
// crashBatch batches to one aggregator.
type fleet struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup // shippers
	senders  sync.WaitGroup
	stopping chan struct{}
	sendErr  chan error
	shippers []*ship.Shipper

	mu      sync.Mutex
	sent    int64
	batches int
}

func startFleet(t *testing.T, addr string, senders int) *fleet {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleet{cancel: cancel, stopping: make(chan struct{}), sendErr: make(chan error, senders)}
	for i := range senders {
		sh, err := ship.New(ship.Config{Addr: addr, AgentID: fmt.Sprintf("agent-%d", i), SpoolDir: t.TempDir(),
			MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		f.shippers = append(f.shippers, sh)
		f.wg.Go(func() { _ = sh.Run(ctx) })
		f.senders.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(i), 42))
			for {
				select {
				case <-f.stopping:
					return
				case <-time.After(time.Duration(rnd.IntN(20)) * time.Millisecond):
				}
				data, n, err := crashBatch(rnd, fmt.Sprintf("host-%d", i), time.Now())
				if err == nil {
					_, err = sh.Send(data)
				}
				if err != nil {
					f.sendErr <- err
					return
				}
				f.mu.Lock()
				f.sent += n
				f.batches++
				f.mu.Unlock()
			}
		})
	}
	return f
}

func (f *fleet) stats() ship.Stats {
	var st ship.Stats
	for _, sh := range f.shippers {
		s := sh.Stats()
		st.Acked += s.Acked
		st.Duplicate += s.Duplicate
		st.Failed += s.Failed
		st.Rejected += s.Rejected
		st.SpoolDropped += s.SpoolDropped
		st.SpoolBatches += s.SpoolBatches
		if s.LastError != "" {
			st.LastError = s.LastError
		}
	}
	return st
}

// finish stops sending, waits until every spooled batch was answered ACKED
// or DUPLICATE, and stops the agents.
func (f *fleet) finish(t *testing.T) ship.Stats {
	t.Helper()
	close(f.stopping)
	// A sender may be inside Send when stopping closes: wait until its
	// batch is spooled (and counted) before waiting for the spool to drain.
	f.senders.Wait()
	select {
	case err := <-f.sendErr:
		t.Fatalf("send: %v", err)
	default:
	}
	deadline := time.Now().Add(fleetDrainLimit)
	for f.stats().SpoolBatches > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d batches still spooled %v after the faults", f.stats().SpoolBatches, fleetDrainLimit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.cancel()
	f.wg.Wait()
	st := f.stats()
	for _, sh := range f.shippers {
		sh.Close()
	}
	if st.Rejected != 0 || st.SpoolDropped != 0 {
		t.Fatalf("agents: %d rejected, %d dropped (%s)", st.Rejected, st.SpoolDropped, st.LastError)
	}
	if st.Acked+st.Duplicate != uint64(f.batches) {
		t.Fatalf("agents delivered %d+%d batches, sent %d", st.Acked, st.Duplicate, f.batches)
	}
	return st
}

// storedTotals opens the store as the analyzer and API do and returns the
// campaign service's stored samples and rollup total.
func storedTotals(t *testing.T, uri string, start time.Time, parts partsRule) (samples, rollup int64) {
	t.Helper()
	store, err := storage.Open(context.Background(), storage.Config{URI: uri})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	qctx := context.Background()
	// A restart after the faults finds no broken part to set aside whose rows
	// are missing (a covered one is logged: see TestEmptyMergeResultCovered).
	if detached, err := store.DetachedParts(qctx); err == nil && len(detached) > 0 {
		if missing := storage.Uncovered(detached); len(missing) > 0 && parts == partsStrict {
			t.Fatalf("detached parts after the faults: %+v", detached)
		}
		t.Logf("detached parts after the restart: %+v", detached)
	}
	from, to := start.Add(-time.Hour), time.Now().Add(time.Hour)
	p, err := store.Profile(qctx, model.Selection{Service: crashService, From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := store.Rollup(qctx, model.RollupQuery{Service: crashService, From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Function == "" {
			rollup += r.Inclusive
		}
	}
	return p.Total, rollup
}

// partsRule says whether a part set aside at the restart fails the test.
type partsRule int

const (
	partsStrict   partsRule = iota // any detached part fails
	partsReported                  // logged: a known bug the soak run still fails on
)

func newAggProc(t testing.TB, bin, uri string) *aggProc {
	t.Helper()
	ports, err := clickhousetest.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	return &aggProc{bin: bin, uri: uri, grpc: "127.0.0.1:" + strconv.Itoa(ports[0]), http: "127.0.0.1:" + strconv.Itoa(ports[1]), logDir: t.TempDir()}
}

// logsContain counts the aggregator's runs whose log holds s.
func (a *aggProc) logsContain(s string) int {
	n := 0
	for i := 1; i <= a.starts; i++ {
		log, _ := os.ReadFile(filepath.Join(a.logDir, fmt.Sprintf("aggregator-%03d.log", i)))
		if strings.Contains(string(log), s) {
			n++
		}
	}
	return n
}

func runCrashCampaign(t *testing.T, bin, uri string, c crashCampaign, flags ...string) {
	agg := newAggProc(t, bin, uri)
	agg.extra = flags
	agg.start(t)
	start := time.Now()
	f := startFleet(t, agg.grpc, c.senders)
	rnd := rand.New(rand.NewPCG(uint64(start.UnixNano()), 7))
	for k := range c.kills {
		time.Sleep(time.Duration(rnd.Int64N(int64(c.maxUp))))
		agg.kill(t)
		agg.start(t)
		t.Logf("kill %d/%d done", k+1, c.kills)
	}
	st := f.finish(t)
	agg.stop(t)
	samples, rollup := storedTotals(t, uri, start, partsStrict)
	t.Logf("%d kills, %d batches, %d samples sent; agents: %d acked, %d duplicate, %d failed attempts; stored samples %d, rollup total %d; %d starts recovered a commit, %d replayed the write-ahead log",
		c.kills, f.batches, f.sent, st.Acked, st.Duplicate, st.Failed, samples, rollup,
		agg.logsContain("storage recovered an interrupted commit"), agg.logsContain("write-ahead log replayed"))
	if samples != f.sent || rollup != f.sent {
		t.Fatalf("stored samples %d, rollup total %d, sent %d", samples, rollup, f.sent)
	}
}
