package ship_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/fleetprof/fleetprof/agent/ship"
	"github.com/fleetprof/fleetprof/agent/ship/shiptest"
	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
)

// freeAddr returns a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

type runner struct {
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, s *ship.Shipper) *runner {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	return r
}

func (r *runner) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func newShipper(t *testing.T, cfg ship.Config) *ship.Shipper {
	t.Helper()
	if cfg.AgentID == "" {
		cfg.AgentID = "node-1"
	}
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = t.TempDir()
	}
	s, err := ship.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitStats polls the shipper's stats (the server side has its own WaitFor).
func waitStats(t *testing.T, s *ship.Shipper, cond func(ship.Stats) bool) ship.Stats {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := s.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not reached; stats %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConfigValidate(t *testing.T) {
	base := ship.Config{Addr: "127.0.0.1:1", AgentID: "a", SpoolDir: t.TempDir()}
	tests := []struct {
		name string
		mod  func(*ship.Config)
		want string
	}{
		{"ok", func(*ship.Config) {}, ""},
		{"no addr", func(c *ship.Config) { c.Addr = "" }, "aggregator address"},
		{"no id", func(c *ship.Config) { c.AgentID = "" }, "agent id"},
		{"no spool", func(c *ship.Config) { c.SpoolDir = "" }, "spool dir"},
		{"backoff", func(c *ship.Config) { c.MinBackoff, c.MaxBackoff = time.Second, time.Millisecond }, "backoff"},
		{"bad ca", func(c *ship.Config) { c.TLS.CAFile = "/nonexistent/ca.pem" }, "tls ca file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.mod(&cfg)
			s, err := ship.New(cfg)
			if s != nil {
				s.Close()
			}
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("New: %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestSpoolBoundDropsOldest(t *testing.T) {
	dir := t.TempDir()
	s := newShipper(t, ship.Config{Addr: freeAddr(t), SpoolDir: dir, SpoolMaxBytes: 250})
	var ids []string
	for i := range 5 {
		id, err := s.Send([]byte(strings.Repeat(fmt.Sprint(i), 100)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	st := s.Stats()
	if st.SpoolDropped != 3 || st.SpoolBatches != 2 || st.SpoolBytes != 200 {
		t.Fatalf("stats %+v, want 3 dropped, 2 batches, 200 bytes", st)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.batch"))
	if len(files) != 2 || !strings.Contains(files[0], ids[3]) || !strings.Contains(files[1], ids[4]) {
		t.Fatalf("spool files %v, want the two newest %v", files, ids[3:])
	}
	if _, err := s.Send(make([]byte, 251)); err == nil || !strings.Contains(err.Error(), "exceeds spool bound") {
		t.Fatalf("oversized batch: %v, want bound error", err)
	}
}

func TestRestartRereadsSpool(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	s1 := newShipper(t, ship.Config{Addr: addr, SpoolDir: dir})
	var ids []string
	for i := range 3 {
		id, err := s1.Send([]byte{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	s1.Close()
	// A write interrupted by a crash leaves a temporary file: it must go.
	if err := os.WriteFile(filepath.Join(dir, ".tmp-junk.batch"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := newShipper(t, ship.Config{Addr: addr, SpoolDir: dir})
	if st := s2.Stats(); st.SpoolBatches != 3 || st.SpoolBytes != 3 {
		t.Fatalf("after restart %+v, want 3 batches of 3 bytes", st)
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-junk.batch")); !os.IsNotExist(err) {
		t.Fatalf("temporary file kept: %v", err)
	}
	id, err := s2.Send([]byte{9})
	if err != nil {
		t.Fatal(err)
	}
	// New ids sort after the old ones, so delivery stays oldest first.
	ids = append(ids, id)
	srv := shiptest.NewServer()
	if _, err := srv.Serve(addr); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	r := start(t, s2)
	defer r.stop(t)
	if !srv.WaitFor(20*time.Second, func(b []shiptest.Batch) bool { return len(b) == 4 }) {
		t.Fatalf("stored %d batches, want 4", len(srv.Stored()))
	}
	var got []string
	for _, b := range srv.Stored() {
		got = append(got, b.ID)
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("delivery order %v, want %v", got, ids)
	}
}

func TestResponses(t *testing.T) {
	type answer = ingestv1.WriteResponse_Status
	const (
		ack  = ingestv1.WriteResponse_STATUS_ACKED
		dup  = ingestv1.WriteResponse_STATUS_DUPLICATE
		rej  = ingestv1.WriteResponse_STATUS_REJECTED
		fail = ingestv1.WriteResponse_STATUS_FAILED
	)
	tests := []struct {
		name    string
		answers []answer // per attempt of the single batch; then the server stores
		want    ship.Stats
		waits   int // backoff waits
	}{
		{"acked", nil, ship.Stats{Sent: 1, Acked: 1}, 0},
		{"duplicate is delivered", []answer{dup}, ship.Stats{Sent: 1, Duplicate: 1}, 0},
		{"rejected is dropped, not retried", []answer{rej}, ship.Stats{Sent: 1, Rejected: 1}, 0},
		{"failed is retried", []answer{fail, fail, fail}, ship.Stats{Sent: 4, Acked: 1, Failed: 3}, 3},
		{"unspecified is retried", []answer{ingestv1.WriteResponse_STATUS_UNSPECIFIED}, ship.Stats{Sent: 2, Acked: 1, Failed: 1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			answers := slices.Clone(tt.answers)
			srv := shiptest.NewServer()
			srv.Respond = func(*ingestv1.WriteRequest) *ingestv1.WriteResponse {
				mu.Lock()
				defer mu.Unlock()
				if len(answers) == 0 {
					return nil
				}
				a := answers[0]
				answers = answers[1:]
				return &ingestv1.WriteResponse{Status: a, Error: "scripted"}
			}
			addr, err := srv.Serve("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Stop()
			clock := shiptest.NewClock(time.Unix(1_700_000_000, 0))
			s := newShipper(t, ship.Config{Addr: addr, Clock: clock, Rand: func() float64 { return 1 }})
			if _, err := s.Send([]byte("batch")); err != nil {
				t.Fatal(err)
			}
			r := start(t, s)
			st := waitStats(t, s, func(st ship.Stats) bool { return st.SpoolBatches == 0 })
			r.stop(t)
			st.Spooled, st.LastError = 0, ""
			if st != tt.want {
				t.Fatalf("stats %+v, want %+v", st, tt.want)
			}
			if n := len(clock.Waits()); n != tt.waits {
				t.Fatalf("%d backoff waits, want %d", n, tt.waits)
			}
		})
	}
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	addr := freeAddr(t) // nothing listens: every attempt fails
	clock := shiptest.NewClock(time.Unix(1_700_000_000, 0))
	rnd := []float64{0, 1, 0.5, 1, 1, 1, 1, 0}
	var mu sync.Mutex
	s := newShipper(t, ship.Config{
		Addr: addr, Clock: clock, MinBackoff: 100 * time.Millisecond, MaxBackoff: 1 * time.Second,
		Rand: func() float64 {
			mu.Lock()
			defer mu.Unlock()
			v := rnd[0]
			rnd = append(rnd[1:], 1)
			return v
		},
	})
	if _, err := s.Send([]byte("x")); err != nil {
		t.Fatal(err)
	}
	r := start(t, s)
	waitStats(t, s, func(st ship.Stats) bool { return st.Failed >= 8 })
	r.stop(t)
	ms := time.Millisecond
	want := []time.Duration{50 * ms, 200 * ms, 300 * ms, 800 * ms, 1000 * ms, 1000 * ms, 1000 * ms, 500 * ms}
	if got := clock.Waits()[:8]; !slices.Equal(got, want) {
		t.Fatalf("backoff waits %v, want %v", got, want)
	}
	if st := s.Stats(); st.SpoolBatches != 1 || !strings.Contains(st.LastError, addr) {
		t.Fatalf("stats %+v: the batch must stay spooled and the error name the address", st)
	}
}

func TestTokenIsSent(t *testing.T) {
	srv := shiptest.NewServer()
	addr, err := srv.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	s := newShipper(t, ship.Config{Addr: addr, Token: "s3cret"})
	if _, err := s.Send([]byte("x")); err != nil {
		t.Fatal(err)
	}
	r := start(t, s)
	defer r.stop(t)
	if !srv.WaitFor(20*time.Second, func(b []shiptest.Batch) bool { return len(b) == 1 }) {
		t.Fatal("batch not delivered")
	}
	if got := srv.Stored()[0].Auth; got != "Bearer s3cret" {
		t.Fatalf("authorization %q, want %q", got, "Bearer s3cret")
	}
}

// TestOutageAndRestartDeliverExactlyOnce: the aggregator is down while the
// agent spools batches, the agent restarts, the aggregator comes up, goes down
// mid-way and comes up again: every batch is stored exactly once.
func TestOutageAndRestartDeliverExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := ship.Config{Addr: addr, SpoolDir: dir, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	want := map[string]bool{}
	send := func(s *ship.Shipper, n int) {
		for range n {
			id, err := s.Send([]byte(fmt.Sprintf("payload %d", len(want))))
			if err != nil {
				t.Fatal(err)
			}
			want[id] = true
		}
	}

	s1 := newShipper(t, cfg)
	r1 := start(t, s1)
	send(s1, 20)
	waitStats(t, s1, func(st ship.Stats) bool { return st.Failed >= 3 })
	r1.stop(t)
	s1.Close()

	s2 := newShipper(t, cfg)
	r2 := start(t, s2)
	defer r2.stop(t)
	send(s2, 10)
	srv := shiptest.NewServer()
	if _, err := srv.Serve(addr); err != nil {
		t.Fatal(err)
	}
	if !srv.WaitFor(20*time.Second, func(b []shiptest.Batch) bool { return len(b) >= 10 }) {
		t.Fatal("no delivery after the aggregator came up")
	}
	srv.Stop()
	send(s2, 10)
	if _, err := srv.Serve(addr); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if !srv.WaitFor(20*time.Second, func(b []shiptest.Batch) bool { return len(b) == len(want) }) {
		t.Fatalf("stored %d batches, want %d", len(srv.Stored()), len(want))
	}
	waitStats(t, s2, func(st ship.Stats) bool { return st.SpoolBatches == 0 })
	// Stopping the server mid-stream may lose an ack after the batch was
	// stored; the resend is answered DUPLICATE, so storage stays exactly once.
	seen := map[string]int{}
	for _, b := range srv.Stored() {
		seen[b.ID]++
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("batch %s stored %d times, want once", id, seen[id])
		}
	}
	for id := range seen {
		if !want[id] {
			t.Errorf("unknown batch %s stored", id)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 0 {
		t.Fatalf("spool not empty after delivery: %v", files)
	}
}

// A batch the aggregator cannot read (over its gRPC message limit: the stream
// ends ResourceExhausted) is dropped and counted after a few attempts instead of
// blocking the batches behind it forever.
func TestUnreadableBatchIsDropped(t *testing.T) {
	srv := shiptest.NewServer()
	srv.Options = []grpc.ServerOption{grpc.MaxRecvMsgSize(1024)}
	addr, err := srv.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	clock := shiptest.NewClock(time.Unix(1_700_000_000, 0))
	s := newShipper(t, ship.Config{Addr: addr, Clock: clock, Rand: func() float64 { return 1 }})
	if _, err := s.Send([]byte(strings.Repeat("x", 4096))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send([]byte("small")); err != nil {
		t.Fatal(err)
	}
	r := start(t, s)
	st := waitStats(t, s, func(st ship.Stats) bool { return st.SpoolBatches == 0 })
	r.stop(t)
	if st.TooLarge != 1 || st.Acked != 1 || len(srv.Stored()) != 1 || string(srv.Stored()[0].Data) != "small" {
		t.Fatalf("stats %+v, stored %d", st, len(srv.Stored()))
	}
	if !strings.Contains(st.LastError, "ResourceExhausted") && !strings.Contains(st.LastError, "larger than max") {
		t.Errorf("last error %q does not say why", st.LastError)
	}
}
