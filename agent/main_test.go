package agent

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"sync"
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
	// to PREFIX-0.cpu.pprof and its heap profile to PREFIX.heap.pprof at
	// exit. Each SIGUSR1 ends the current CPU profile and starts the next
	// (PREFIX-1.cpu.pprof, ...), so a benchmark can profile one phase.
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
		stopProfile, err := profileWindows(prof)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer stopProfile()
	}
	fmt.Println("ready")
	err = a.Run(ctx)
	if prof != "" {
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

// profileWindows starts CPU profiling to prefix-0.cpu.pprof and moves on to
// the next file at each SIGUSR1; stop ends the last window.
func profileWindows(prefix string) (stop func(), err error) {
	var mu sync.Mutex
	var cur *os.File
	next := func(n int) error {
		if cur != nil {
			pprof.StopCPUProfile()
			cur.Close()
			cur = nil
		}
		f, err := os.Create(fmt.Sprintf("%s-%d.cpu.pprof", prefix, n))
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		cur = f
		return nil
	}
	if err := next(0); err != nil {
		return nil, err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	done := make(chan struct{})
	go func() {
		for n := 1; ; n++ {
			select {
			case <-done:
				return
			case <-sig:
				mu.Lock()
				if err := next(n); err != nil {
					fmt.Fprintln(os.Stderr, err)
				}
				mu.Unlock()
			}
		}
	}()
	return func() {
		signal.Stop(sig)
		close(done)
		mu.Lock()
		defer mu.Unlock()
		if cur != nil {
			pprof.StopCPUProfile()
			cur.Close()
			cur = nil
		}
	}, nil
}
