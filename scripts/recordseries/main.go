package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Series is one recorded series in the tcpd.json format of analyzer/evaluate.
type Series struct {
	Name        string           `json:"name"`
	License     string           `json:"license"`
	Values      []*float64       `json:"values"`
	Annotations map[string][]int `json:"annotations"`
	HeldOut     bool             `json:"held_out"`
	Provenance  string           `json:"provenance"`
}

// annotator names the one "annotator": the recorded interventions.
const annotator = "intervention"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "workload":
			if err := runWorkload(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "recordseries workload:", err)
				os.Exit(1)
			}
			return
		case "spin":
			spin()
			return
		}
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "recordseries:", err)
		os.Exit(1)
	}
}

func run() error {
	out := flag.String("out", "analyzer/evaluate/testdata/recorded.json", "output file (tcpd.json format)")
	fleetprof := flag.String("fleetprof", "bin/fleetprof", "fleetprof binary for the shares (runs `up` with its own data directory and ports)")
	parts := flag.String("parts", "bench,shares,load", "which kinds to record: bench, shares, load")
	bucket := flag.Duration("bucket", 20*time.Second, "share bucket")
	loadEvery := flag.Duration("load-every", 15*time.Second, "load average sampling interval")
	benchTime := flag.Duration("benchtime", 100*time.Millisecond, "benchtime of each benchmark run")
	flag.Parse()
	want := map[string]bool{}
	for _, p := range strings.Split(*parts, ",") {
		want[strings.TrimSpace(p)] = true
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	machine := machineLine()
	logf("machine: %s", machine)

	var (
		mu     sync.Mutex
		all    []Series
		errs   []error
		wg     sync.WaitGroup
		shares = make(chan struct{})
	)
	add := func(kind string, ss []Series, err error) {
		mu.Lock()
		defer mu.Unlock()
		for i := range ss {
			ss[i].Provenance += "; machine: " + machine
		}
		all = append(all, ss...)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", kind, err))
		}
		if werr := writeSeries(*out+"."+kind, ss); werr != nil {
			errs = append(errs, werr)
		}
	}
	if want["shares"] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ss, err := recordShares(ctx, *fleetprof, *bucket, shares)
			add("shares", ss, err)
		}()
		// The benchmarks and the load schedule start once the workloads run, so the
		// three recordings overlap in time but not in their interventions.
		select {
		case <-shares:
		case <-ctx.Done():
		}
	}
	if want["bench"] {
		ss, err := recordBench(ctx, *benchTime)
		add("bench", ss, err)
	}
	if want["load"] {
		ss, err := recordLoad(ctx, *loadEvery)
		add("load", ss, err)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	sortSeries(all)
	return writeSeries(*out, all)
}

func writeSeries(path string, ss []Series) error {
	b, err := json.MarshalIndent(ss, "", " ")
	if err != nil {
		return fmt.Errorf("encode series: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil { //nolint:gosec // testdata is world-readable
		return fmt.Errorf("write series: %w", err)
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
}

// machineLine describes the host: CPU model, cores, kernel.
func machineLine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if _, v, ok := strings.Cut(l, ":"); ok {
					model = strings.TrimSpace(v)
				}
				break
			}
		}
	}
	kernel := "unknown kernel"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d cores, %s, %s", model, runtime.NumCPU(), kernel, runtime.Version())
}
