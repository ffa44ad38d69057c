package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/storage/clickhousetest"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
)

// TestClusterMode runs what the chart's external mode runs: `fleetprof aggregator` on a
// two-shard ClickHouse cluster (two Debian clickhouse-server processes on 127.0.0.1,
// no ZooKeeper, so tables are created node by node), fed over gRPC by `fleetprof
// simulate`. The query API must return exactly what was sent, and both shards must
// hold part of it.
func TestClusterMode(t *testing.T) {
	if _, _, err := clickhousetest.Binary(); err != nil {
		testenv.Skip(t, testenv.MissingTool, "clickhouse-server not installed (make setup): %v", err)
	}
	client := testenv.LookPath(t, "clickhouse-client", "clickhouse-client")
	shards := clickhousetest.StartN(t, 2)
	bin := buildFleetprof(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	uri := "clickhouse://" + strings.Join(shards, ",") + "/fleet?cluster=" + clickhousetest.ClusterName
	var aggLog bytes.Buffer
	agg := exec.CommandContext(ctx, bin, "aggregator", "--storage", uri, "--grpc", grpcAddr, "--http", httpAddr, "--token", "s3cret")
	agg.Stdout, agg.Stderr = &aggLog, &aggLog
	if err := agg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = agg.Process.Kill()
		_ = agg.Wait()
		if t.Failed() {
			t.Logf("aggregator output:\n%s", aggLog.String())
		}
	})
	waitReady(ctx, t, "http://"+httpAddr+"/readyz")

	out, err := exec.CommandContext(ctx, bin, "simulate", "--grpc", grpcAddr, "--token", "s3cret",
		"--services", "2", "--hosts", "6", "--duration", "30m", "--bucket", "5m", "--start", "2026-11-01T00:00:00Z").Output()
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, out)
	}
	var sent struct{ Samples int64 }
	if err := json.Unmarshal(out, &sent); err != nil || sent.Samples == 0 {
		t.Fatalf("simulate summary %q: %v", out, err)
	}

	resp, err := http.Get("http://" + httpAddr + "/api/v1/top?from=2026-10-31T00:00:00Z&to=2026-11-02T00:00:00Z&limit=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var top model.Top
	if err := json.NewDecoder(resp.Body).Decode(&top); err != nil {
		t.Fatal(err)
	}
	if top.Total != sent.Samples {
		t.Errorf("query total = %d samples, simulate sent %d", top.Total, sent.Samples)
	}

	var perShard []int64
	for _, addr := range shards {
		_, port, _ := net.SplitHostPort(addr)
		q := exec.CommandContext(ctx, client, "--host", "127.0.0.1", "--port", port, "--query", "SELECT sum(value) FROM fleet.samples_local")
		b, err := q.CombinedOutput()
		if err != nil {
			t.Fatalf("clickhouse-client on %s: %v\n%s", addr, err, b)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatalf("shard %s: %q: %v", addr, b, err)
		}
		perShard = append(perShard, n)
	}
	if perShard[0] == 0 || perShard[1] == 0 || perShard[0]+perShard[1] != sent.Samples {
		t.Errorf("samples per shard = %v, want both non-empty summing to %d", perShard, sent.Samples)
	}
	t.Logf("sent %d samples; query total %d; per shard %v", sent.Samples, top.Total, perShard)
}

func waitReady(ctx context.Context, t *testing.T, url string) {
	t.Helper()
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never became ready", url)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
