// Package aggregator is the central fleetprof server: agents stream Arrow sample
// batches to its gRPC IngestService (proto/fleetprof/ingest/v1), it stores them
// through a Store (aggregator/storage), and it serves the JSON query API under
// /api/v1/, Prometheus metrics, health checks and, optionally, the web UI.
//
// Every ingest path decodes through one function (Server.decode) with a bounded
// cache of stacks verified in earlier batches (Config.StackCache): an agent sends
// the same stacks in every batch, and a cached one is neither rebuilt nor re-hashed
// (the rule for a cached id sent with other frames is in proto/samplebatch/SCHEMA.md).
//
// Server.Run composes the gRPC server, the HTTP server and any extra actors (such as
// the analyzer loop) with github.com/oklog/run: when one stops, all stop. Shutdown is
// graceful: the servers stop accepting, batches being stored are finished and acked.
//
// HTTP API (all GET, JSON unless a format is asked for; errors are {"error": "..."}
// with 400 naming the bad parameter, 404 for unknown routes and 500 for storage
// failures):
//
//	/api/v1/services                 ?from&to
//	/api/v1/labels                   selection → label keys
//	/api/v1/label/{key}/values       selection → values of one label
//	/api/v1/top                      selection &limit=50
//	/api/v1/flame                    selection
//	/api/v1/profile                  selection &format=json|pprof|folded
//	/api/v1/diff                     two selections &movers=20
//	/api/v1/series                   selection &function=F&step=1m
//	/api/v1/versions                 ?service&from&to
//	/api/v1/findings                 ?kind&service&from&to&limit
//	/api/v1/opportunities            ?service&from&to&limit&offset (latest run per service, largest
//	                                 saving first; total counts them all, offset pages through)
//	POST /api/v1/analyze             body model.AnalyzeRequest → model.AnalyzeResponse: run the
//	                                 analyzer (WithAnalyzer) now; needs the token when one is set
//
// Other ecosystems (aggregator/pyroscope): POST /ingest and
// push.v1.PusherService/Push (Pyroscope SDKs, Alloy; ingest token as Bearer or
// basic-auth password) and querier.v1.QuerierService (Grafana's Pyroscope data
// source). With Config.Pprof (--pprof) /debug/pprof/ serves the Go runtime's
// profiles; otherwise it answers 404.
//
// OpenTelemetry profiles (aggregator/otlp): ProfilesService/Export
// (v1development) on the gRPC ingest port and POST /v1development/profiles
// (OTLP/HTTP, protobuf or JSON, gzip) on the HTTP port, both with the ingest
// token, so the OpenTelemetry eBPF profiler and the Collector's otlp and
// otlphttp exporters send here. CPU profiles (cpu/nanoseconds, samples/count)
// are stored through the Arrow path's validation and limits; other types are a
// partial success naming them. Attributes of the resource, scope, profile and
// sample become labels:
//
//	service.name → service          k8s.pod.name → pod
//	service.version → version       container.id → container
//	host.name → host                process.executable.name → comm
//	k8s.namespace.name → namespace  process.pid → pid
//	thread.name → thread (extra)    others are not stored
//
// OTLP has no batch id: a request's id is a hash of its protobuf encoding, so an
// exporter's retry is stored once.
//
// A selection is service=NAME, from=TIME, to=TIME and repeatable filter=key=value
// (filters on different keys are ANDed, on the same key ORed). TIME is RFC 3339,
// Unix seconds, "now" or "now-DURATION" (now-1h, now-30m); the default range is the
// last hour. A diff takes base_service/base_from/base_to/base_filter and
// cmp_service/cmp_from/cmp_to/cmp_filter; an unprefixed parameter applies to both
// sides (side filters are added to the shared ones).
//
// Frames with a source location (Python frames: proto/samplebatch's
// frame_locations) carry it: top rows and flame nodes have "file" and "line"
// (the function's first line), profile stacks (format=json) "locations", and
// format=pprof sets Function.filename, start_line and Line.line.
package aggregator
