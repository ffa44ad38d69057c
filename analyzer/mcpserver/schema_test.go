package mcpserver

import (
	"testing"

	"github.com/fleetprof/fleetprof/analyzer/tools"
)

// TestNewRegistersEveryTool builds the server: AddTool panics on a type whose schema
// cannot be inferred.
func TestNewRegistersEveryTool(t *testing.T) {
	tb, err := tools.New(tools.Config{Aggregator: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	New(tb, Config{})
}
