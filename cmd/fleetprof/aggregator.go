package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/fleetprof/fleetprof/aggregator"
	"github.com/fleetprof/fleetprof/aggregator/storage"
	"github.com/fleetprof/fleetprof/aggregator/ui"
	"github.com/fleetprof/fleetprof/analyzer/loop"
)

func init() {
	register("aggregator", "ingest + query server (gRPC ingest, HTTP API and web UI, metrics)", runAggregator)
}

func runAggregator(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("aggregator", flag.ContinueOnError)
	var cfg aggregator.Config
	var retention time.Duration
	var chdbLib string
	var an loop.Config
	analyzerOn := true
	fs.StringVar(&cfg.Storage, "storage", aggregator.DefaultStorage, "store: embedded:DIR (in-process chDB) or clickhouse://HOST:PORT/DB")
	fs.StringVar(&cfg.GRPCAddr, "grpc", aggregator.DefaultGRPCAddr, "gRPC ingest listen address")
	fs.StringVar(&cfg.HTTPAddr, "http", aggregator.DefaultHTTPAddr, "HTTP query API / metrics listen address")
	fs.StringVar(&cfg.Token, "token", "", "bearer token agents must send (default: no auth)")
	fs.StringVar(&cfg.TokenFile, "token-file", "", "file holding the bearer token")
	fs.StringVar(&cfg.ReadToken, "read-token", "", "bearer token the HTTP API, UI and /metrics require (default: open)")
	fs.StringVar(&cfg.ReadTokenFile, "read-token-file", "", "file holding the read token, reread when it changes (rotation without restart)")
	fs.BoolVar(&cfg.MetricsOpen, "metrics-open", false, "serve /metrics without the read token")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate (PEM) for both listeners")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key (PEM)")
	fs.IntVar(&cfg.MaxMessageBytes, "max-message-bytes", aggregator.DefaultMaxMessageBytes, "largest accepted batch")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", aggregator.DefaultShutdownTimeout, "graceful shutdown limit")
	fs.DurationVar(&cfg.CommitInterval, "commit-interval", aggregator.DefaultCommitInterval, "group commit: wait this long for more batches before a write")
	fs.IntVar(&cfg.MaxCommitBatches, "max-commit-batches", aggregator.DefaultMaxCommitBatches, "group commit: most batches per write (1 = one write per batch)")
	fs.IntVar(&cfg.UnreadyAfterWriteFailures, "unready-after-write-failures", aggregator.DefaultUnreadyAfterWriteFailures, "storage write failures in a row that make /readyz unready")
	fs.Int64Var(&cfg.ResumeMergesFreeBytes, "resume-merges-free-bytes", aggregator.DefaultResumeMergesFreeBytes, "free bytes on the data disk before the engine's merges, paused while writes fail for lack of space, resume")
	walFlag := fs.String("wal", "auto", "ingest write-ahead log directory (acks once logged, writes the store in large groups): auto (inside an embedded store's directory; off for a ClickHouse server), off, or DIR")
	fs.DurationVar(&cfg.WALFlushInterval, "wal-flush-interval", aggregator.DefaultWALFlushInterval, "write logged batches to the store this often (queries flush first)")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "serve Go runtime profiles under /debug/pprof/ on the HTTP port")
	fs.DurationVar(&cfg.QueryTimeout, "query-timeout", aggregator.DefaultQueryTimeout, "deadline of one HTTP query (504 past it)")
	fs.IntVar(&cfg.MaxConcurrentQueries, "max-concurrent-queries", aggregator.DefaultMaxConcurrentQueries, "HTTP queries running at once; the rest wait, ingest keeps its own storage connections")
	fs.DurationVar(&retention, "retention", 0, "keep samples this long (0 = forever)")
	fs.StringVar(&chdbLib, "chdb-lib", "", "explicit libchdb.so path for embedded storage")
	fs.BoolVar(&analyzerOn, "analyze", true, "run the analyzer loop in this process (regressions and opportunities; --analyze=false turns it off)")
	bindAnalyzerLoopFlags(fs, &an, loop.DefaultConfig())
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	cfg.WALDir = walDir(*walFlag, cfg.Storage)
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	if analyzerOn {
		if err := an.Validate(); err != nil {
			return usageError{fmt.Errorf("analyzer: %w", err)}
		}
	}
	scfg := storage.Config{URI: cfg.Storage, Retention: retention, ChdbLib: chdbLib}
	if err := scfg.Validate(); err != nil {
		return usageError{err}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	store, err := openStore(ctx, scfg)
	if err != nil {
		return err
	}
	defer store.Close()
	if r := store.Recovery(); r.RolledForward+r.Discarded+r.PartialPartitions > 0 {
		log.Warn("storage recovered an interrupted commit", "rolled_forward", r.RolledForward, "discarded", r.Discarded, "partial_partitions", r.PartialPartitions)
	}
	// A part the engine set aside at start (truncated, bad checksum) is rows
	// missing from every answer, unless active parts cover it: say so, it is
	// also on /api/v1/storage.
	if parts, err := store.DetachedParts(ctx); err == nil {
		for _, p := range parts {
			if p.Covered {
				log.Warn("storage part detached: its rows are still served by the active parts that cover it", "table", p.Table, "part", p.Name, "reason", p.Reason)
				continue
			}
			log.Warn("storage part detached: its rows are missing from queries", "table", p.Table, "part", p.Name, "reason", p.Reason)
		}
	}
	opts := []aggregator.Option{aggregator.WithUI(ui.Handler())}
	if analyzerOn {
		l, err := loop.New(store, an, logAnalyzerRun(log))
		if err != nil {
			return err
		}
		opts = append(opts, aggregator.WithAnalyzer(l))
	}
	srv, err := aggregator.New(cfg, store, log, opts...)
	if err != nil {
		return err
	}
	log.Info("aggregator listening", "grpc", cfg.GRPCAddr, "http", cfg.HTTPAddr, "storage", redactURI(cfg.Storage), "wal", cfg.WALDir,
		"analyzer", analyzerOn, "analyze_interval", an.Interval)
	if err := srv.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("aggregator stopped")
	return nil
}

// redactURI hides a password in a clickhouse:// URI before logging it.
func redactURI(uri string) string {
	for i := 0; i < len(uri); i++ {
		if uri[i] == '@' {
			return "clickhouse://***@" + uri[i+1:]
		}
	}
	return uri
}

// walDir resolves the --wal setting for a store.
func walDir(setting, storage string) string {
	switch setting {
	case "auto":
		return aggregator.WALDirFor(storage)
	case "off":
		return ""
	}
	return setting
}
