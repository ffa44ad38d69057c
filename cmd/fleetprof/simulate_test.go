package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/fleetprof/fleetprof/analyzer/simulate"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// simIngest is a fake aggregator: it decodes every batch and fails the first attempt
// of each, so the client's retry with the same id is exercised.
type simIngest struct {
	ingestv1.UnimplementedIngestServiceServer
	mu      sync.Mutex
	samples int64
	ids     map[string]int
	auth    string
}

func (s *simIngest) Write(stream grpc.BidiStreamingServer[ingestv1.WriteRequest, ingestv1.WriteResponse]) error {
	if md, ok := metadata.FromIncomingContext(stream.Context()); ok && len(md.Get("authorization")) > 0 {
		s.mu.Lock()
		s.auth = md.Get("authorization")[0]
		s.mu.Unlock()
	}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp := &ingestv1.WriteResponse{BatchId: req.BatchId, Status: ingestv1.WriteResponse_STATUS_ACKED}
		s.mu.Lock()
		s.ids[req.BatchId]++
		switch b, err := samplebatch.Decode(req.ArrowIpc, samplebatch.Limits{}); {
		case err != nil:
			resp.Status, resp.Error = ingestv1.WriteResponse_STATUS_REJECTED, err.Error()
		case s.ids[req.BatchId] == 1:
			resp.Status = ingestv1.WriteResponse_STATUS_FAILED
		default:
			s.samples += b.Samples()
			resp.Rows = int64(len(b.Rows))
		}
		s.mu.Unlock()
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func TestSimulateCommand(t *testing.T) {
	testenv.LookPath(t, "git", "git")
	base := []string{"simulate", "--hosts", "3", "--services", "1", "--duration", "3h", "--bucket", "30m",
		"--functions", "12", "--releases", "1", "--regressions", "random:1", "--start", "2026-01-05T00:00:00Z"}
	t.Run("files", func(t *testing.T) {
		dir := t.TempDir()
		var out, errb bytes.Buffer
		args := append(base, "--out", dir, "--repo", filepath.Join(dir, "repos"), "--truth", filepath.Join(dir, "truth.json"))
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		var sum simSummary
		if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
			t.Fatalf("summary: %v\n%s", err, out.String())
		}
		if sum.Buckets != 6 || sum.Samples == 0 || sum.Regressions != 1 {
			t.Errorf("summary %+v", sum)
		}
		batches, _ := filepath.Glob(filepath.Join(dir, "batches", "*.arrow"))
		var samples int64
		for _, p := range batches {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b, err := samplebatch.Decode(data, samplebatch.Limits{})
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			samples += b.Samples()
		}
		if int64(len(batches)) != sum.Batches || samples != sum.Samples {
			t.Errorf("%d batch files with %d samples, summary %+v", len(batches), samples, sum)
		}
		tr, err := simulate.ReadTruth(filepath.Join(dir, "truth.json"))
		if err != nil {
			t.Fatal(err)
		}
		if len(tr.Regressions) != 1 || len(tr.Regressions[0].Change.Commit) != 40 {
			t.Errorf("truth regressions %+v: want one with a commit", tr.Regressions)
		}
	})
	t.Run("direct", func(t *testing.T) {
		dir := t.TempDir()
		var out, errb bytes.Buffer
		if code := run(append(base, "--out", dir, "--direct"), &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		data, err := os.ReadFile(filepath.Join(dir, "rollup.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var r model.RollupRow
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatal(err)
			}
			if r.Function == "" {
				total += r.Self
			}
		}
		var sum simSummary
		_ = json.Unmarshal(out.Bytes(), &sum)
		if total == 0 || total != sum.Samples {
			t.Errorf("rollup totals %d, summary samples %d", total, sum.Samples)
		}
	})
	t.Run("grpc", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &simIngest{ids: map[string]int{}}
		g := grpc.NewServer()
		ingestv1.RegisterIngestServiceServer(g, srv)
		go func() { _ = g.Serve(l) }()
		defer g.Stop()
		var out, errb bytes.Buffer
		if code := run(append(base, "--grpc", l.Addr().String(), "--token", "s3cret"), &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		var sum simSummary
		if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
			t.Fatal(err)
		}
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if srv.samples != sum.Samples || sum.Samples == 0 || int64(len(srv.ids)) != sum.Batches {
			t.Errorf("server got %d samples in %d batches, summary %+v", srv.samples, len(srv.ids), sum)
		}
		if srv.auth != "Bearer s3cret" {
			t.Errorf("authorization %q", srv.auth)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"direct without out", []string{"--direct"}},
		{"out and grpc", []string{"--out", "x", "--grpc", "y"}},
		{"bad regressions", []string{"--regressions", "nonsense"}},
		{"bad hosts", []string{"--hosts", "0"}},
		{"unknown function", []string{"--regressions", "no/such.Func=0.1", "--out", "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(append(base, tc.args...), &out, &errb); code == 0 {
				t.Fatalf("exit 0, want failure; stderr %s", errb.String())
			}
		})
	}
}
