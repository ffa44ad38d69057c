package storage

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// synthStacks makes n stacks of depth 8..31 over a pool of function names,
// with shared prefixes like real call trees.
func synthStacks(n int, seed uint64) map[uint64][]string {
	r := rand.New(rand.NewPCG(seed, 1))
	funcs := make([]string, 2000)
	for i := range funcs {
		funcs[i] = fmt.Sprintf("github.com/example/pkg%d.(*Type%d).Method%d", i%50, i%7, i)
	}
	out := make(map[uint64][]string, n)
	for len(out) < n {
		d := 8 + r.IntN(24)
		f := make([]string, d)
		for j := range f {
			// Shallow frames come from a small set, deep ones from all.
			f[j] = funcs[r.IntN(min(2000, 10+j*80))]
		}
		out[samplebatch.StackID(f)] = f
	}
	return out
}

// synthBatch makes rows spread over 50 hosts, 3 versions, 5 services; stacks
// are drawn Zipf-distributed (s=1.1) like real CPU profiles, where a few hot
// paths dominate. Uniform draws (zipf=false) are the rollup's worst case.
func synthBatch(rows int, stacks map[uint64][]string, seed uint64, zipf bool, nhosts, span int) *samplebatch.Batch {
	r := rand.New(rand.NewPCG(seed, 2))
	z := rand.NewZipf(r, 1.1, 1, uint64(len(stacks)-1))
	pick := func() int {
		if zipf {
			return int(z.Uint64())
		}
		return r.IntN(len(stacks))
	}
	ids := make([]uint64, 0, len(stacks))
	for id := range stacks {
		ids = append(ids, id)
	}
	hosts := make([]string, nhosts)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("node-%02d.prod.example", int(seed)*nhosts+i)
	}
	b := &samplebatch.Batch{Stacks: stacks, Rows: make([]samplebatch.Row, rows)}
	for i := range b.Rows {
		h := r.IntN(len(hosts))
		b.Rows[i] = samplebatch.Row{
			TS:      t0.Unix() + int64(r.IntN(span)),
			StackID: ids[pick()],
			Value:   1 + int64(r.IntN(5)), PeriodNS: 10_101_010,
			Labels: samplebatch.Labels{Service: fmt.Sprintf("svc-%d", h%5), Version: fmt.Sprintf("v%d", h%3), Host: hosts[h],
				Namespace: "prod", Pod: "pod-" + hosts[h], Container: "app", Comm: "app", PID: uint32(1000 + h)},
		}
	}
	return b
}

// cpuTime is this process's CPU time (Go and, embedded, the engine's threads).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports rows per CPU-second: unlike rows/s it does not depend on
// what else the machine runs. Embedded only (a server's CPU is elsewhere).
func reportCPU(b *testing.B, bc backendCase, rows int, cpu0 time.Duration) {
	if bc.name == "embedded" {
		b.ReportMetric(float64(rows)/(cpuTime()-cpu0).Seconds(), "rows/cpu-s")
	}
}

func benchStore(b *testing.B, bc backendCase, db string) *Store {
	b.Helper()
	if bc.skip != "" {
		testenv.Skip(b, testenv.MissingTool, "%s", bc.skip)
	}
	s, err := Open(context.Background(), Config{URI: bc.uri(db)})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkIngest writes batches through Ingest (batch-id check, stacks
// already known, rollup per batch). Shapes: "agent" is what one agent sends
// (one host, 60 s, 5,000 rows); "fleet" mixes 50 hosts over 10 minutes in
// 100,000 rows, where the per-batch rollup is several times the samples;
// "agent-x32" writes 32 agent batches per IngestBatches call.
func BenchmarkIngest(b *testing.B) {
	stacks := synthStacks(2000, 1)
	agent := func(i int) *samplebatch.Batch { return synthBatch(5000, stacks, uint64(i%64), true, 1, 60) }
	shapes := []struct {
		name  string
		mk    func(i int) *samplebatch.Batch
		group int // batches per IngestBatches call
	}{
		{"agent", agent, 1},
		{"agent-x32", agent, 32},
		{"fleet-zipf", func(i int) *samplebatch.Batch { return synthBatch(100_000, stacks, 1, true, 50, 600) }, 1},
		{"fleet-uniform", func(i int) *samplebatch.Batch { return synthBatch(100_000, stacks, 1, false, 50, 600) }, 1},
	}
	for _, bc := range backends() {
		for _, sh := range shapes {
			b.Run(bc.name+"/"+sh.name, func(b *testing.B) {
				s := benchStore(b, bc, fmt.Sprintf("bench_ingest_%d", dbSeq.Add(1)))
				defer s.Close()
				ctx := context.Background()
				batches := make([]*samplebatch.Batch, 32)
				for i := range batches {
					batches[i] = sh.mk(i)
				}
				if _, err := s.IngestBulk(ctx, batches[0]); err != nil { // stores the stacks
					b.Fatal(err)
				}
				rows, rollup := 0, 0
				b.ResetTimer()
				start, cpu0 := time.Now(), cpuTime()
				for i := 0; b.Loop(); i++ {
					bt := batches[i%len(batches)]
					if sh.group > 1 {
						items := make([]IngestItem, sh.group)
						for j := range items {
							items[j] = IngestItem{ID: fmt.Sprintf("bench-%d-%d", i, j), Batch: batches[j%len(batches)]}
							rows += len(items[j].Batch.Rows)
						}
						if _, err := s.IngestBatches(ctx, items); err != nil {
							b.Fatal(err)
						}
						continue
					}
					if _, dup, err := s.Ingest(ctx, fmt.Sprintf("bench-%d", i), bt); err != nil || dup {
						b.Fatal(dup, err)
					}
					rows += len(bt.Rows)
				}
				b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
				reportCPU(b, bc, rows, cpu0)
				b.StopTimer()
				for _, bt := range batches {
					rollup += aggregateRollup(bt, 16, time.Minute).len()
				}
				b.ReportMetric(float64(rollup)/float64(len(batches)), "rollup-rows/batch")
			})
		}
	}
}

// BenchmarkBulkWrite writes fleet-shaped 100k-row batches through a
// BulkWriter, whose rollup is merged across batches and flushed at the end.
func BenchmarkBulkWrite(b *testing.B) {
	stacks := synthStacks(2000, 1)
	batches := make([]*samplebatch.Batch, 8)
	for i := range batches {
		batches[i] = synthBatch(100_000, stacks, uint64(i), true, 50, 600)
	}
	for _, bc := range backends() {
		b.Run(bc.name, func(b *testing.B) {
			s := benchStore(b, bc, fmt.Sprintf("bench_bulk_%d", dbSeq.Add(1)))
			defer s.Close()
			ctx := context.Background()
			if _, err := s.IngestBulk(ctx, batches[0]); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			rows := 0
			for b.Loop() {
				w := s.NewBulkWriter()
				for _, bt := range batches {
					if _, err := w.Write(ctx, bt); err != nil {
						b.Fatal(err)
					}
					rows += len(bt.Rows)
				}
				if err := w.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
			reportCPU(b, bc, rows, cpu0)
		})
	}
}

var big struct {
	once  sync.Once
	store *Store
	err   error
	setup time.Duration
}

// bigStore holds 10M sample rows of one service over 10,000 stacks, written
// with one INSERT ... SELECT FROM numbers() (the stacks through IngestBulk).
func bigStore(b *testing.B) *Store {
	bc := backends()[0]
	if bc.skip != "" {
		testenv.Skip(b, testenv.MissingTool, "%s", bc.skip)
	}
	big.once.Do(func() {
		start := time.Now()
		ctx := context.Background()
		s, err := Open(ctx, Config{URI: bc.uri("bench10m")})
		if err != nil {
			big.err = err
			return
		}
		stacks := synthStacks(10_000, 2)
		seed := &samplebatch.Batch{Stacks: stacks}
		for id := range stacks {
			seed.Rows = append(seed.Rows, samplebatch.Row{TS: t0.Unix() - 86400, StackID: id, Value: 1, PeriodNS: 1,
				Labels: samplebatch.Labels{Service: "seed"}})
		}
		if _, err := s.IngestBulk(ctx, seed); err != nil {
			big.err = err
			return
		}
		big.err = s.be.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (ts, service, version, host, namespace, pod, container, comm, pid, label_keys, label_values, stack_id, value, period_ns)
WITH (SELECT groupArray(stack_id) FROM %s) AS ids
SELECT toDateTime(%d + number %% 3600), 'bench', concat('v', toString(number %% 3)), concat('node-', toString(number %% 500)), 'prod',
  concat('pod-', toString(number %% 500)), 'app', 'app', toUInt32(number %% 1000), [], [],
  ids[(cityHash64(number) %% length(ids)) + 1], 1 + number %% 5, 10101010
FROM numbers(10000000)`, s.table("samples"), s.table("stacks"), t0.Unix()))
		big.store = s
		big.setup = time.Since(start)
	})
	if big.err != nil {
		b.Fatal(big.err)
	}
	b.Logf("10M-row setup took %v (once per process)", big.setup)
	return big.store
}

func reportQueryCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
}

func benchSel() model.Selection {
	return model.Selection{Service: "bench", From: t0, To: t0.Add(time.Hour)}
}

func BenchmarkFlame10M(b *testing.B) {
	s := bigStore(b)
	defer reportQueryCPU(b, cpuTime())
	for b.Loop() {
		f, err := s.Flame(context.Background(), benchSel())
		if err != nil || f.Total == 0 {
			b.Fatal(f, err)
		}
	}
}

func BenchmarkTop10M(b *testing.B) {
	s := bigStore(b)
	defer reportQueryCPU(b, cpuTime())
	for b.Loop() {
		t, err := s.Top(context.Background(), benchSel(), 100)
		if err != nil || t.Total == 0 {
			b.Fatal(t, err)
		}
	}
}

// BenchmarkProfile10MCold reads frames from the stacks table, not the cache.
func BenchmarkProfile10MCold(b *testing.B) {
	s := bigStore(b)
	defer reportQueryCPU(b, cpuTime())
	for b.Loop() {
		s.stacks = samplebatch.NewIDCache[stack](s.cfg.StackCache)
		p, err := s.Profile(context.Background(), benchSel())
		if err != nil || p.Total == 0 {
			b.Fatal(err)
		}
	}
}
