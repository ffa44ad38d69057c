package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	oklogrun "github.com/oklog/run"

	"github.com/fleetprof/fleetprof/agent"
	"github.com/fleetprof/fleetprof/aggregator"
	"github.com/fleetprof/fleetprof/aggregator/storage"
	"github.com/fleetprof/fleetprof/aggregator/ui"
	"github.com/fleetprof/fleetprof/analyzer/loop"
)

func init() {
	register("up", "all-in-one: embedded aggregator, agent profiling this host, analyzer, web UI", runUp)
}

// upConfig is everything `fleetprof up` runs, bound to its flags.
type upConfig struct {
	DataDir  string
	NoAgent  bool
	Agg      aggregator.Config
	Agent    agent.Config
	Analyzer loop.Config
}

func runUp(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	var cfg upConfig
	fs.StringVar(&cfg.DataDir, "data", defaultDataDir, "directory for the embedded ClickHouse data, the agent's spool and the ingest token (file token, mode 0600; import, simulate and analyze on this host use it)")
	fs.StringVar(&cfg.Agg.GRPCAddr, "grpc", aggregator.DefaultGRPCAddr, "gRPC ingest listen address")
	fs.StringVar(&cfg.Agg.HTTPAddr, "http", aggregator.DefaultHTTPAddr, "web UI and query API listen address")
	fs.IntVar(&cfg.Agent.Hz, "hz", agent.DefaultHz, "sampling frequency per CPU")
	fs.DurationVar(&cfg.Agent.FlushInterval, "flush-interval", 5*time.Second, "how often the agent ships samples")
	fs.StringVar(&cfg.Agent.MetricsAddr, "agent-metrics", agent.DefaultMetricsAddr, `agent /metrics address ("off" to disable)`)
	fs.BoolVar(&cfg.NoAgent, "no-agent", false, "don't profile this host (no root needed): serve imported or simulated data only")
	bindAnalyzerLoopFlags(fs, &cfg.Analyzer, upAnalyzerDefaults())
	fs.StringVar(&cfg.Analyzer.Defense.RepoDir, "repo-dir", "", "directory of git checkouts named as their services (DIR/SERVICE), used for root cause from the next analysis on (default: DATA/repos)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if cfg.Analyzer.Defense.RepoDir == "" {
		cfg.Analyzer.Defense.RepoDir = filepath.Join(cfg.DataDir, upRepoDir)
	}
	// Absolute, as clients in other directories read it from the state file.
	if abs, err := filepath.Abs(cfg.Analyzer.Defense.RepoDir); err == nil {
		cfg.Analyzer.Defense.RepoDir = abs
	}
	if err := cfg.Analyzer.Validate(); err != nil {
		return usageError{fmt.Errorf("analyzer: %w", err)}
	}
	// Agent and aggregator share a random token: the ingest port accepts only this process.
	token, err := randomToken()
	if err != nil {
		return err
	}
	cfg.Agg.Storage = embeddedURI(cfg.DataDir)
	cfg.Agg.WALDir = aggregator.WALDirFor(cfg.Agg.Storage)
	cfg.Agg.Token = token
	if err := cfg.Agg.Validate(); err != nil {
		return usageError{err}
	}
	cfg.Agent.Aggregator = dialAddr(cfg.Agg.GRPCAddr)
	cfg.Agent.Token = token
	cfg.Agent.SpoolDir = filepath.Join(cfg.DataDir, "spool")
	cfg.Agent.Kube = agent.KubeOff
	cfg.Agent = cfg.Agent.WithDefaults()
	if err := cfg.Agent.Validate(); err != nil {
		return usageError{err}
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	store, err := openStore(ctx, storage.Config{URI: cfg.Agg.Storage})
	if err != nil {
		return err
	}
	defer store.Close()
	removeState, err := writeUpState(cfg.DataDir, upState{PID: os.Getpid(), HTTP: dialAddr(cfg.Agg.HTTPAddr), GRPC: dialAddr(cfg.Agg.GRPCAddr),
		RepoDir: cfg.Analyzer.Defense.RepoDir}, token)
	if err != nil {
		return err
	}
	defer removeState()

	var g oklogrun.Group
	an, err := loop.New(store, cfg.Analyzer, logAnalyzerRun(log))
	if err != nil {
		return err
	}
	srv, err := aggregator.New(cfg.Agg, store, log, aggregator.WithUI(ui.Handler()), aggregator.WithAnalyzer(an))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g.Add(func() error { return srv.Run(ctx) }, func(error) { cancel() })
	if !cfg.NoAgent {
		ag, err := agent.Open(cfg.Agent)
		if err != nil {
			return fmt.Errorf("start the agent (profiling this host needs root; --no-agent runs without it): %w", err)
		}
		g.Add(func() error { return ag.Run(ctx) }, func(error) { cancel() })
	}
	fmt.Fprintf(stdout, "fleetprof up: web UI on http://%s, ingest on %s, data in %s\n", dialAddr(cfg.Agg.HTTPAddr), cfg.Agg.GRPCAddr, cfg.DataDir)
	if !cfg.NoAgent {
		fmt.Fprintf(stdout, "profiling this host at %d Hz; try: fleetprof query top --http http://%s\n", cfg.Agent.Hz, dialAddr(cfg.Agg.HTTPAddr))
	}
	if err := g.Run(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// dialAddr turns a listen address into one a local client can dial (":7071" → "127.0.0.1:7071").
func dialAddr(listen string) string {
	if strings.HasPrefix(listen, ":") {
		return "127.0.0.1" + listen
	}
	return strings.Replace(listen, "0.0.0.0:", "127.0.0.1:", 1)
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
