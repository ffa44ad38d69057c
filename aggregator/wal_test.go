package aggregator

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/model"
	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// TestWALCrashReplay acknowledges batches into the write-ahead log with
// flushes far apart, snapshots the log as a kill -9 would leave it, and
// starts a second server from the snapshot over the same store: the
// batches are served once, a retry of any is DUPLICATE, and the first
// server's own flush at shutdown adds nothing.
func TestWALCrashReplay(t *testing.T) {
	ran := 0
	for _, be := range backends {
		st := be.open(t)
		if _, ok := st.(walStore); !ok {
			continue // the fake store has no grouped writes
		}
		ran++
		t.Run(be.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{WALDir: filepath.Join(dir, "wal"), WALFlushInterval: time.Hour}
			ts1 := startServer(t, st, cfg)
			svc := uniqueService(t)
			now := time.Now().Add(-5 * time.Minute).Truncate(time.Minute)
			data, err := samplebatch.Encode(benchBatch(svc, now, 300))
			if err != nil {
				t.Fatal(err)
			}
			const batches = 3
			if err := sendBatches(ts1, svc, data, batches); err != nil {
				t.Fatal(err)
			}
			crashed := filepath.Join(dir, "crashed")
			copyDir(t, cfg.WALDir, crashed)

			cfg.WALDir = crashed
			ts2 := startServer(t, st, cfg)
			want := total(t, data) * batches
			sel := model.Selection{Service: svc, From: now.Add(-time.Hour), To: now.Add(time.Hour)}
			if got := storedTotal(t, ts2, sel); got != want {
				t.Fatalf("after replay: %d samples, want %d", got, want)
			}
			if err := ts1.stop(); err != nil { // flushes the same batches: all duplicates
				t.Fatal(err)
			}
			if got := storedTotal(t, ts2, sel); got != want {
				t.Fatalf("after the first server's flush: %d samples, want %d", got, want)
			}
			stream, err := ingestv1.NewIngestServiceClient(ts2.conn).Write(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer stream.CloseSend()
			for i := range batches {
				if err := stream.Send(&ingestv1.WriteRequest{BatchId: fmt.Sprintf("%s-%d", svc, i), ArrowIpc: data}); err != nil {
					t.Fatal(err)
				}
				resp, err := stream.Recv()
				if err != nil {
					t.Fatal(err)
				}
				if resp.Status != ingestv1.WriteResponse_STATUS_DUPLICATE {
					t.Fatalf("retry of batch %d: %v %s, want DUPLICATE", i, resp.Status, resp.Error)
				}
			}
		})
	}
	if ran == 0 {
		t.Fatal("no store with a write-ahead log path to test")
	}
}

func total(t *testing.T, data []byte) int64 {
	t.Helper()
	b, err := samplebatch.Decode(data, samplebatch.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, r := range b.Rows {
		n += r.Value
	}
	return n
}

func storedTotal(t *testing.T, ts *testServer, sel model.Selection) int64 {
	t.Helper()
	top, err := ts.client.Top(context.Background(), sel, 1)
	if err != nil {
		t.Fatal(err)
	}
	return top.Total
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o750); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
