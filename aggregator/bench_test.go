package aggregator

import (
	"context"
	"fmt"
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
			stream.CloseSend()
			stream.Recv()
		})
	}
}
