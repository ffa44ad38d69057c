package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fleetprof/fleetprof/agent"
	"github.com/fleetprof/fleetprof/agent/labels"
	"github.com/fleetprof/fleetprof/agent/sampler"
)

func init() {
	register("agent", "per-host profiling daemon: sample, symbolize, label, ship", runAgent)
}

// parseAgentFlags turns the agent's flags into its Config.
func parseAgentFlags(args []string) (agent.Config, error) {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	var cfg agent.Config
	fs.StringVar(&cfg.Aggregator, "aggregator", agent.DefaultAggregator, "aggregator ingest gRPC address host:port")
	fs.IntVar(&cfg.Hz, "hz", agent.DefaultHz, "sampling frequency per CPU")
	fs.DurationVar(&cfg.FlushInterval, "flush-interval", agent.DefaultFlushInterval, "how often samples are aggregated and shipped (the batch time bucket)")
	fs.StringVar(&cfg.TokenFile, "token-file", "", "file holding the bearer token for the aggregator")
	fs.StringVar(&cfg.TLS.CAFile, "tls-ca", "", "PEM CA bundle to verify the aggregator (turns TLS on)")
	fs.StringVar(&cfg.TLS.ServerName, "tls-server-name", "", "name to verify in the aggregator's certificate (turns TLS on)")
	fs.BoolVar(&cfg.TLS.Enabled, "tls", false, "use TLS with the system roots")
	fs.BoolVar(&cfg.TLS.InsecureSkipVerify, "tls-insecure", false, "use TLS without verifying the certificate (testing only)")
	fs.StringVar(&cfg.SpoolDir, "spool-dir", agent.DefaultSpoolDir, "directory holding batches until the aggregator acknowledges them")
	fs.Int64Var(&cfg.SpoolMaxBytes, "spool-max-bytes", agent.DefaultSpoolMaxBytes, "spool bound; the oldest batches are dropped beyond it")
	fs.StringVar(&cfg.NodeName, "node", "", "host label and agent id (default $NODE_NAME, then the hostname)")
	fs.StringVar(&cfg.MetricsAddr, "metrics", agent.DefaultMetricsAddr, `address serving /metrics ("off" to disable)`)
	fs.BoolVar(&cfg.Pprof, "pprof", false, "serve Go runtime profiles under /debug/pprof/ on the metrics address")
	fs.StringVar(&cfg.Labels.ServiceLabel, "service-label", labels.DefaultServiceLabel, "pod label naming the service")
	fs.StringVar(&cfg.Labels.VersionLabel, "version-label", labels.DefaultVersionLabel, "pod label naming the version")
	fs.StringVar(&cfg.Labels.ServiceEnv, "service-env", labels.DefaultServiceEnv, "process environment variable naming the service")
	fs.StringVar(&cfg.Labels.VersionEnv, "version-env", labels.DefaultVersionEnv, "process environment variable naming the version")
	order := fs.String("label-order", "pod-label,env,comm", "where service/version come from, first match wins")
	fs.StringVar(&cfg.Kube, "kubernetes", agent.KubeAuto, "Kubernetes metadata: auto (when in a pod), on or off")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: fleetprof agent [flags]")
		fmt.Fprintln(fs.Output(), "\nSamples every CPU with eBPF and ships labelled stacks to the aggregator.")
		fmt.Fprintln(fs.Output(), "Needs root (or CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE) and a kernel with BTF.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	rules, err := labels.ParseOrder(*order)
	if err != nil {
		return cfg, usageError{fmt.Errorf("--label-order: %w", err)}
	}
	cfg.Labels.Order = rules
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return cfg, usageError{err}
	}
	return cfg, nil
}

func runAgent(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := parseAgentFlags(args)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	a, err := agent.Open(cfg)
	if err != nil {
		return explainOpenError(err)
	}
	log.Info("agent started", "aggregator", cfg.Aggregator, "hz", cfg.Hz, "flush", cfg.FlushInterval,
		"node", cfg.NodeName, "spool", cfg.SpoolDir, "metrics", cfg.MetricsAddr, "pprof", cfg.Pprof)
	for _, w := range a.Warnings() {
		log.Warn("agent degraded", "reason", w)
	}
	go logProblems(ctx, log, a)
	err = a.Run(ctx)
	st := a.Stats()
	log.Info("agent stopped", "batches", st.Batches, "samples", st.Samples, "acked", st.Ship.Acked,
		"spooled_left", st.Ship.SpoolBatches)
	return err
}

// logProblems reports new shipping and flush errors once a minute at most.
func logProblems(ctx context.Context, log *slog.Logger, a *agent.Agent) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	var lastShip, lastFlush string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := a.Stats()
		if e := st.Ship.LastError; e != lastShip {
			lastShip = e
			log.Warn("shipping", "error", e, "spooled", st.Ship.SpoolBatches, "spool_dropped", st.Ship.SpoolDropped)
		}
		if e := st.LastFlushError; e != lastFlush {
			lastFlush = e
			log.Warn("flush", "error", e)
		}
	}
}

// explainOpenError adds what this host lacks to a sampler load failure: the
// sampler's own error names the capability or feature, this names the host.
func explainOpenError(err error) error {
	if !errors.Is(err, sampler.ErrUnavailable) {
		return err
	}
	var hints []string
	if os.Geteuid() != 0 {
		hints = append(hints, "not running as root: run as root or grant CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE")
	}
	if _, serr := os.Stat("/sys/kernel/btf/vmlinux"); serr != nil {
		hints = append(hints, "no kernel BTF at /sys/kernel/btf/vmlinux: needs a kernel built with CONFIG_DEBUG_INFO_BTF=y")
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		rel := unix.ByteSliceToString(u.Release[:])
		var major, minor int
		if _, serr := fmt.Sscanf(rel, "%d.%d", &major, &minor); serr == nil && (major < 5 || major == 5 && minor < 8) {
			hints = append(hints, fmt.Sprintf("kernel %s is too old: needs Linux 5.8+", rel))
		}
	}
	if len(hints) == 0 {
		return err
	}
	return errors.Join(err, errors.New(strings.Join(hints, "; ")))
}
