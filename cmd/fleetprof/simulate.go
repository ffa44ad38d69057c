package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/fleetprof/fleetprof/agent/ship"
	"github.com/fleetprof/fleetprof/analyzer/simulate"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

func init() {
	register("simulate", "synthetic fleet: many hosts, rollouts, injected regressions with ground truth", runSimulate)
}

// simBatchRows bounds the rows of one sample batch, well under the ingest limits.
const simBatchRows = 20000

// simSummary is what simulate prints on stdout.
type simSummary struct {
	Start       time.Time `json:"start"`
	Buckets     int       `json:"buckets"`
	Samples     int64     `json:"samples"`
	Rows        int64     `json:"rows"`
	Batches     int64     `json:"batches"`
	Regressions int       `json:"regressions"`
	Controls    int       `json:"controls"`
	Repo        string    `json:"repo,omitempty"`
	Truth       string    `json:"truth,omitempty"`
	Out         string    `json:"out,omitempty"`
	GRPC        string    `json:"grpc,omitempty"`
}

func runSimulate(ctx context.Context, args []string, stdout io.Writer) error {
	cfg := simulate.DefaultConfig()
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.IntVar(&cfg.Hosts, "hosts", cfg.Hosts, "hosts per service")
	fs.IntVar(&cfg.Services, "services", cfg.Services, "number of services")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "simulated time span")
	fs.DurationVar(&cfg.Bucket, "bucket", cfg.Bucket, "time bucket")
	fs.Int64Var(&cfg.Seed, "seed", cfg.Seed, "random seed (same seed, same fleet)")
	fs.IntVar(&cfg.Functions, "functions", cfg.Functions, "service-owned functions per service")
	fs.IntVar(&cfg.Releases, "releases", cfg.Releases, "releases per service after v1")
	fs.Float64Var(&cfg.SampleHz, "hz", cfg.SampleHz, "sampling rate per core")
	regs := fs.String("regressions", "random:2", `injected regressions: "FUNCTION=SIZE,…" (FUNCTION=SIZE@24h: ramping in over 24h) and/or "random:K"`)
	start := fs.String("start", "", "start of the first bucket (RFC 3339; default: now minus duration, bucket-aligned)")
	repo := fs.String("repo", "", "write one git repository per service under this directory")
	truth := fs.String("truth", "", "write the ground truth JSON to this file")
	addr := fs.String("grpc", "", "aggregator ingest address (default 127.0.0.1:7071 unless --out is given)")
	token := fs.String("token", os.Getenv("FLEETPROF_TOKEN"), "bearer token for the aggregator ($FLEETPROF_TOKEN)")
	tokenFile := fs.String("token-file", "", "file holding the bearer token (default: the token of a fleetprof up running with --data)")
	dataDir := fs.String("data", defaultDataDir, "data directory of a local fleetprof up, whose token is used when --grpc is its address")
	out := fs.String("out", "", "write batches (Arrow IPC) or, with --direct, rollup rows (JSON lines) to this directory instead of an aggregator")
	direct := fs.Bool("direct", false, "write rollup rows (fast direct form) instead of sample batches; needs --out")
	progress := fs.Bool("progress", false, "show progress on stderr even when it is not a terminal")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	specs, random, err := simulate.ParseRegressions(*regs)
	if err != nil {
		return usageError{err}
	}
	cfg.Regressions, cfg.RandomRegressions = specs, random
	if *start != "" {
		if cfg.Start, err = time.Parse(time.RFC3339, *start); err != nil {
			return usageError{fmt.Errorf("--start: %w", err)}
		}
	} else if cfg.Bucket > 0 {
		cfg.Start = time.Now().UTC().Add(-cfg.Duration).Truncate(cfg.Bucket)
	}
	if *direct && *out == "" {
		return usageError{errors.New("--direct needs --out (rollup rows are not sent over the ingest RPC)")}
	}
	if *out != "" && *addr != "" {
		return usageError{errors.New("give either --grpc or --out, not both")}
	}
	if *out == "" && *addr == "" {
		*addr = localGRPC("127.0.0.1:7071", false, *dataDir)
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	fleet, err := simulate.New(cfg)
	if err != nil {
		return err
	}
	sum := simSummary{Start: cfg.Start, Buckets: fleet.Buckets(), Repo: *repo, Truth: *truth, Out: *out, GRPC: *addr}
	if *repo != "" {
		if err := fleet.WriteRepos(*repo); err != nil {
			return err
		}
	}
	// Truth first: it is useful even if sending is interrupted.
	if *truth != "" {
		if err := fleet.Truth().WriteFile(*truth); err != nil {
			return err
		}
	}
	tr := fleet.Truth()
	sum.Regressions, sum.Controls = len(tr.Regressions), len(tr.Controls)

	var sink simSink
	switch {
	case *out != "" && *direct:
		sink, err = newRollupSink(*out)
	case *out != "":
		dir := filepath.Join(*out, "batches")
		sink, err = &batchSink{seed: cfg.Seed, start: cfg.Start.Unix(), send: fileSender(dir)}, os.MkdirAll(dir, 0o750)
	default:
		var tok string
		if tok, err = resolveToken(*token, *tokenFile, *dataDir, *addr); err == nil {
			var c *ship.Client
			if c, err = ship.NewClient(ship.Config{Addr: *addr, Token: tok}, 0); err == nil {
				sink = &batchSink{seed: cfg.Seed, start: cfg.Start.Unix(), send: clientSender(c), close: c.Close}
			}
		}
	}
	if err != nil {
		return err
	}
	defer sink.Close()
	bar := newProgressBar(os.Stderr, *progress, fleet.Buckets())
	err = eachBucket(ctx, fleet, func(b *simulate.Bucket) error {
		sum.Samples += b.Total()
		rows, batches, err := sink.Write(ctx, b)
		sum.Rows += rows
		sum.Batches += batches
		bar.step(b.Index + 1)
		return err
	})
	bar.done()
	if err != nil {
		return err
	}
	if err := sink.Close(); err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(sum)
}

// eachBucket draws buckets in parallel and hands them to fn in order.
func eachBucket(ctx context.Context, f *simulate.Fleet, fn func(*simulate.Bucket) error) error {
	n := f.Buckets()
	workers := max(1, runtime.GOMAXPROCS(0))
	futures := make([]chan *simulate.Bucket, n)
	for i := range futures {
		futures[i] = make(chan *simulate.Bucket, 1)
	}
	sem := make(chan struct{}, 2*workers)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := range n {
			select {
			case sem <- struct{}{}:
			case <-stop:
				return
			}
			go func() { futures[i] <- f.Bucket(i) }()
		}
	}()
	for i := range n {
		var b *simulate.Bucket
		select {
		case b = <-futures[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		<-sem
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

// simSink takes the simulated fleet's buckets: as sample batches (to a
// directory or an aggregator) or as rollup rows (--direct).
type simSink interface {
	// Write stores one bucket and says how many rows and batches that was.
	Write(ctx context.Context, b *simulate.Bucket) (rows int64, batches int64, err error)
	Close() error
}

// batchSink encodes a bucket's samples as batches of at most simBatchRows rows
// with ids stable per (seed, start, bucket, part), so a rerun is deduplicated.
type batchSink struct {
	seed  int64
	start int64
	send  func(ctx context.Context, id string, data []byte) error
	close func() error
}

func (s *batchSink) Write(ctx context.Context, b *simulate.Bucket) (int64, int64, error) {
	samples := b.Samples()
	var batches int64
	for part := 0; part*simBatchRows < len(samples); part++ {
		chunk := samples[part*simBatchRows : min(len(samples), (part+1)*simBatchRows)]
		data, err := samplebatch.Encode(chunk)
		if err != nil {
			return int64(len(samples)), batches, err
		}
		id := fmt.Sprintf("sim-%d-%d-%d-%d", s.seed, s.start, b.Index, part)
		if err := s.send(ctx, id, data); err != nil {
			return int64(len(samples)), batches, err
		}
		batches++
	}
	return int64(len(samples)), batches, nil
}

func (s *batchSink) Close() error {
	if s.close == nil {
		return nil
	}
	err := s.close()
	s.close = nil
	return err
}

// fileSender writes each batch to DIR/<id>.arrow.
func fileSender(dir string) func(context.Context, string, []byte) error {
	return func(_ context.Context, id string, data []byte) error {
		if err := os.WriteFile(filepath.Join(dir, id+".arrow"), data, 0o600); err != nil {
			return fmt.Errorf("write batch: %w", err)
		}
		return nil
	}
}

// clientSender sends batches through the agent's ingest client (ship.Client):
// the same TLS, token, status and retry rules as the agent, one batch in flight.
func clientSender(c *ship.Client) func(context.Context, string, []byte) error {
	return func(ctx context.Context, id string, data []byte) error {
		_, err := c.Write(ctx, id, data)
		return err
	}
}

// rollupSink writes rollup rows as JSON lines to DIR/rollup.jsonl.
type rollupSink struct {
	f   *os.File
	enc *json.Encoder
}

func newRollupSink(dir string) (*rollupSink, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "rollup.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("create rollup file: %w", err)
	}
	return &rollupSink{f: f, enc: json.NewEncoder(f)}, nil
}

func (s *rollupSink) Write(_ context.Context, b *simulate.Bucket) (int64, int64, error) {
	rows := b.Rollup()
	for i := range rows {
		if err := s.enc.Encode(&rows[i]); err != nil {
			return int64(len(rows)), 1, fmt.Errorf("write rollup: %w", err)
		}
	}
	return int64(len(rows)), 1, nil
}

func (s *rollupSink) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("close rollup file: %w", err)
	}
	return nil
}

// progressBar prints "\r[####....] i/n buckets" on a terminal (or when forced).
type progressBar struct {
	w    io.Writer
	n    int
	on   bool
	last time.Time
}

func newProgressBar(f *os.File, force bool, n int) *progressBar {
	on := force
	if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
		on = true
	}
	return &progressBar{w: f, n: n, on: on}
}

func (p *progressBar) step(i int) {
	if !p.on || (i < p.n && time.Since(p.last) < 100*time.Millisecond) {
		return
	}
	p.last = time.Now()
	const width = 30
	done := width * i / max(1, p.n)
	bar := make([]byte, width)
	for j := range bar {
		bar[j] = '.'
		if j < done {
			bar[j] = '#'
		}
	}
	fmt.Fprintf(p.w, "\r[%s] %d/%d buckets", bar, i, p.n)
}

func (p *progressBar) done() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}
