package agent

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fleetprof/fleetprof/agent/sampler"
	"github.com/fleetprof/fleetprof/internal/debugpprof"
)

// HTTPHandler serves the metrics address: the metrics, and /debug/pprof/
// when Config.Pprof is set.
func (a *Agent) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", a.MetricsHandler())
	debugpprof.Register(mux, a.cfg.Pprof, "profiling endpoints are off: start the agent with --pprof")
	return mux
}

// MetricsHandler serves the agent's metrics, plus its own CPU seconds and RSS
// (process_cpu_seconds_total, process_resident_memory_bytes) and Go runtime
// metrics, in the Prometheus text format.
func (a *Agent) MetricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
		statsCollector{a},
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("fleetprof_agent_"+name, help, labels, nil)
}

var (
	descSamples      = desc("samples_total", "Samples taken by the kernel program.")
	descDrained      = desc("samples_drained_total", "Samples drained from the kernel maps.")
	descDrops        = desc("drops_total", "Samples, stacks or events lost, by reason.", "reason")
	descTruncated    = desc("truncated_user_stacks_total", "Drained samples whose user-stack walk did not reach the root.")
	descWalkEnds     = desc("user_stacks_total", "Drained samples with a user stack, by how the walk ended.", "end")
	descFlushes      = desc("flushes_total", "Drains of the sampler.")
	descFlushErrors  = desc("flush_errors_total", "Drains or spool writes that failed.")
	descBatches      = desc("batches_built_total", "Batches built and spooled.")
	descRows         = desc("rows_total", "Rows in built batches.")
	descFrames       = desc("frames_total", "Frames symbolized.")
	descMisses       = desc("symbolization_misses_total", "Frames the symbolizer could not name.")
	descShortened    = desc("frame_names_shortened_total", "Frame names over the configured limit that were shipped shortened.")
	descSplits       = desc("batch_splits_total", "Batches split in two for exceeding the batch size limit.")
	descOversize     = desc("oversize_dropped_samples_total", "Samples dropped because their single row exceeded the batch size limit.")
	descEvents       = desc("process_events_total", "Process exec/fork/exit events handled.")
	descStartErrors  = desc("process_start_errors_total", "New processes whose maps could not be read (already gone).")
	descForksDropped = desc("forks_dropped_total", "Fork children not read because the queue was full.")
	descSent         = desc("batches_sent_total", "Batch send attempts.")
	descAcked        = desc("batches_acked_total", "Batches acknowledged as stored.")
	descDuplicate    = desc("batches_duplicate_total", "Batches the aggregator already had (delivered).")
	descRejected     = desc("batches_rejected_total", "Batches rejected by the aggregator and dropped.")
	descTooLarge     = desc("batches_too_large_total", "Batches dropped because the aggregator repeatedly refused to read them (ResourceExhausted).")
	descFailed       = desc("batches_failed_total", "Failed send attempts (retried).")
	descSpoolBytes   = desc("spool_bytes", "Bytes waiting in the spool.")
	descSpoolBatches = desc("spool_batches", "Batches waiting in the spool.")
	descSpoolDropped = desc("spool_dropped_total", "Batches dropped to keep the spool within its bound.")
	descCapMissing   = desc("capability_missing", "1 for each capability the agent runs without (degraded, e.g. CAP_SYS_PTRACE).", "capability")
	descUnwindFiles  = desc("unwind_table_files", "Files with an unwind table in the kernel.")
	descUnwindRows   = desc("unwind_table_rows", "Unwind rows in the kernel (16 bytes each).")
	descUnwindBytes  = desc("unwind_table_bytes", "Bytes of unwind rows in the kernel (bounded by the row budget).")
	descUnwindBuilds = desc("unwind_table_builds_total", "Unwind tables compiled from .eh_frame/.debug_frame.")
	descUnwindSecs   = desc("unwind_table_build_seconds_total", "Time spent compiling unwind tables.")
	descUnwindEvict  = desc("unwind_table_evictions_total", "Unwind tables evicted (least recently used) to stay within the row budget.")
	descUnwindErrors = desc("unwind_table_compile_errors_total", "Files whose call frame information could not be compiled or loaded.")
	descUnwindNoCFI  = desc("unwind_files_without_cfi_total", "Files without call frame information (walked by frame pointers).")
	descUnwindRefr   = desc("unwind_refreshes_total", "Process mappings read and written for the walker.")
	descUnwindRefErr = desc("unwind_refresh_errors_total", "Process mappings that could not be read or written (process gone).")
	descUnwindPend   = desc("unwind_files_pending", "Sampled files waiting for their unwind table (walked by frame pointers until built).")
	descUnwindQueued = desc("unwind_tables_queued_total", "Unwind tables asked for because a sample landed in a file without one.")
	descUnwindWant   = desc("unwind_tables_queued_on_want_total", "Of those, asked for by the walker as soon as it met the file (before the next drain).")
	descUnwindHits   = desc("unwind_cache_hits_total", "Unwind tables read from the disk cache instead of compiled.")
	descUnwindCErrs  = desc("unwind_cache_errors_total", "Unwind cache files found corrupt (removed and rebuilt) or not writable.")
	descUnwindCEvict = desc("unwind_cache_evictions_total", "Unwind cache files removed (least recently used) to stay within the cache bound.")
	descUnwindCBytes = desc("unwind_cache_bytes", "Bytes in the unwind table disk cache (bounded by its configured size).")
	descPyProcs      = desc("python_processes_total", "CPython processes detected and handed to the kernel walker.")
	descPyUnsupp     = desc("python_unsupported_processes_total", "CPython processes of a version without a known layout (not walked; logged once each).")
	descPySetErrs    = desc("python_set_errors_total", "CPython processes the sampler could not take (its maps full).")
	descPyFrames     = desc("python_frames_total", "Python frames named into stacks.")
	descPyUnnamed    = desc("python_unnamed_frames_total", "Python frames whose code object could not be read (shown as [python]).")
	descPyTruncated  = desc("python_truncated_walks_total", "Samples whose Python walk stopped at the kernel's depth limit.")
	descPyBadReads   = desc("python_bad_read_walks_total", "Samples whose Python walk ended on a frame it could not read.")
	counterDescs     = []*prometheus.Desc{descSamples, descDrained, descTruncated, descFlushes, descFlushErrors, descBatches, descRows, descFrames, descMisses, descShortened, descSplits, descOversize, descEvents, descStartErrors, descForksDropped, descSent, descAcked, descDuplicate, descRejected, descTooLarge, descFailed, descSpoolDropped,
		descUnwindBuilds, descUnwindEvict, descUnwindErrors, descUnwindNoCFI, descUnwindRefr, descUnwindRefErr,
		descUnwindQueued, descUnwindWant, descUnwindHits, descUnwindCErrs, descUnwindCEvict,
		descPyProcs, descPyUnsupp, descPySetErrs, descPyFrames, descPyUnnamed, descPyTruncated, descPyBadReads}
	gaugeDescs = []*prometheus.Desc{descSpoolBytes, descSpoolBatches, descUnwindFiles, descUnwindRows, descUnwindBytes, descUnwindPend, descUnwindCBytes}
)

// statsCollector exports Stats at scrape time, so counters never disagree
// with what Stats reports.
type statsCollector struct{ a *Agent }

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range append(append([]*prometheus.Desc{descDrops, descCapMissing, descUnwindSecs, descWalkEnds}, counterDescs...), gaugeDescs...) {
		ch <- d
	}
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.a.Stats()
	counters := []uint64{
		st.Sampler.Samples, st.Sampler.Drained, st.Sampler.TruncatedUserStacks, st.Flushes, st.FlushErrors, st.Batches, st.Rows,
		st.Frames, st.UnknownFrames, st.ShortenedNames, st.BatchSplits, st.OversizeDropped, st.EventsHandled, st.StartErrors, st.ForksDropped, st.Ship.Sent, st.Ship.Acked, st.Ship.Duplicate,
		st.Ship.Rejected, st.Ship.TooLarge, st.Ship.Failed, st.Ship.SpoolDropped,
		st.Unwind.Builds, st.Unwind.Evictions, st.Unwind.CompileErrors, st.Unwind.NoCFI, st.Unwind.Refreshes, st.Unwind.RefreshErrors,
		st.Unwind.Queued, st.Unwind.QueuedOnWant, st.Unwind.CacheHits, st.Unwind.CacheErrors, st.Unwind.CacheEvicted,
		st.Python.Processes, st.Python.Unsupported, st.Python.SetErrors, st.Python.Frames, st.Python.Unnamed, st.Python.Truncated, st.Python.BadReads,
	}
	for i, d := range counterDescs {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(counters[i]))
	}
	ch <- prometheus.MustNewConstMetric(descSpoolBytes, prometheus.GaugeValue, float64(st.Ship.SpoolBytes))
	ch <- prometheus.MustNewConstMetric(descSpoolBatches, prometheus.GaugeValue, float64(st.Ship.SpoolBatches))
	ch <- prometheus.MustNewConstMetric(descUnwindFiles, prometheus.GaugeValue, float64(st.Unwind.Files))
	ch <- prometheus.MustNewConstMetric(descUnwindRows, prometheus.GaugeValue, float64(st.Unwind.Rows))
	ch <- prometheus.MustNewConstMetric(descUnwindBytes, prometheus.GaugeValue, float64(st.Unwind.Bytes))
	ch <- prometheus.MustNewConstMetric(descUnwindPend, prometheus.GaugeValue, float64(st.Unwind.Pending))
	ch <- prometheus.MustNewConstMetric(descUnwindCBytes, prometheus.GaugeValue, float64(st.Unwind.CacheBytes))
	ch <- prometheus.MustNewConstMetric(descUnwindSecs, prometheus.CounterValue, st.Unwind.BuildTime.Seconds())
	for _, r := range c.a.degraded {
		ch <- prometheus.MustNewConstMetric(descCapMissing, prometheus.GaugeValue, 1, r.Cap.String())
	}
	for e := range sampler.WalkEnd(sampler.NumWalkEnds) {
		ch <- prometheus.MustNewConstMetric(descWalkEnds, prometheus.CounterValue, float64(st.Sampler.WalkEnds[e]), e.String())
	}
	for r := range sampler.NumDropReasons {
		ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(st.Sampler.Drops[r]), r.String())
	}
}
