package deploy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/internal/testenv"
)

// documentedCaps is the capability list of OPS.md and the Helm chart, in
// setpriv's spelling.
var documentedCaps = []string{"bpf", "perfmon", "sys_ptrace", "sys_resource"}

// TestAgentRunsWithDocumentedCapabilities starts the real agent binary with
// only the documented capabilities in its bounding set (as the DaemonSet
// does), checks that it samples, then that dropping CAP_BPF or CAP_PERFMON
// makes it exit with an error naming exactly that capability.
func TestAgentRunsWithDocumentedCapabilities(t *testing.T) {
	testenv.Root(t, "the agent is started as uid 0 with a reduced capability bounding set")
	setpriv := testenv.LookPath(t, "setpriv", "util-linux")
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		testenv.Skip(t, testenv.KernelFeature, "needs kernel BTF at /sys/kernel/btf/vmlinux for the eBPF sampler")
	}
	bin := buildFleetprof(t)

	t.Run("documented set samples", func(t *testing.T) {
		stop := spin()
		defer stop()
		cmd, stderr, metrics := startAgent(t, setpriv, bin, documentedCaps)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		for {
			n, err := scrapeSamples(ctx, metrics)
			if err == nil && n > 0 {
				t.Logf("agent sampled %v samples with only %v", n, documentedCaps)
				return
			}
			select {
			case err := <-exited:
				t.Fatalf("agent exited (%v) with only %v:\n%s", err, documentedCaps, stderr)
			case <-ctx.Done():
				t.Fatalf("no samples in 30s with only %v (last scrape: %v, %v):\n%s", documentedCaps, n, err, stderr)
			case <-time.After(200 * time.Millisecond):
			}
		}
	})

	tests := []struct {
		drop string // setpriv name
		want string // in stderr
	}{
		{"bpf", "missing capability CAP_BPF"},
		{"perfmon", "missing capability CAP_PERFMON"},
	}
	for _, tt := range tests {
		t.Run("without "+tt.drop, func(t *testing.T) {
			var caps []string
			for _, c := range documentedCaps {
				if c != tt.drop {
					caps = append(caps, c)
				}
			}
			cmd, stderr, _ := startAgent(t, setpriv, bin, caps)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("agent still running 30s after start without CAP_%s:\n%s", strings.ToUpper(tt.drop), stderr)
			}
			if err == nil {
				t.Fatalf("agent exited 0 without CAP_%s:\n%s", strings.ToUpper(tt.drop), stderr)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("stderr does not say %q:\n%s", tt.want, stderr)
			}
			for _, other := range tests {
				if other.drop != tt.drop && strings.Contains(stderr.String(), other.want) {
					t.Errorf("stderr names %q, which was granted:\n%s", other.want, stderr)
				}
			}
		})
	}
}

// buildFleetprof builds ./cmd/fleetprof from the repository root.
func buildFleetprof(t *testing.T) string {
	t.Helper()
	goBin := testenv.LookPath(t, "go", "golang-go, or Go from go.dev")
	bin := filepath.Join(t.TempDir(), "fleetprof")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/fleetprof")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/fleetprof: %v\n%s", err, out)
	}
	return bin
}

// lockedBuffer is a bytes.Buffer safe for the exec copier and the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newLockedBuffer() *lockedBuffer { return &lockedBuffer{} }

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startAgent starts the agent under setpriv keeping only caps in the
// bounding set, and returns it, its stderr and its metrics URL.
func startAgent(t *testing.T, setpriv, bin string, caps []string) (*exec.Cmd, *lockedBuffer, string) {
	t.Helper()
	dir := t.TempDir()
	metricsAddr := freeAddr(t)
	bounding := "-all"
	for _, c := range caps {
		bounding += ",+" + c
	}
	cmd := exec.Command(setpriv, "--bounding-set="+bounding, "--inh-caps=-all", "--",
		bin, "agent", "--aggregator", freeAddr(t), "--spool-dir", filepath.Join(dir, "spool"),
		"--metrics", metricsAddr, "--hz", "99", "--flush-interval", "1s", "--kubernetes", "off")
	stderr := newLockedBuffer()
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
		}
	})
	return cmd, stderr, "http://" + metricsAddr + "/metrics"
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scrapeSamples returns fleetprof_agent_samples_total.
func scrapeSamples(ctx context.Context, url string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "fleetprof_agent_samples_total "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no fleetprof_agent_samples_total in %s", url)
}

// spin keeps a CPU busy so that an idle machine still produces samples.
func spin() (stop func()) {
	var done atomic.Bool
	go func() {
		x := 0
		for !done.Load() {
			x++
		}
		_ = x
	}()
	return func() { done.Store(true) }
}
