package aggregator

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// TestQueryDeadline: a query past its deadline answers a clean 504 on every store.
func TestQueryDeadline(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ts := startServer(t, be.open(t), Config{QueryTimeout: time.Nanosecond})
			for _, path := range []string{"/api/v1/flame?from=now-30d", "/api/v1/top", "/api/v1/services"} {
				code, m := getJSON(t, ts.httpURL, path)
				if code != 504 || !strings.Contains(fmt.Sprint(m["error"]), "deadline") {
					t.Fatalf("%s: %d %v, want 504 naming the deadline", path, code, m)
				}
			}
		})
	}
}

// hostileQuery is the costliest query the parameter limits allow: every filter slot
// used with a distinct key and a maximal value, over 30 days.
func hostileQuery(i int) string {
	q := url.Values{"from": {"now-30d"}}
	for k := range MaxFilters {
		q.Add("filter", fmt.Sprintf("k%d_%d=%s", i, k, strings.Repeat("v", MaxParamValueBytes-16)))
	}
	return "/api/v1/flame?" + q.Encode()
}

// get returns the status of GET u (0 when the request fails).
func get(u string) int {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// BenchmarkIngestUnderHostileQueries measures ingest batches/s alone and while 4
// clients loop hostile queries, in one process; "ratio" is with/alone (1 = no harm).
// With the write-ahead log ("wal", the embedded default) acks wait for the log,
// not for the store's commits, which a query's locks and CPU can delay.
func BenchmarkIngestUnderHostileQueries(b *testing.B) {
	const (
		rows    = 5000
		clients = 4
		// Each phase ingests for phase; rounds alternate which phase goes
		// first, and the ratio reported is the median over rounds, with
		// its spread, so a drift of the machine's load shows as spread.
		phase  = 3 * time.Second
		rounds = 4
	)
	for _, be := range backends {
		for _, mode := range []string{"ack-after-write", "wal"} {
			if mode == "wal" && be.name == "fake" {
				continue // the fake store has no grouped writes
			}
			b.Run(be.name+"/"+mode, func(b *testing.B) {
				cfg := Config{}
				if mode == "wal" {
					cfg.WALDir = b.TempDir()
				}
				ts := startServer(b, be.open(b), cfg)
				svc := uniqueService(b)
				data, err := samplebatch.Encode(benchBatch(svc, time.Now().Add(-5*time.Minute).Truncate(time.Minute), rows))
				if err != nil {
					b.Fatal(err)
				}
				seq := 0
				ingest := func() float64 {
					stream, err := ingestv1.NewIngestServiceClient(ts.conn).Write(context.Background())
					if err != nil {
						b.Fatal(err)
					}
					defer stream.CloseSend()
					start, n := time.Now(), 0
					for time.Since(start) < phase {
						seq++
						if err := stream.Send(&ingestv1.WriteRequest{BatchId: fmt.Sprintf("%s-%d", svc, seq), ArrowIpc: data}); err != nil {
							b.Fatal(err)
						}
						resp, err := stream.Recv()
						if err != nil {
							b.Fatal(err)
						}
						if resp.Status != ingestv1.WriteResponse_STATUS_ACKED {
							b.Fatalf("batch %d: %v %s", seq, resp.Status, resp.Error)
						}
						n++
					}
					return float64(n) / time.Since(start).Seconds()
				}
				var queries atomic.Int64
				underQueries := func() float64 {
					stop := make(chan struct{})
					var wg sync.WaitGroup
					for c := range clients {
						wg.Go(func() {
							for i := 0; ; i++ {
								select {
								case <-stop:
									return
								default:
								}
								if code := get(ts.httpURL + hostileQuery(c*1_000_000+i)); code != 200 && code != 504 {
									b.Errorf("hostile query: status %d", code)
									return
								}
								queries.Add(1)
							}
						})
					}
					defer func() { close(stop); wg.Wait() }()
					return ingest()
				}
				var ratios, alone, hostile []float64
				for range b.N {
					for r := range rounds {
						var a, h float64
						if r%2 == 0 {
							a, h = ingest(), underQueries()
						} else {
							h, a = underQueries(), ingest()
						}
						alone, hostile, ratios = append(alone, a), append(hostile, h), append(ratios, h/a)
					}
				}
				b.ReportMetric(median(alone), "batches/s-alone")
				b.ReportMetric(median(hostile), "batches/s-hostile")
				b.ReportMetric(median(ratios), "ratio")
				b.ReportMetric(slices.Max(ratios)-slices.Min(ratios), "ratio-spread")
				b.ReportMetric(float64(queries.Load())/float64(b.N), "queries/op")
			})
		}
	}
}

// median of xs (sorted in place).
func median(xs []float64) float64 {
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}
