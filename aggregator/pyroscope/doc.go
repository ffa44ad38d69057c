// Package pyroscope makes fleetprof speak Grafana Pyroscope's HTTP APIs, so the
// Pyroscope SDKs, Grafana Alloy's pyroscope.write and Grafana's Pyroscope data
// source work against the aggregator unchanged.
//
// Push (Ingest and Push): POST /ingest as the SDKs send it (pprof in a multipart
// "profile" part, or a raw body; format=folded and format=lines text) and
// push.v1.PusherService/Push over Connect. Profiles are converted to sample batch
// rows and handed to the aggregator's one ingest path (an IngestFunc), so limits,
// validation and idempotence are the Arrow path's. Only CPU profiles are stored;
// other profile types (alloc, inuse, goroutine, mutex, block) are rejected with
// the type named. The batch id is a hash of the request (name, from, until, format
// and body; for Push the series labels and the sample ID or body), so an SDK retry
// of the same upload is stored once.
//
// Labels: the application name "app{k=v,...}" becomes service=app (a legacy
// ".cpu" suffix is dropped) and each tag a label; tags named like fleetprof's
// fixed labels (version, host, namespace, pod, container, comm, pid) fill those,
// service_name fills service, and tags starting with "__" (the SDK's session id)
// are dropped. A value over the sample batch limits is rejected by that path.
//
// Query (Querier): querier.v1.QuerierService over Connect (binary and JSON),
// the API Grafana's Pyroscope data source and profilecli use:
//
//	ProfileTypes            the types stored in range: CPU samples as
//	                        process_cpu:cpu:nanoseconds:cpu:nanoseconds and
//	                        process_cpu:samples:count:cpu:nanoseconds; other
//	                        types (fleetprof import --sample-type) by the id
//	                        Pyroscope gives Go's profiles (alloc_space/bytes is
//	                        memory:alloc_space:bytes:space:bytes, goroutine/count
//	                        goroutines:goroutine:count:goroutine:count), else
//	                        T:T:U:T:U for T/U (block and mutex share their types)
//	LabelNames, LabelValues service_name is fleetprof's service; __name__ is the
//	                        type's name (process_cpu, memory, ...); label keys
//	                        that are not Prometheus names are left out
//	Series                  the distinct label sets of the services in range,
//	                        one per stored profile type
//	SelectMergeStacktraces  flame graph (FORMAT_FLAMEGRAPH) with max_nodes
//	SelectMergeProfile      pprof (google.v1.Profile)
//	SelectSeries            totals per step, grouped by up to MaxGroups label
//	                        values; a stack trace selector's leaf function gives
//	                        that function's inclusive series
//	Diff                    left/right flame graph diff
//
// Values: the cpu:nanoseconds type is samples × the selection's most common
// sampling period; samples:count is fleetprof's sample count; another type's
// values are stored ones, in its unit. Every Select names its type; label
// queries use a selector's __profile_type__ equality, else CPU. Label selectors
// ({service_name="api", version=~"v2.*"}) are parsed here and turned into
// fleetprof filters: = is an equality filter, and =~, != and !~ are resolved
// against the label's stored values (RE2, anchored, at most MaxMatcherValues
// values) into an OR of equalities; a selector no stored value satisfies selects
// nothing. Not supported: SelectMergeSpanProfile, SelectHeatmap, GetProfileStats,
// AnalyzeQuery, the tree format, and != / !~ matching rows that lack an extra
// label (Prometheus semantics would include them).
package pyroscope
