package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/queryclient"
	"github.com/fleetprof/fleetprof/analyzer/mcpserver"
	"github.com/fleetprof/fleetprof/analyzer/skills"
	"github.com/fleetprof/fleetprof/analyzer/tools"
)

func init() {
	register("mcp", "the analyzer's tool layer as an MCP server (stdio, or --http ADDR)", runMCP)
}

func runMCP(ctx context.Context, args []string, _ io.Writer) error {
	fs := flag.NewFlagSet("mcp", flag.ContinueOnError)
	agg := fs.String("aggregator", queryclient.DefaultBaseURL, "aggregator base URL")
	repo := fs.String("repo", "", "source checkout (git work tree) for code and history tools")
	module := fs.String("module", "", "Go module directory inside --repo (default: --repo)")
	findingsFile := fs.String("findings", "", "findings document to serve in the findings tool")
	window := fs.Duration("window", tools.DefaultWindow, "default time range of selections")
	addr := fs.String("http", "", "serve streamable HTTP on this address instead of stdio (e.g. 127.0.0.1:7073)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	reg := skills.Default()
	tb, err := tools.New(tools.Config{Aggregator: *agg, Repo: *repo, Module: *module, FindingsFile: *findingsFile,
		Window: *window, Docs: reg.Docs()})
	if err != nil {
		return usageError{err}
	}
	srv := mcpserver.New(tb, mcpserver.Config{Skills: reg})
	if *addr == "" {
		return mcpserver.ServeStdio(ctx, srv)
	}
	// stdout is the protocol channel only in stdio mode; log to stderr either way.
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *addr, err)
	}
	// Streamable HTTP keeps a session's event stream open; Shutdown waits for open
	// requests, so it cancels their context to end those streams (else a client
	// still attached made Shutdown run into its deadline).
	base, stop := context.WithCancel(context.Background())
	defer stop()
	hs := &http.Server{Handler: mcpserver.HTTPHandler(srv), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return base }}
	hs.RegisterOnShutdown(stop)
	log.Info("mcp server listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("mcp http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// As the aggregator does: drain, then close what is left. A client's open
	// event stream, or a connection its HTTP transport dialed but never used
	// (net/http counts those busy for 5 s), would otherwise fail the shutdown.
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("mcp http: closing connections still open after the grace period", "err", err)
		if err := hs.Close(); err != nil {
			return fmt.Errorf("mcp http close: %w", err)
		}
	}
	return nil
}
