package aggregator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/pprofconv"
	"github.com/fleetprof/fleetprof/model"
)

// Query limits.
const (
	DefaultTopLimit   = 50
	MaxTopLimit       = 100_000
	DefaultMovers     = 20
	MaxMovers         = 10_000
	DefaultSeriesStep = time.Minute
	MaxSeriesPoints   = 10_000
	DefaultFindings   = 100
	MaxFindings       = 10_000
)

// rawBody is a non-JSON API answer (profile exports).
type rawBody struct {
	contentType string
	filename    string
	data        []byte
}

type apiFunc func(r *http.Request, q url.Values, now time.Time) (any, error)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.store.Ping(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "storage not ready: " + err.Error()})
			return
		}
		if bad, n := s.writes.unready(); bad {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "storage writes failing", "consecutive_failures": n})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", s.metrics.handler())
	if s.readAuth.enabled() {
		mux.HandleFunc("/login", s.login)
	}
	for _, e := range []struct {
		name string
		h    apiFunc
	}{
		{"services", s.services},
		{"labels", s.labels},
		{"label/{key}/values", s.labelValues},
		{"top", s.top},
		{"flame", s.flame},
		{"profile", s.profile},
		{"diff", s.diff},
		{"series", s.series},
		{"versions", s.versions},
		{"findings", s.findings},
		{"opportunities", s.opportunities},
		{"storage", s.storageStatus},
	} {
		mux.Handle("GET /api/v1/"+e.name, s.api(e.name, e.h))
	}
	mux.HandleFunc("POST /api/v1/analyze", s.analyze)
	s.mountInterop(mux)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no API route %s %s", r.Method, r.URL.Path)})
	})
	if s.ui != nil {
		mux.Handle("/", s.ui)
	} else {
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				http.NotFound(w, r)
				return
			}
			fmt.Fprintln(w, "fleetprof aggregator: JSON API under /api/v1/, metrics at /metrics (no UI configured)")
		})
	}
	return s.requireRead(mux)
}

// api wraps an endpoint: check parameter sizes, take a query slot, run under the
// query deadline, time it, encode its answer and map errors to status codes. Storage
// errors are logged, never echoed: their text carries engine messages and SQL.
func (s *Server) api(name string, h apiFunc) http.Handler {
	hist := s.metrics.queryTime.WithLabelValues(name)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		defer func() { hist.Observe(time.Since(start).Seconds()) }()
		q := r.URL.Query()
		if err := checkParamSizes(q); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.QueryTimeout)
		defer cancel()
		select {
		case s.querySlots <- struct{}{}:
			defer func() { <-s.querySlots }()
		case <-ctx.Done():
		}
		if ctx.Err() != nil { // the slot may have come free just as the deadline passed
			s.queryFailed(w, name, ctx.Err())
			return
		}
		s.flushForRead(ctx)
		res, err := h(r.WithContext(ctx), q, s.now())
		if err != nil {
			var pe *paramError
			if errors.As(err, &pe) {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			s.queryFailed(w, name, err)
			return
		}
		if raw, ok := res.(rawBody); ok {
			w.Header().Set("Content-Type", raw.contentType)
			if raw.filename != "" {
				w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", raw.filename))
			}
			_, _ = w.Write(raw.data) // the client may be gone; nothing to do about it
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
}

// queryFailed logs a failed query and answers with a generic message: 504 past the
// deadline, 503 when the client went away, 500 otherwise.
func (s *Server) queryFailed(w http.ResponseWriter, endpoint string, err error) {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("query deadline exceeded", "endpoint", endpoint, "timeout", s.cfg.QueryTimeout)
		writeJSON(w, http.StatusGatewayTimeout, map[string]string{"error": fmt.Sprintf("query exceeded its deadline of %v", s.cfg.QueryTimeout)})
	case errors.Is(err, context.Canceled):
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "query canceled"})
	default:
		s.log.Error("query failed", "endpoint", endpoint, "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "query failed in storage (details in the aggregator log)"})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client may be gone; nothing useful to do with the error
}

func (s *Server) services(r *http.Request, q url.Values, now time.Time) (any, error) {
	from, to, err := timeRange(q, now)
	if err != nil {
		return nil, err
	}
	svcs, err := s.store.Services(r.Context(), from, to)
	if svcs == nil {
		svcs = []string{}
	}
	return map[string]any{"services": svcs}, err
}

func (s *Server) labels(r *http.Request, q url.Values, now time.Time) (any, error) {
	sel, err := parseSelection(q, "", now)
	if err != nil {
		return nil, err
	}
	keys, err := s.store.LabelKeys(r.Context(), sel)
	if keys == nil {
		keys = []string{}
	}
	return map[string]any{"keys": keys}, err
}

func (s *Server) labelValues(r *http.Request, q url.Values, now time.Time) (any, error) {
	key := r.PathValue("key")
	if _, err := ParseFilter(key + "="); err != nil {
		return nil, badParam("key", "%v", err)
	}
	sel, err := parseSelection(q, "", now)
	if err != nil {
		return nil, err
	}
	vals, err := s.store.LabelValues(r.Context(), sel, key)
	if vals == nil {
		vals = []string{}
	}
	return map[string]any{"key": key, "values": vals}, err
}

func (s *Server) top(r *http.Request, q url.Values, now time.Time) (any, error) {
	sel, err := parseSelection(q, "", now)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(q, "limit", DefaultTopLimit, MaxTopLimit)
	if err != nil {
		return nil, err
	}
	return s.store.Top(r.Context(), sel, limit)
}

func (s *Server) flame(r *http.Request, q url.Values, now time.Time) (any, error) {
	sel, err := parseSelection(q, "", now)
	if err != nil {
		return nil, err
	}
	return s.store.Flame(r.Context(), sel)
}

func (s *Server) profile(r *http.Request, q url.Values, now time.Time) (any, error) {
	sel, err := parseSelection(q, "", now)
	if err != nil {
		return nil, err
	}
	format := q.Get("format")
	switch format {
	case "", "json", "pprof", "folded":
	default:
		return nil, badParam("format", "%q: want json, pprof or folded", format)
	}
	p, err := s.store.Profile(r.Context(), sel)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	switch format {
	case "pprof":
		if err := pprofconv.WritePprof(&buf, p, sel.From, sel.To.Sub(sel.From)); err != nil {
			return nil, err
		}
		return rawBody{"application/octet-stream", "profile.pb.gz", buf.Bytes()}, nil
	case "folded":
		if err := pprofconv.WriteFolded(&buf, p); err != nil {
			return nil, err
		}
		return rawBody{"text/plain; charset=utf-8", "", buf.Bytes()}, nil
	}
	return p, nil
}

func (s *Server) diff(r *http.Request, q url.Values, now time.Time) (any, error) {
	base, err := parseSelection(q, "base_", now)
	if err != nil {
		return nil, err
	}
	cmp, err := parseSelection(q, "cmp_", now)
	if err != nil {
		return nil, err
	}
	movers, err := intParam(q, "movers", DefaultMovers, MaxMovers)
	if err != nil {
		return nil, err
	}
	return s.store.Diff(r.Context(), base, cmp, movers)
}

func (s *Server) series(r *http.Request, q url.Values, now time.Time) (any, error) {
	sel, err := parseSelection(q, "", now)
	if err != nil {
		return nil, err
	}
	fn := q.Get("function")
	if fn == "" {
		return nil, badParam("function", "required")
	}
	step := DefaultSeriesStep
	if v := q.Get("step"); v != "" {
		if step, err = parseDuration(v); err != nil || step < time.Second {
			return nil, badParam("step", "%q: want a duration of at least 1s (30s, 5m, 1h)", v)
		}
	}
	if n := sel.To.Sub(sel.From) / step; n > MaxSeriesPoints {
		return nil, badParam("step", "%v gives %d points over the range, limit %d", step, n, MaxSeriesPoints)
	}
	pts, err := s.store.FunctionSeries(r.Context(), sel, fn, step)
	if pts == nil {
		pts = []model.SeriesPoint{}
	}
	return map[string]any{"function": fn, "step_seconds": step.Seconds(), "points": pts}, err
}

func (s *Server) versions(r *http.Request, q url.Values, now time.Time) (any, error) {
	svc := q.Get("service")
	if svc == "" {
		return nil, badParam("service", "required")
	}
	from, to, err := timeRange(q, now)
	if err != nil {
		return nil, err
	}
	vs, err := s.store.Versions(r.Context(), svc, from, to)
	if vs == nil {
		vs = []model.VersionSpan{}
	}
	return map[string]any{"service": svc, "versions": vs}, err
}

// findings are not limited to the last hour by default: they are few and long-lived.
func (s *Server) findings(r *http.Request, q url.Values, now time.Time) (any, error) {
	fq, err := findingsQuery(q, now)
	if err != nil {
		return nil, err
	}
	fq.Kind = q.Get("kind")
	recs, err := s.store.Findings(r.Context(), fq)
	if recs == nil {
		recs = []model.FindingRecord{}
	}
	return map[string]any{"findings": recs}, err
}

// findingsQuery parses the parameters findings and opportunities share: service, from,
// to (on the time a finding was stored) and limit.
func findingsQuery(q url.Values, now time.Time) (model.FindingsQuery, error) {
	fq := model.FindingsQuery{Service: q.Get("service")}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &fq.From}, {"to", &fq.To}} {
		if v := q.Get(p.name); v != "" {
			t, err := ParseTime(v, now)
			if err != nil {
				return fq, badParam(p.name, "%v", err)
			}
			*p.t = t
		}
	}
	limit, err := intParam(q, "limit", DefaultFindings, MaxFindings)
	if err != nil {
		return fq, err
	}
	fq.Limit = limit
	return fq, nil
}

// opportunities are the stored findings of kind opportunity from each service's latest
// analysis (older runs' records describe code that may be gone), largest estimated
// saving first, paged by limit and offset (0-based, into that ranking). The answer
// has the shape of findings plus total, the number of ranked opportunities (of at
// most MaxFindings stored records read), and the offset and limit of the page.
func (s *Server) opportunities(r *http.Request, q url.Values, now time.Time) (any, error) {
	fq, err := findingsQuery(q, now)
	if err != nil {
		return nil, err
	}
	limit := fq.Limit
	offset := 0
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 || offset > MaxFindings {
			return nil, badParam("offset", "%q: want an integer in [0, %d]", v, MaxFindings)
		}
	}
	// Ranking needs every candidate, not the newest limit of them.
	fq.Kind, fq.Limit = "opportunity", MaxFindings
	recs, err := s.store.Findings(r.Context(), fq)
	if err != nil {
		return nil, err
	}
	latest := map[string]time.Time{}
	for _, rec := range recs {
		if rec.Created.After(latest[rec.Service]) {
			latest[rec.Service] = rec.Created
		}
	}
	type ranked struct {
		rec          model.FindingRecord
		cores, share float64
	}
	var rs []ranked
	for _, rec := range recs {
		if !rec.Created.Equal(latest[rec.Service]) {
			continue
		}
		var body struct {
			Opportunity *struct {
				Share float64 `json:"estimated_saving_share"`
				Cores float64 `json:"estimated_saving_cores"`
			} `json:"opportunity"`
		}
		x := ranked{rec: rec}
		// A body that does not decode still lists (last): stored data is never hidden.
		if json.Unmarshal(rec.Body, &body) == nil && body.Opportunity != nil {
			x.cores, x.share = body.Opportunity.Cores, body.Opportunity.Share
		}
		rs = append(rs, x)
	}
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if a.cores != b.cores {
			return a.cores > b.cores
		}
		if a.share != b.share {
			return a.share > b.share
		}
		return a.rec.ID < b.rec.ID
	})
	out := []model.FindingRecord{}
	for i := offset; i < len(rs) && i < offset+limit; i++ {
		out = append(out, rs[i].rec)
	}
	return map[string]any{"findings": out, "total": len(rs), "offset": offset, "limit": limit}, nil
}
