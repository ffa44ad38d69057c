package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/queryclient"
	"github.com/fleetprof/fleetprof/analyzer/defense"
	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/offense"
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
	ctx, cancel := context.WithTimeout(ctx, analyzeRemoteTimeout)
	defer cancel()
	// The context bounds the call; the client's own timeout would cut a long run.
	c, err := queryclient.New(base, &http.Client{})
	if err != nil {
		return err
	}
	c.SetToken(tok)
	ar, err := c.Analyze(ctx, o.remote)
	var apiErr *queryclient.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("analyze through %s: %w (give --token or --token-file; a local up's token is in its data dir, file %s)", base, err, tokenFileName)
	case errors.As(err, &apiErr):
		return fmt.Errorf("analyze through %s: %w", base, err)
	case err != nil:
		return withConnHint(fmt.Errorf("analyze through %s: %w", base, err))
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
