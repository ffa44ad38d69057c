package main

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/agent"
	"github.com/fleetprof/fleetprof/agent/labels"
)

func TestParseAgentFlags(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(agent.Config) bool
		err   string
	}{
		{"defaults", nil, func(c agent.Config) bool {
			return c.Aggregator == "127.0.0.1:7071" && c.Hz == 19 && c.FlushInterval == 10*time.Second &&
				c.MetricsAddr == "127.0.0.1:7072" && c.Kube == agent.KubeAuto && c.NodeName != "" && !c.Pprof
		}, ""},
		{"pprof", []string{"--pprof"}, func(c agent.Config) bool { return c.Pprof }, ""},
		{"pprof without metrics", []string{"--pprof", "--metrics", "off"}, nil, "pprof is served on the metrics address"},
		{"all flags", []string{
			"--aggregator", "agg:9000", "--hz", "99", "--flush-interval", "5s", "--token-file", "/t",
			"--tls-ca", "/ca.pem", "--spool-dir", "/s", "--metrics", "off", "--service-label", "app",
			"--version-label", "ver", "--label-order", "env,comm", "--node", "n1", "--kubernetes", "off",
		}, func(c agent.Config) bool {
			return c.Aggregator == "agg:9000" && c.Hz == 99 && c.FlushInterval == 5*time.Second && c.TokenFile == "/t" &&
				c.TLS.CAFile == "/ca.pem" && c.SpoolDir == "/s" && c.MetricsAddr == "off" && c.Labels.ServiceLabel == "app" &&
				c.Labels.VersionLabel == "ver" && len(c.Labels.Order) == 2 && c.Labels.Order[0] == labels.RuleEnv &&
				c.NodeName == "n1" && c.Kube == agent.KubeOff
		}, ""},
		{"bad hz", []string{"--hz", "-5"}, nil, "hz -5"},
		{"bad order", []string{"--label-order", "env,nope"}, nil, `unknown label rule "nope"`},
		{"bad address", []string{"--aggregator", "nohost"}, nil, "aggregator address"},
		{"positional", []string{"extra"}, nil, "unexpected argument"},
		{"unknown flag", []string{"--frobnicate"}, nil, "frobnicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseAgentFlags(tt.args)
			if tt.err != "" {
				var u usageError
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.As(err, &u) {
					t.Fatalf("error %v, want usage error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(cfg) {
				t.Fatalf("config %+v", cfg)
			}
		})
	}
	if _, err := parseAgentFlags([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v, want flag.ErrHelp", err)
	}
}
