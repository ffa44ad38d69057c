package agent

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Environment of a child agent process (see runChildAgent).
const (
	envChild      = "FLEETPROF_TEST_AGENT_CHILD"
	envChildAddr  = "FLEETPROF_TEST_AGENT_ADDR"
	envChildHz    = "FLEETPROF_TEST_AGENT_HZ"
	envChildSpool = "FLEETPROF_TEST_AGENT_SPOOL"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(runChildAgent())
	}
	os.Exit(m.Run())
}

// runChildAgent runs the real agent in this process until SIGTERM, so the
// overhead benchmark can measure its CPU time and peak RSS separately.
func runChildAgent() int {
	hz, _ := strconv.Atoi(os.Getenv(envChildHz))
	a, err := Open(Config{
		Aggregator: os.Getenv(envChildAddr), Hz: hz, FlushInterval: time.Second,
		SpoolDir: os.Getenv(envChildSpool), NodeName: "bench", MetricsAddr: MetricsOff, Kube: KubeOff,
		Ship: fastRetry,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fmt.Println("ready")
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
