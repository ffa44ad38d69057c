package aggregator

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// writeFailStore fails writes while fail is set; reads and Ping keep working
// (a full disk).
type writeFailStore struct {
	Store
	fail atomic.Bool
}

func (s *writeFailStore) Ingest(ctx context.Context, id string, b *samplebatch.Batch) (int, bool, error) {
	if s.fail.Load() {
		return 0, false, errors.New("no space left on device")
	}
	return s.Store.Ingest(ctx, id, b)
}

// TestReadyzFollowsWriteFailures: /readyz turns 503 at the threshold of
// consecutive write failures, stays ready below it, and recovers with the
// first stored batch; each failure is counted in /metrics.
func TestReadyzFollowsWriteFailures(t *testing.T) {
	st := &writeFailStore{Store: newMemStore()}
	const threshold = 2
	ts := startServer(t, st, Config{UnreadyAfterWriteFailures: threshold})
	data := encode(t, dataset(uniqueService(t), time.Now().Truncate(time.Minute)))
	send := func(id string, want ingestv1.WriteResponse_Status) {
		t.Helper()
		resps, err := write(context.Background(), ts.conn, "", &ingestv1.WriteRequest{BatchId: id, ArrowIpc: data})
		if err != nil || resps[0].Status != want {
			t.Fatalf("batch %s: %v %v, want %v", id, resps, err, want)
		}
	}
	st.fail.Store(true)
	for i := range threshold {
		if code, _ := getJSON(t, ts.httpURL, "/readyz"); code != 200 {
			t.Fatalf("readyz after %d failures = %d, want 200", i, code)
		}
		send("b", ingestv1.WriteResponse_STATUS_FAILED)
	}
	code, m := getJSON(t, ts.httpURL, "/readyz")
	if code != 503 || m["consecutive_failures"] != float64(threshold) {
		t.Fatalf("readyz after %d failures = %d %v, want 503", threshold, code, m)
	}
	st.fail.Store(false)
	send("b", ingestv1.WriteResponse_STATUS_ACKED)
	if code, _ := getJSON(t, ts.httpURL, "/readyz"); code != 200 {
		t.Fatalf("readyz after recovery = %d, want 200", code)
	}
	if got := metricValue(t, ts.httpURL, "fleetprof_storage_write_errors_total"); got != threshold {
		t.Fatalf("write errors metric = %v, want %d", got, threshold)
	}
}

// metricValue reads one unlabelled sample from /metrics.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not exported", name)
	return 0
}
