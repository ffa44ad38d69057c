package main

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/mcpserver"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestMCPOverHTTP(t *testing.T) {
	addr := freeAddr(t)
	agg := noFindingsAggregator(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runMCP(ctx, []string{"--http", addr, "--aggregator", agg}, io.Discard) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("mcp: %v", err)
		}
	}()
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	var (
		cs  *mcp.ClientSession
		err error
	)
	// Retry until the listener is up; the deadline only bounds a broken start.
	for deadline := time.Now().Add(30 * time.Second); ; {
		cs, err = client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: "http://" + addr, MaxRetries: -1}, nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer cs.Close()
	list, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Tools) != len(mcpserver.Tools) {
		t.Errorf("%d tools, want %d", len(list.Tools), len(mcpserver.Tools))
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "skill_docs", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("skill_docs: %v %+v", err, res)
	}
	if fmt.Sprint(res.StructuredContent) == "" {
		t.Error("skill_docs: empty")
	}
}

func TestMCPUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"extra"}, {"--repo", "/nonexistent"}, {"--bogus"}} {
		_, err := cli(t, runMCP, args...)
		var u usageError
		if !asUsage(err, &u) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}
