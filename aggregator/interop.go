package aggregator

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/otlp"
	"github.com/fleetprof/fleetprof/aggregator/pyroscope"
	"github.com/fleetprof/fleetprof/internal/debugpprof"
	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// registerInteropGRPC registers the other ecosystems' gRPC services (OTLP
// profiles) on the ingest port, behind its token interceptors.
func (s *Server) registerInteropGRPC() { s.otlpReceiver().RegisterGRPC(s.grpc) }

// otlpReceiver is the OTLP profiles receiver writing through ingestSamples.
func (s *Server) otlpReceiver() *otlp.Receiver {
	return otlp.NewReceiver(otlp.Config{MaxBodyBytes: int64(s.cfg.MaxMessageBytes), Now: s.now}, s.ingestSamples)
}

// mountInterop registers the other ecosystems' HTTP APIs (OTLP profiles,
// Pyroscope push and query) and, when Config.Pprof is set, /debug/pprof.
func (s *Server) mountInterop(mux *http.ServeMux) {
	mux.Handle(otlp.HTTPPath, s.requireToken(s.otlpReceiver()))
	pusher := pyroscope.NewPusher(pyroscope.PushConfig{MaxBodyBytes: int64(s.cfg.MaxMessageBytes), Now: s.now}, s.ingestSamples)
	mux.Handle("/ingest", s.requireToken(pusher))
	path, h := pusher.PushHandler()
	mux.Handle(path, s.requireToken(h))
	path, h = pyroscope.NewQuerier(s.store, s.now).Handler()
	mux.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.flushForRead(r.Context())
		h.ServeHTTP(w, r)
	}))
	debugpprof.Register(mux, s.cfg.Pprof, "profiling endpoints are off: start the aggregator with --pprof")
}

// ingestSamples stores rows from another format through the path Arrow batches
// take (encode, decode with the configured limits, group commit, metrics), so
// validation and idempotence are the same.
func (s *Server) ingestSamples(ctx context.Context, batchID string, samples []samplebatch.Sample) (int, bool, error) {
	start := time.Now()
	data, err := samplebatch.Encode(samples)
	if err != nil {
		return 0, false, fmt.Errorf("encode samples: %w", err)
	}
	d := decoded{req: &ingestv1.WriteRequest{BatchId: batchID, ArrowIpc: data}, start: start}
	d.batch, d.err = s.decode(data)
	resp := s.ingest.write(ctx, d)
	switch resp.Status {
	case ingestv1.WriteResponse_STATUS_ACKED:
		return int(resp.Rows), false, nil
	case ingestv1.WriteResponse_STATUS_DUPLICATE:
		return 0, true, nil
	case ingestv1.WriteResponse_STATUS_REJECTED:
		if d.err != nil {
			return 0, false, d.err
		}
		return 0, false, fmt.Errorf("%w: %s", samplebatch.ErrInvalid, resp.Error)
	default:
		return 0, false, fmt.Errorf("%s", resp.Error)
	}
}

// requireToken guards an HTTP ingest endpoint with the ingest token: "Bearer
// <token>" as the gRPC ingest takes it, or HTTP basic auth with the token as the
// password (what Alloy and the SDKs' basic auth options send).
func (s *Server) requireToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.token != "" && !s.httpTokenOK(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fleetprof ingest"`)
			http.Error(w, "missing or invalid credentials: send \"Authorization: Bearer <token>\" or basic auth with the token as password", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) httpTokenOK(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		_, tok, ok = r.BasicAuth()
	}
	return ok && subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) == 1
}
