package aggregator

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/loop"
	"github.com/fleetprof/fleetprof/model"
)

// maxAnalyzeBody bounds the POST /api/v1/analyze request body (a few flags).
const maxAnalyzeBody = 64 << 10

// WithAnalyzer runs l with the servers (its periodic analyses), exports its
// metrics at /metrics and serves POST /api/v1/analyze, which runs it at once.
func WithAnalyzer(l *loop.Loop) Option {
	return func(s *Server) {
		s.analyzer = l
		ctx, cancel := context.WithCancel(context.Background())
		s.actors = append(s.actors, actor{
			execute:   func() error { return l.Run(ctx) },
			interrupt: func(err error) { cancel(); l.Interrupt(err) },
		})
	}
}

// analyze serves POST /api/v1/analyze: the body is a model.AnalyzeRequest (may be
// empty), the answer a model.AnalyzeResponse. When the server has a token it is
// required ("authorization: Bearer <token>"), as on ingest: a run reads the whole
// window and writes findings.
func (s *Server) analyze(w http.ResponseWriter, r *http.Request) {
	hist := s.metrics.queryTime.WithLabelValues("analyze")
	start := s.now()
	defer func() { hist.Observe(s.now().Sub(start).Seconds()) }()
	if s.analyzer == nil {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "no analyzer in this server (fleetprof aggregator runs one unless --analyze=false)"})
		return
	}
	if s.token != "" {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": `missing or wrong credentials: send "Authorization: Bearer <token>" (the ingest token)`})
			return
		}
	}
	var req model.AnalyzeRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAnalyzeBody+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "read body: " + err.Error()})
		return
	}
	if len(body) > maxAnalyzeBody {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "request body too large"})
		return
	}
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "decode analyze request: " + err.Error()})
			return
		}
	}
	s.flushForRead(r.Context())
	run, err := s.analyzer.Now(r.Context(), req)
	if errors.Is(err, loop.ErrBadRequest) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if run == nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	resp, encErr := analyzeResponse(run)
	if encErr != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": encErr.Error()})
		return
	}
	if err != nil {
		// Both analyses failing is a failure; one failing is reported with the other's findings.
		if run.Regressions == nil && run.Opportunities == nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		resp.Errors = append(resp.Errors, err.Error())
	}
	writeJSON(w, http.StatusOK, resp)
}

func analyzeResponse(run *loop.Run) (*model.AnalyzeResponse, error) {
	from, to := run.Span()
	resp := &model.AnalyzeResponse{From: from, To: to, Series: run.Series(), Written: run.Written, TookSeconds: run.Took.Seconds()}
	if run.Opportunities != nil {
		resp.Services = run.Opportunities.Services
	}
	if run.Regressions != nil {
		for _, e := range run.Regressions.Errors {
			resp.Errors = append(resp.Errors, e.Error())
		}
	}
	var buf bytes.Buffer
	if err := findings.Encode(&buf, to, run.Findings()); err != nil {
		return nil, err
	}
	resp.Findings = buf.Bytes()
	return resp, nil
}
