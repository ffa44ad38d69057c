package aggregator

import (
	"net/http"
	"time"

	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics live in a per-server registry so several servers (tests) can coexist.
type metrics struct {
	reg        *prometheus.Registry
	batches    *prometheus.CounterVec
	rows       prometheus.Counter
	shortened  prometheus.Counter
	ingestTime prometheus.Histogram
	queryTime  *prometheus.HistogramVec
	// writeErrors counts failed storage writes (each FAILED answer).
	writeErrors prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetprof_ingest_batches_total",
			Help: "Sample batches received, by outcome (acked, duplicate, rejected, failed).",
		}, []string{"status"}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fleetprof_ingest_rows_total",
			Help: "Sample rows stored.",
		}),
		shortened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fleetprof_ingest_frame_names_shortened_total",
			Help: "Frame names over the storage limit that were stored shortened (with a visible … marker) instead of rejecting their batch.",
		}),
		ingestTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fleetprof_ingest_duration_seconds",
			Help:    "Time to decode and store one batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		queryTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fleetprof_query_duration_seconds",
			Help:    "Query API latency by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"endpoint"}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fleetprof_storage_write_errors_total",
			Help: "Batches whose storage write failed (answered FAILED, resent by the agent).",
		}),
	}
	m.reg.MustRegister(m.batches, m.rows, m.shortened, m.ingestTime, m.queryTime, m.writeErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, st := range []ingestv1.WriteResponse_Status{
		ingestv1.WriteResponse_STATUS_ACKED, ingestv1.WriteResponse_STATUS_DUPLICATE,
		ingestv1.WriteResponse_STATUS_REJECTED, ingestv1.WriteResponse_STATUS_FAILED,
	} {
		m.batches.WithLabelValues(statusLabel(st)) // export zeros so rates work from the start
	}
	return m
}

func statusLabel(st ingestv1.WriteResponse_Status) string {
	switch st {
	case ingestv1.WriteResponse_STATUS_ACKED:
		return "acked"
	case ingestv1.WriteResponse_STATUS_DUPLICATE:
		return "duplicate"
	case ingestv1.WriteResponse_STATUS_REJECTED:
		return "rejected"
	case ingestv1.WriteResponse_STATUS_FAILED:
		return "failed"
	}
	return "unknown"
}

func (m *metrics) observeBatch(st ingestv1.WriteResponse_Status, rows int64, d time.Duration) {
	m.batches.WithLabelValues(statusLabel(st)).Inc()
	m.rows.Add(float64(rows))
	m.ingestTime.Observe(d.Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
