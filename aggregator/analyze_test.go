package aggregator

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/loop"
	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// analyzeStore is memStore with what the analyzer also needs.
type analyzeStore struct{ *memStore }

func (analyzeStore) Rollup(context.Context, model.RollupQuery) ([]model.RollupRow, error) {
	return nil, nil
}

func (s analyzeStore) PutFindings(_ context.Context, recs []model.FindingRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.findings = append(s.findings, recs...)
	return nil
}

func TestAnalyzeEndpoint(t *testing.T) {
	st := analyzeStore{newMemStore()}
	now := time.Now().UTC().Truncate(time.Minute)
	b := &samplebatch.Batch{Stacks: map[uint64][]string{}}
	for _, s := range dataset("api", now.Add(-10*time.Minute)) {
		id := samplebatch.StackID(s.Frames)
		b.Stacks[id] = s.Frames
		b.Rows = append(b.Rows, samplebatch.Row{TS: s.TS, Labels: s.Labels, StackID: id, Value: s.Value, PeriodNS: s.PeriodNS})
	}
	if _, _, err := st.Ingest(context.Background(), "b1", b); err != nil {
		t.Fatal(err)
	}
	cfg := loop.DefaultConfig()
	cfg.Interval = 0
	l, err := loop.New(st, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Token: "tok"}, st, nil, WithAnalyzer(l))
	if err != nil {
		t.Fatal(err)
	}
	bare, err := New(Config{}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		srv    *Server
		token  string
		body   string
		status int
	}{
		{"no token", srv, "", "", http.StatusUnauthorized},
		{"wrong token", srv, "nope", "", http.StatusUnauthorized},
		{"bad kind", srv, "tok", `{"kind":"both"}`, http.StatusBadRequest},
		{"unknown field", srv, "tok", `{"kinds":"all"}`, http.StatusBadRequest},
		{"bad window", srv, "tok", `{"window":"soon"}`, http.StatusBadRequest},
		{"no analyzer", bare, "", "", http.StatusNotImplemented},
		{"empty body", srv, "tok", "", http.StatusOK},
		{"opportunities dry run", srv, "tok", `{"kind":"opportunity","dry_run":true,"services":["api"]}`, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/api/v1/analyze", strings.NewReader(tt.body))
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			rec := httptest.NewRecorder()
			tt.srv.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body.String())
			}
			if tt.status != http.StatusOK {
				return
			}
			var resp model.AnalyzeResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			doc, err := findings.Decode(strings.NewReader(string(resp.Findings)))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Services != 1 || resp.To.IsZero() {
				t.Errorf("response %+v: want the one service ranked", resp)
			}
			t.Logf("%d findings, %d written", len(doc.Findings), resp.Written)
		})
	}
	// The loop's metrics are on /metrics.
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `fleetprof_analyzer_runs_total{outcome="ok"} 2`) {
		t.Errorf("metrics lack two ok analyzer runs:\n%s", grepLines(rec.Body.String(), "fleetprof_analyzer"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}
