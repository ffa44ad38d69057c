package storage

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/storage/clickhousetest"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
)

// TestCluster shards a store over two servers: local tables are created node
// by node, reads and writes go through Distributed tables.
func TestCluster(t *testing.T) {
	if serverSkip != "" {
		testenv.Skip(t, testenv.MissingTool, "%s", serverSkip)
	}
	addrs := clickhousetest.StartN(t, 2)
	ctx := context.Background()
	uri := "clickhouse://" + strings.Join(addrs, ",") + "/prof?cluster=" + clickhousetest.ClusterName
	s, err := Open(ctx, Config{URI: uri})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := knownBatch()
	// More hosts so both shards get rows.
	for i := range b.Rows {
		b.Rows[i].Labels.Host += strings.Repeat("x", i)
	}
	ingest(t, s, "c1", b)
	if _, dup, err := s.Ingest(ctx, "c1", b); err != nil || !dup {
		t.Fatalf("duplicate through the cluster: dup=%v err=%v", dup, err)
	}
	p, err := s.Profile(ctx, all())
	if err != nil || p.Total != 20 || len(p.Stacks) != 4 {
		t.Fatalf("profile = %+v, %v", p, err)
	}
	rows, err := s.Rollup(ctx, model.RollupQuery{Service: "api", From: t0, To: t0.Add(time.Hour)})
	if err != nil || len(rows) == 0 {
		t.Fatalf("rollup = %v, %v", rows, err)
	}
	// Each node holds only its shard of the samples.
	var perNode []int64
	for _, a := range addrs {
		n, err := openServer(ctx, "clickhouse://"+a, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		r, err := n.Query(ctx, "SELECT toInt64(sum(value)) FROM prof.samples_local")
		n.Close()
		if err != nil {
			t.Fatal(err)
		}
		perNode = append(perNode, asInt(r.Data[0][0]))
	}
	if perNode[0]+perNode[1] != 20 || perNode[0] == 0 || perNode[1] == 0 {
		t.Fatalf("samples per node = %v, want both non-empty summing to 20", perNode)
	}
	// Reopening is idempotent on every node; a fresh store reads frames and
	// runs subqueries across shards (GLOBAL IN).
	s2, err := Open(ctx, Config{URI: uri})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	defer func(v int) { maxInlineIDs = v }(maxInlineIDs)
	maxInlineIDs = 1
	p, err = s2.Profile(ctx, all())
	if err != nil || p.Total != 20 || len(p.Stacks) != 4 || p.Stacks[0].Frames[2] != "parse" {
		t.Fatalf("profile from a fresh store = %+v, %v", p, err)
	}
	series, err := s2.FunctionSeries(ctx, all(), "handle", time.Hour)
	if err != nil || len(series) != 1 || series[0].Inclusive != 15 || series[0].Total != 20 {
		t.Fatalf("series = %+v, %v", series, err)
	}
	rows, err = s2.Rollup(ctx, model.RollupQuery{Service: "api", From: t0, To: t0.Add(time.Hour), MinShare: 0.5})
	if err != nil || len(rows) == 0 {
		t.Fatalf("rollup min share = %v, %v", rows, err)
	}
	// Frame locations go through the Distributed stacks table.
	ingest(t, s, "c2", pyBatch(t, false))
	if got := profileLocations(t, Config{URI: uri}); !reflect.DeepEqual(got["app.inner"], stackPyLocs) {
		t.Fatalf("locations through the cluster = %v", got)
	}
}
