package agent

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
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
	// envChildProfile is a path prefix: the child writes its CPU profile
	// to PREFIX.cpu.pprof and its heap profile to PREFIX.heap.pprof.
	envChildProfile = "FLEETPROF_TEST_AGENT_PROFILE"
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
	prof := os.Getenv(envChildProfile)
	if prof != "" {
		f, err := os.Create(prof + ".cpu.pprof")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	fmt.Println("ready")
	err = a.Run(ctx)
	if prof != "" {
		pprof.StopCPUProfile()
		if f, ferr := os.Create(prof + ".heap.pprof"); ferr == nil {
			_ = pprof.WriteHeapProfile(f)
			_ = f.Close()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
