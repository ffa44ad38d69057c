// Package otlp receives OpenTelemetry profiles (OTLP, the development signal
// opentelemetry.proto.collector.profiles.v1development, as go.opentelemetry.io/
// collector/pdata/pprofile reads it), so the OpenTelemetry eBPF profiler and the
// Collector's OTLP exporters send to fleetprof unchanged.
//
// Endpoints (Receiver): ProfilesService/Export over gRPC, registered on the
// aggregator's ingest port, and OTLP/HTTP POST /v1development/profiles on its
// HTTP port (protobuf or JSON, optionally gzip-compressed; errors carry a
// google.rpc.Status). Both take the ingest token like the Arrow ingest. The
// OTLP-Profiles-Development-Version header or metadata is checked as the
// Collector's receiver does.
//
// Conversion (Convert): each profile's dictionary, stacks and sample values
// become a pprof profile handed to pprofconv.Import, so frame naming, inlined
// frames, Go generic names, stack truncation and value scaling are the pprof
// import's, and the rows go to the aggregator's one ingest path (an
// IngestFunc): the Arrow path's validation, limits and idempotence. Values:
// samples/count (with a cpu or no period type) are stored as they are;
// cpu/nanoseconds are divided by the period (DefaultPeriodNS when the profile
// states none). Samples with timestamps go to the time bucket of each
// timestamp (a timestamp without a value is one sample), others to the
// profile's time. Profiles of other sample types (heap, off-CPU, allocations)
// are not stored: the response is a partial success counting them and naming
// their types, and a request holding nothing else is rejected (gRPC
// InvalidArgument, HTTP 400) with the types named. A request that cannot be
// read (an index out of any dictionary table, values that do not match the
// timestamps, a process.pid that is not a pid) is rejected whole, naming what
// was wrong; a storage failure is Unavailable / 503, which exporters retry.
//
// Labels: attributes of the resource, then the scope, the profile and the
// sample (a later one wins) map onto fleetprof's labels:
//
//	OpenTelemetry attribute   fleetprof label
//	service.name              service
//	service.version           version
//	host.name                 host
//	k8s.namespace.name        namespace
//	k8s.pod.name              pod
//	container.id              container
//	process.executable.name   comm
//	process.pid               pid
//	thread.name               thread (an extra label)
//
// Other attributes are not stored. A sample without service.name takes its
// process.executable.name as the service (as the agent's comm rule does), and
// FallbackService without either.
//
// Retries: OTLP has no batch id. The batch id is "otlp-" and 128 bits of the
// SHA-256 of the request's protobuf encoding (BatchID), so an exporter's retry
// of a request, over either transport, is stored once; distinct exports
// differ in their times and sample timestamps and so in their ids.
package otlp
