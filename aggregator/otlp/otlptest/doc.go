// Package otlptest builds OTLP profiles for tests from real pprof profiles,
// through the OpenTelemetry pdata API (go.opentelemetry.io/collector/pdata/
// pprofile), as an OpenTelemetry SDK or the Collector would produce them.
package otlptest
