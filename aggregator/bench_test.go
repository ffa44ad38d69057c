package aggregator

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// benchBatch is an agent-like batch: rows over 50 hosts × 2 versions, 2,000 distinct
// stacks of depth 12–30 drawn from 300 function names.
func benchBatch(service string, ts time.Time, rows int) []samplebatch.Sample {
	out := make([]samplebatch.Sample, rows)
	for i := range out {
		stack := i % 2000
		depth := 12 + stack%19
		frames := make([]string, depth)
		for d := range frames {
			frames[d] = fmt.Sprintf("pkg%d.Func%d", (stack*7+d*13)%30, (stack*31+d*17)%300)
		}
		out[i] = samplebatch.Sample{
			TS: ts.Unix(),
			Labels: samplebatch.Labels{Service: service, Version: fmt.Sprintf("v%d", i%2),
				Host: fmt.Sprintf("host-%02d", i%50), Comm: "app", PID: uint32(1000 + i%50)},
			Frames: frames, Value: int64(1 + i%5), PeriodNS: 10_101_010,
		}
	}
	return out
}

// cpuTime is this process's CPU time: server, client and (embedded) engine threads.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports rows per CPU-second, which unlike rows/s does not depend on
// what else the machine runs. Not for the server backend (its CPU is elsewhere).
func reportCPU(b *testing.B, backend string, rows int, cpu0 time.Duration) {
	if backend != "server" {
		b.ReportMetric(float64(rows)/(cpuTime()-cpu0).Seconds(), "rows/cpu-s")
	}
}

// BenchmarkIngestE2E streams 10,000-row batches over gRPC into each backend; the
// rows/s metric is what one aggregator ingests end to end (network, Arrow decode, store).
func BenchmarkIngestE2E(b *testing.B) {
	const rows = 100_000
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			st := be.open(b)
			if m, ok := st.(*memStore); ok {
				m.discard = true
			}
			ts := startServer(b, st, Config{})
			svc := uniqueService(b)
			data, err := samplebatch.Encode(benchBatch(svc, time.Now().Add(-5*time.Minute).Truncate(time.Minute), rows))
			if err != nil {
				b.Fatal(err)
			}
			stream, err := ingestv1.NewIngestServiceClient(ts.conn).Write(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			cpu0 := cpuTime()
			// The sender runs ahead of the acks, as an agent with a send window does;
			// gRPC flow control bounds how far.
			sendErr := make(chan error, 1)
			go func() {
				for i := 0; i < b.N; i++ {
					if err := stream.Send(&ingestv1.WriteRequest{BatchId: fmt.Sprintf("%s-%d", svc, i), ArrowIpc: data}); err != nil {
						sendErr <- err
						return
					}
				}
				sendErr <- nil
			}()
			for i := 0; i < b.N; i++ {
				resp, err := stream.Recv()
				if err != nil {
					b.Fatal(err)
				}
				if resp.Status != ingestv1.WriteResponse_STATUS_ACKED {
					b.Fatalf("batch %d: %v %s", i, resp.Status, resp.Error)
				}
			}
			if err := <-sendErr; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
			reportCPU(b, be.name, rows*b.N, cpu0)
			stream.CloseSend()
			stream.Recv()
		})
	}
}

// BenchmarkIngestE2EAgents is many agents at once: 16 streams, each sending
// 5,000-row batches of one host, as a fleet's DaemonSet does. Here the
// per-insert overhead dominates unless concurrent batches are group-committed.
func BenchmarkIngestE2EAgents(b *testing.B) {
	const (
		streams = 16
		rows    = 5000
	)
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			st := be.open(b)
			if m, ok := st.(*memStore); ok {
				m.discard = true
			}
			ts := startServer(b, st, Config{})
			svc := uniqueService(b)
			payload := make([][]byte, streams)
			for s := range payload {
				smp := benchBatch(svc, time.Now().Add(-5*time.Minute).Truncate(time.Minute), rows)
				for i := range smp {
					smp[i].Labels.Host = fmt.Sprintf("agent-%02d", s)
				}
				data, err := samplebatch.Encode(smp)
				if err != nil {
					b.Fatal(err)
				}
				payload[s] = data
			}
			b.ResetTimer()
			cpu0 := cpuTime()
			errc := make(chan error, streams)
			for s := range streams {
				go func() {
					errc <- func() error {
						stream, err := ingestv1.NewIngestServiceClient(ts.conn).Write(context.Background())
						if err != nil {
							return err
						}
						defer stream.CloseSend()
						for i := 0; i < b.N; i++ {
							if err := stream.Send(&ingestv1.WriteRequest{BatchId: fmt.Sprintf("%s-%d-%d", svc, s, i), ArrowIpc: payload[s]}); err != nil {
								return err
							}
							resp, err := stream.Recv()
							if err != nil {
								return err
							}
							if resp.Status != ingestv1.WriteResponse_STATUS_ACKED {
								return fmt.Errorf("stream %d batch %d: %v %s", s, i, resp.Status, resp.Error)
							}
						}
						return nil
					}()
				}()
			}
			for range streams {
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(streams*rows*b.N)/b.Elapsed().Seconds(), "rows/s")
			reportCPU(b, be.name, streams*rows*b.N, cpu0)
		})
	}
}

// BenchmarkIngestSmallBatches is fleet shape (issue 14): 64 senders, each
// sending 350-row batches (a pprof push, a short agent flush), written one
// insert per batch (MaxCommitBatches 1) and group-committed (the defaults),
// in the same process. samples/s and samples/cpu-s compare the two.
func BenchmarkIngestSmallBatches(b *testing.B) {
	const (
		senders = 64
		rows    = 350
	)
	modes := []struct {
		name string
		cfg  Config
	}{
		{"per-batch", Config{MaxCommitBatches: 1}},
		{"group", Config{}},
	}
	for _, be := range backends {
		for _, m := range modes {
			b.Run(be.name+"/"+m.name, func(b *testing.B) {
				st := be.open(b)
				if ms, ok := st.(*memStore); ok {
					ms.discard = true
				}
				ts := startServer(b, st, m.cfg)
				svc := uniqueService(b)
				payload := make([][]byte, senders)
				for s := range payload {
					smp := benchBatch(svc, time.Now().Add(-5*time.Minute).Truncate(time.Minute), rows)
					for i := range smp {
						smp[i].Labels.Host = fmt.Sprintf("agent-%02d", s)
					}
					data, err := samplebatch.Encode(smp)
					if err != nil {
						b.Fatal(err)
					}
					payload[s] = data
				}
				b.ResetTimer()
				cpu0 := cpuTime()
				errc := make(chan error, senders)
				for s := range senders {
					go func() { errc <- sendBatches(ts, fmt.Sprintf("%s-%d", svc, s), payload[s], b.N) }()
				}
				for range senders {
					if err := <-errc; err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				total := senders * rows * b.N
				b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "samples/s")
				if be.name != "server" {
					b.ReportMetric(float64(total)/(cpuTime()-cpu0).Seconds(), "samples/cpu-s")
				}
			})
		}
	}
}

// sendBatches sends payload n times on one stream, each under a new id, and
// wants every one ACKED.
func sendBatches(ts *testServer, prefix string, payload []byte, n int) error {
	stream, err := ingestv1.NewIngestServiceClient(ts.conn).Write(context.Background())
	if err != nil {
		return err
	}
	defer stream.CloseSend()
	for i := range n {
		if err := stream.Send(&ingestv1.WriteRequest{BatchId: fmt.Sprintf("%s-%d", prefix, i), ArrowIpc: payload}); err != nil {
			return err
		}
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if resp.Status != ingestv1.WriteResponse_STATUS_ACKED {
			return fmt.Errorf("%s batch %d: %v %s", prefix, i, resp.Status, resp.Error)
		}
	}
	return nil
}

// Shape of BenchmarkIngestFleetSenders (issue 14's agent-shaped load).
var fleetSenders = []int{1, 16, 200, 1000}

const (
	fleetBatchRows = 5000
	fleetDuration  = 4 * time.Second // per case: bounded time, not b.N batches
	fleetBaseRows  = 100_000         // the single-large-batch baseline's batch
	// fleetRetryDelay is how long a sender waits before resending a FAILED batch.
	fleetRetryDelay = 100 * time.Millisecond
)

// BenchmarkIngestFleetSenders sends 5,000-row batches from 1, 16, 200 and
// 1,000 concurrent agent streams for a fixed time into each real store, with
// the write-ahead log and without (ack after each group's store write), and
// reports rows/s, ack p50/p99 and, on embedded chDB where the engine runs
// in this process, rows per CPU-second and its ratio to one stream of
// 100,000-row batches measured the same way in the same run.
func BenchmarkIngestFleetSenders(b *testing.B) {
	for _, be := range backends {
		if be.name == "fake" {
			continue
		}
		for _, mode := range []string{"wal", "ack-after-write"} {
			b.Run(be.name+"/"+mode, func(b *testing.B) {
				st := be.open(b)
				cfg := Config{}
				if mode == "wal" {
					cfg.WALDir = b.TempDir()
				}
				ts := startServer(b, st, cfg)
				svc := uniqueService(b)
				base := runFleet(b, ts, svc+"-base", 1, fleetBaseRows)
				for _, n := range fleetSenders {
					r := runFleet(b, ts, fmt.Sprintf("%s-%d", svc, n), n, fleetBatchRows)
					k := strconv.Itoa(n)
					b.ReportMetric(r.rowsPerSec, "rows/s-"+k)
					b.ReportMetric(r.p50.Seconds()*1000, "ack-p50-ms-"+k)
					b.ReportMetric(r.p99.Seconds()*1000, "ack-p99-ms-"+k)
					b.ReportMetric(float64(r.failed), "pushed-back-"+k)
					if be.name == "embedded" {
						b.ReportMetric(r.rowsPerCPU, "rows/cpu-s-"+k)
						b.ReportMetric(r.rowsPerCPU/base.rowsPerCPU, "cpu-ratio-to-large-batches-"+k)
					}
				}
				if be.name == "embedded" {
					b.ReportMetric(base.rowsPerCPU, "rows/cpu-s-large-batches")
				}
			})
		}
	}
}

type fleetResult struct {
	rowsPerSec, rowsPerCPU float64
	p50, p99               time.Duration
	failed                 int // FAILED answers (back-pressure) resent
}

// runFleet streams batches of rows rows from n senders for fleetDuration.
func runFleet(b *testing.B, ts *testServer, prefix string, n, rows int) fleetResult {
	b.Helper()
	const payloads = 16 // distinct host batches, shared by the senders
	data := make([][]byte, payloads)
	for i := range data {
		smp := benchBatch(prefix, time.Now().Add(-5*time.Minute).Truncate(time.Minute), rows)
		for j := range smp {
			smp[j].Labels.Host = fmt.Sprintf("agent-%02d", i)
		}
		enc, err := samplebatch.Encode(smp)
		if err != nil {
			b.Fatal(err)
		}
		data[i] = enc
	}
	var (
		mu     sync.Mutex
		acks   []time.Duration
		sent   int
		failed int
	)
	stop := time.Now().Add(fleetDuration)
	cpu0, t0 := cpuTime(), time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for s := range n {
		wg.Go(func() {
			stream, err := ingestv1.NewIngestServiceClient(ts.conn).Write(context.Background())
			if err != nil {
				errc <- err
				return
			}
			defer stream.CloseSend()
			for i := 0; time.Now().Before(stop); i++ {
				t := time.Now()
				for {
					if err := stream.Send(&ingestv1.WriteRequest{BatchId: fmt.Sprintf("%s-%d-%d", prefix, s, i), ArrowIpc: data[s%payloads]}); err != nil {
						errc <- err
						return
					}
					resp, err := stream.Recv()
					if err != nil {
						errc <- err
						return
					}
					if resp.Status == ingestv1.WriteResponse_STATUS_ACKED {
						break
					}
					if resp.Status != ingestv1.WriteResponse_STATUS_FAILED {
						errc <- fmt.Errorf("sender %d batch %d: %v %s", s, i, resp.Status, resp.Error)
						return
					}
					// Pushed back (the store is behind): resend, as an agent does.
					mu.Lock()
					failed++
					mu.Unlock()
					time.Sleep(fleetRetryDelay)
				}
				mu.Lock()
				acks = append(acks, time.Since(t))
				sent += rows
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	ts.srv.flushForRead(context.Background()) // the log's rows count once stored
	wall, cpu := time.Since(t0), cpuTime()-cpu0
	close(errc)
	for err := range errc {
		b.Fatal(err)
	}
	slices.Sort(acks)
	return fleetResult{
		rowsPerSec: float64(sent) / wall.Seconds(),
		rowsPerCPU: float64(sent) / cpu.Seconds(),
		p50:        acks[len(acks)/2],
		p99:        acks[len(acks)*99/100],
		failed:     failed,
	}
}
