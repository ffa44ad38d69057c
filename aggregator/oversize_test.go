package aggregator

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// An oversized batch and a batch with an over-long frame name are answered per
// batch on one stream: the first REJECTED naming the limit, the second ACKED with
// the name shortened and counted; the batch after them still lands.
func TestOversizeAndLongNames(t *testing.T) {
	const limit = 8 << 10
	ts := startServer(t, newMemStore(), Config{MaxMessageBytes: limit})
	now := time.Now()
	var big []samplebatch.Sample
	for i := range 60 {
		s := dataset("big", now)[0]
		s.Frames = []string{"main", fmt.Sprintf("f%04d_%s", i, strings.Repeat("x", 64))}
		big = append(big, s)
	}
	long := dataset("long", now)
	long[0].Frames = []string{"main", "void std::sort<" + strings.Repeat("std::basic_string<char>, ", 60) + ">()"}
	reqs := []*ingestv1.WriteRequest{
		{BatchId: "big", ArrowIpc: encode(t, big)},
		{BatchId: "long", ArrowIpc: encode(t, long)},
		{BatchId: "next", ArrowIpc: encode(t, dataset("next", now))},
	}
	if n := len(reqs[0].GetArrowIpc()); n <= limit || n > limit*oversizeReadFactor {
		t.Fatalf("oversized batch is %d bytes; want in (%d, %d]", n, limit, limit*oversizeReadFactor)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resps, err := write(ctx, ts.conn, "", reqs...)
	if err != nil {
		t.Fatalf("stream ended: %v (answers %v)", err, resps)
	}
	want := []ingestv1.WriteResponse_Status{ingestv1.WriteResponse_STATUS_REJECTED, ingestv1.WriteResponse_STATUS_ACKED, ingestv1.WriteResponse_STATUS_ACKED}
	for i, r := range resps {
		if r.GetStatus() != want[i] {
			t.Errorf("batch %s: %v %q, want %v", r.GetBatchId(), r.GetStatus(), r.GetError(), want[i])
		}
	}
	if e := resps[0].GetError(); !strings.Contains(e, "max-message-bytes") || !strings.Contains(e, fmt.Sprint(limit)) {
		t.Errorf("rejection %q does not name the limit", e)
	}
	var m dto.Metric
	if err := ts.srv.metrics.shortened.Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 1 {
		t.Errorf("shortened names = %v, want 1", got)
	}
}
