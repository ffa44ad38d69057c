package loop

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetprof/fleetprof/analyzer/findings"
)

// metrics are per-run figures: how long a run took, how much it read, how many
// findings it wrote, and when the last one succeeded (alert on staleness).
type metrics struct {
	runs        *prometheus.CounterVec
	duration    prometheus.Histogram
	series      prometheus.Counter
	written     *prometheus.CounterVec
	lastSuccess prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetprof_analyzer_runs_total",
			Help: "Analyzer runs, by outcome (ok, failed).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "fleetprof_analyzer_run_duration_seconds",
			Help:    "Duration of one analyzer run (regressions and opportunities).",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		series: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fleetprof_analyzer_series_read_total",
			Help: "Function series the regression analysis read.",
		}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetprof_analyzer_findings_written_total",
			Help: "Findings stored, by kind (regression, gradual, opportunity).",
		}, []string{"kind"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fleetprof_analyzer_last_success_timestamp_seconds",
			Help: "Unix time the last fully successful analyzer run ended.",
		}),
	}
	for _, o := range []string{"ok", "failed"} {
		m.runs.WithLabelValues(o)
	}
	for _, k := range []findings.Kind{findings.KindRegression, findings.KindGradual, findings.KindOpportunity} {
		m.written.WithLabelValues(string(k))
	}
	return m
}

func (m *metrics) observe(run *Run, err error) {
	if run == nil {
		m.runs.WithLabelValues("failed").Inc()
		return
	}
	m.duration.Observe(run.Took.Seconds())
	m.series.Add(float64(run.Series()))
	if run.Written > 0 {
		for _, f := range run.Findings() {
			m.written.WithLabelValues(string(f.Kind)).Inc()
		}
	}
	if err != nil {
		m.runs.WithLabelValues("failed").Inc()
		return
	}
	m.runs.WithLabelValues("ok").Inc()
	m.lastSuccess.Set(float64(run.Start.Add(run.Took).Unix()))
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.runs, m.duration, m.series, m.written, m.lastSuccess}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}
