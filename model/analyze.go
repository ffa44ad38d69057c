package model

import (
	"encoding/json"
	"time"
)

// Analysis kinds (AnalyzeRequest.Kind).
const (
	AnalyzeRegression  = "regression"
	AnalyzeOpportunity = "opportunity"
	AnalyzeAll         = "all"
)

// AnalyzeRequest is the body of POST /api/v1/analyze: run the analyzer now, with
// the server's configuration except for the fields set here.
type AnalyzeRequest struct {
	// Kind is regression, opportunity or all (default all).
	Kind string `json:"kind,omitempty"`
	// Services to analyze (default: every service with samples).
	Services []string `json:"services,omitempty"`
	// DryRun returns the findings without storing them.
	DryRun bool `json:"dry_run,omitempty"`
	// Window, History, Step and OpportunityWindow override the regression window, the
	// history read before it, the detector's time bucket and the data ranked for
	// opportunities (Go durations, "6h"); empty keeps the server's.
	Window            string `json:"window,omitempty"`
	History           string `json:"history,omitempty"`
	Step              string `json:"step,omitempty"`
	OpportunityWindow string `json:"opportunity_window,omitempty"`
	// Now analyzes as of this time (default: the server's clock).
	Now time.Time `json:"now,omitzero"`
}

// AnalyzeResponse is the answer of POST /api/v1/analyze.
type AnalyzeResponse struct {
	// From and To bound the data the analyses read.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Series counts the function series examined for regressions; Services the
	// services ranked for opportunities.
	Series   int `json:"series"`
	Services int `json:"services"`
	// Written counts the findings stored (0 for a dry run).
	Written int `json:"written"`
	// TookSeconds is the run's duration.
	TookSeconds float64 `json:"took_seconds"`
	// Errors are failures that did not stop the run (root cause).
	Errors []string `json:"errors,omitempty"`
	// Findings is a findings document (schema fleetprof.findings/v1).
	Findings json.RawMessage `json:"findings"`
}
