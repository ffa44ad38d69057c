package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/defense"
	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/offense"
	"github.com/fleetprof/fleetprof/model"
)

// analyzeRemoteTimeout bounds one POST /api/v1/analyze (a fleet run reads hours of
// rollup; measured runs take seconds to a minute).
const analyzeRemoteTimeout = 10 * time.Minute

// analyzeRemote asks the aggregator at o.aggregator to analyze now and prints its
// findings like a local run.
func analyzeRemote(ctx context.Context, o *analyzeOptions, stdout io.Writer) error {
	base := strings.TrimSuffix(o.aggregator, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	tok, err := resolveToken(o.token, o.tokenFile, o.dataDir, base)
	if err != nil {
		return err
	}
	body, err := json.Marshal(o.remote)
	if err != nil {
		return fmt.Errorf("encode analyze request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, analyzeRemoteTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/analyze", bytes.NewReader(body)) //nolint:gosec // the aggregator URL is the user's own --aggregator
	if err != nil {
		return fmt.Errorf("analyze request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req) //nolint:gosec // the aggregator URL is the user's own --aggregator
	if err != nil {
		return withConnHint(fmt.Errorf("analyze through %s: %w", base, err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("analyze through %s: read answer: %w", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if resp.StatusCode == http.StatusUnauthorized {
			msg += " (give --token or --token-file; a local up's token is in its data dir, file " + tokenFileName + ")"
		}
		return fmt.Errorf("analyze through %s: %s: %s", base, resp.Status, msg)
	}
	var ar model.AnalyzeResponse
	if err := json.Unmarshal(data, &ar); err != nil {
		return fmt.Errorf("analyze through %s: decode answer: %w", base, err)
	}
	doc, err := findings.Decode(bytes.NewReader(ar.Findings))
	if err != nil {
		return fmt.Errorf("analyze through %s: %w", base, err)
	}
	for _, e := range ar.Errors {
		fmt.Fprintf(os.Stderr, "fleetprof analyze: warning: %s\n", e)
	}
	if o.json {
		return findings.Encode(stdout, doc.GeneratedAt, doc.Findings)
	}
	def := &defense.Report{From: ar.From, To: ar.To, Series: ar.Series}
	off := &offense.Report{From: ar.From, To: ar.To, Services: ar.Services}
	for _, f := range doc.Findings {
		if f.Kind == findings.KindOpportunity {
			off.Findings = append(off.Findings, f)
		} else {
			def.Findings = append(def.Findings, f)
		}
	}
	if !o.runs(kindRegression) {
		def = nil
	}
	if !o.runs(kindOpportunity) {
		off = nil
	}
	return printReports(stdout, def, off, o)
}

// withConnHint adds what to start when nothing listens at the address.
func withConnHint(err error) error {
	if strings.Contains(err.Error(), connHint) {
		return err
	}
	if errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused") {
		return fmt.Errorf("%w (%s)", err, connHint)
	}
	return err
}

const connHint = "is fleetprof up running? start it with make up or fleetprof up; for a fleet, fleetprof aggregator"
