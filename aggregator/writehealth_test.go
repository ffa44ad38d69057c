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
	err  atomic.Pointer[error] // the failure; nil: "no space left on device"
}

func (s *writeFailStore) Ingest(ctx context.Context, id string, b *samplebatch.Batch) (int, bool, error) {
	if s.fail.Load() {
		if err := s.err.Load(); err != nil && *err != nil {
			return 0, false, *err
		}
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

// mergeStore is a writeFailStore whose engine merges can be paused: it
// counts the pauses and resumes and reports free bytes.
type mergeStore struct {
	*writeFailStore
	pauses, resumes atomic.Int32
	free            atomic.Uint64
}

func (s *mergeStore) PauseMerges(context.Context) error         { s.pauses.Add(1); return nil }
func (s *mergeStore) ResumeMerges(context.Context) error        { s.resumes.Add(1); return nil }
func (s *mergeStore) FreeSpace(context.Context) (uint64, error) { return s.free.Load(), nil }

// TestMergesPausedWhileDiskFull: a write failing for lack of space pauses the
// store's merges once; they resume with the first write that succeeds once
// ResumeMergesFreeBytes are free, not before; other failures leave merges
// alone.
func TestMergesPausedWhileDiskFull(t *testing.T) {
	st := &mergeStore{writeFailStore: &writeFailStore{Store: newMemStore()}}
	const resumeFree = 1 << 30
	ts := startServer(t, st, Config{ResumeMergesFreeBytes: resumeFree})
	data := encode(t, dataset(uniqueService(t), time.Now().Truncate(time.Minute)))
	n := 0
	noSpace := errors.New("insert fleetprof.samples: Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space. (NOT_ENOUGH_SPACE)")
	for _, step := range []struct {
		name            string
		fail            error
		free            uint64
		pauses, resumes int32
	}{
		{"disk full", noSpace, 0, 1, 0},
		{"still full", noSpace, 0, 1, 0},
		{"a write lands, little free", nil, resumeFree - 1, 1, 0},
		{"room again", nil, resumeFree, 1, 1},
		{"another failure", errors.New("Code: 164. DB::Exception: Table is in readonly mode"), resumeFree, 1, 1},
		{"full again", noSpace, 0, 2, 1},
		{"freed", nil, resumeFree, 2, 2},
	} {
		st.fail.Store(step.fail != nil)
		st.err.Store(&step.fail)
		st.free.Store(step.free)
		want := ingestv1.WriteResponse_STATUS_ACKED
		if step.fail != nil {
			want = ingestv1.WriteResponse_STATUS_FAILED
		}
		n++
		resps, err := write(context.Background(), ts.conn, "", &ingestv1.WriteRequest{BatchId: "b" + strconv.Itoa(n), ArrowIpc: data})
		if err != nil || resps[0].Status != want {
			t.Fatalf("%s: %v %v, want %v", step.name, resps, err, want)
		}
		if p, r := st.pauses.Load(), st.resumes.Load(); p != step.pauses || r != step.resumes {
			t.Fatalf("%s: %d pauses, %d resumes; want %d, %d", step.name, p, r, step.pauses, step.resumes)
		}
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
