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
)

func init() {
	register("aggregator", "ingest + query server (gRPC ingest, HTTP API and web UI, metrics)", runAggregator)
}

func runAggregator(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("aggregator", flag.ContinueOnError)
	var cfg aggregator.Config
	var retention time.Duration
	var chdbLib string
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
	fs.DurationVar(&cfg.QueryTimeout, "query-timeout", aggregator.DefaultQueryTimeout, "deadline of one HTTP query (504 past it)")
	fs.IntVar(&cfg.MaxConcurrentQueries, "max-concurrent-queries", aggregator.DefaultMaxConcurrentQueries, "HTTP queries running at once; the rest wait, ingest keeps its own storage connections")
	fs.DurationVar(&retention, "retention", 0, "keep samples this long (0 = forever)")
	fs.StringVar(&chdbLib, "chdb-lib", "", "explicit libchdb.so path for embedded storage")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	scfg := storage.Config{URI: cfg.Storage, Retention: retention, ChdbLib: chdbLib}
	if err := scfg.Validate(); err != nil {
		return usageError{err}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	store, err := storage.Open(ctx, scfg)
	if err != nil {
		return fmt.Errorf("open storage: %w", err)
	}
	defer store.Close()
	srv, err := aggregator.New(cfg, store, log, aggregator.WithUI(ui.Handler()))
	if err != nil {
		return err
	}
	log.Info("aggregator listening", "grpc", cfg.GRPCAddr, "http", cfg.HTTPAddr, "storage", redactURI(cfg.Storage))
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
