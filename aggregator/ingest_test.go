package aggregator

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/storage"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// groupFake is a batchStore that records the groups it is asked to write.
// Methods other than Ingest and IngestBatches are not used by groupCommit.
type groupFake struct {
	Store
	gate     chan struct{} // when set, the first write waits on it
	failAll  bool          // IngestBatches fails
	bad      string        // Ingest of this id fails
	dup      string        // this id is reported duplicate
	mu       sync.Mutex
	groups   []int
	gateOnce sync.Once
}

func (f *groupFake) wait() {
	if f.gate != nil {
		f.gateOnce.Do(func() { <-f.gate })
	}
}

func (f *groupFake) Ingest(_ context.Context, id string, b *samplebatch.Batch) (int, bool, error) {
	f.wait()
	f.mu.Lock()
	f.groups = append(f.groups, 1)
	f.mu.Unlock()
	switch id {
	case f.bad:
		return 0, false, errors.New("bad batch")
	case f.dup:
		return 0, true, nil
	}
	return len(b.Rows), false, nil
}

func (f *groupFake) IngestBatches(_ context.Context, items []storage.IngestItem) ([]storage.IngestResult, error) {
	f.wait()
	f.mu.Lock()
	f.groups = append(f.groups, len(items))
	f.mu.Unlock()
	if f.failAll {
		return nil, errors.New("storage down")
	}
	out := make([]storage.IngestResult, len(items))
	for i, it := range items {
		out[i] = storage.IngestResult{Rows: len(it.Batch.Rows), Duplicate: it.ID == f.dup}
	}
	return out, nil
}

func TestGroupCommit(t *testing.T) {
	const callers = 40
	cases := []struct {
		name string
		fake *groupFake
	}{
		{"grouped", &groupFake{gate: make(chan struct{}), dup: "b7"}},
		{"group fails, one by one", &groupFake{gate: make(chan struct{}), failAll: true, bad: "b3", dup: "b7"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newGroupCommit(tc.fake, 0, 64, 1_000_000)
			type answer struct {
				rows int
				dup  bool
				err  error
			}
			answers := make([]answer, callers)
			var wg sync.WaitGroup
			// The first caller leads and blocks in the store; the rest queue.
			for i := range callers {
				wg.Go(func() {
					b := &samplebatch.Batch{Rows: make([]samplebatch.Row, i+1)}
					rows, dup, err := g.ingest(context.Background(), fmt.Sprintf("b%d", i), b)
					answers[i] = answer{rows, dup, err}
				})
			}
			for {
				g.mu.Lock()
				queued := len(g.pending)
				g.mu.Unlock()
				if queued == callers-1 {
					break
				}
				runtime.Gosched()
			}
			close(tc.fake.gate)
			wg.Wait()
			for i, a := range answers {
				id := fmt.Sprintf("b%d", i)
				switch {
				case id == tc.fake.bad:
					if a.err == nil {
						t.Errorf("%s: no error", id)
					}
				case id == tc.fake.dup:
					if !a.dup || a.err != nil {
						t.Errorf("%s: got %+v, want duplicate", id, a)
					}
				case a.err != nil || a.dup || a.rows != i+1:
					t.Errorf("%s: got %+v, want %d rows", id, a, i+1)
				}
			}
			if g.busy || len(g.pending) != 0 {
				t.Errorf("after all writes: busy=%v pending=%d", g.busy, len(g.pending))
			}
			if !tc.fake.failAll && !slices.Equal(tc.fake.groups, []int{1, callers - 1}) {
				t.Errorf("groups = %v, want [1 %d]", tc.fake.groups, callers-1)
			}
		})
	}
}

// TestGroupCommitInterval: with a commit interval the leader waits for more
// batches; a full group (maxBatches queued) is written at once, as one write.
func TestGroupCommitInterval(t *testing.T) {
	const callers = 16
	fake := &groupFake{gate: make(chan struct{})}
	close(fake.gate)
	// The interval is only the fallback: the group fills long before it ends.
	g := newGroupCommit(fake, time.Second, callers, 1_000_000)
	var wg sync.WaitGroup
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() {
			_, _, errs[i] = g.ingest(context.Background(), fmt.Sprintf("b%d", i), &samplebatch.Batch{Rows: make([]samplebatch.Row, 3)})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("b%d: %v", i, err)
		}
	}
	if !slices.Equal(fake.groups, []int{callers}) {
		t.Fatalf("groups = %v, want one of %d", fake.groups, callers)
	}
}
