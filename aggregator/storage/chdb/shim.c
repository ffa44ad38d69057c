// Run-time loader and thin call-through wrappers for libchdb.so.
// See shim.h for why nothing here links against chDB.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "shim.h"

#define FP_NSIG 65 // signals 1..64 on Linux

static struct {
	fp_chdb_connection *(*connect)(int, char **);
	void (*close_conn)(fp_chdb_connection *);
	fp_chdb_result *(*query_n)(fp_chdb_connection, const char *, size_t, const char *, size_t);
	fp_chdb_result *(*query_arrow_n)(fp_chdb_connection, const char *, size_t, void *, const void *);
	int (*arrow_scan)(fp_chdb_connection, const char *, void *);
	int (*arrow_unregister)(fp_chdb_connection, const char *);
	const char *(*result_error)(fp_chdb_result *);
	char *(*result_buffer)(fp_chdb_result *);
	size_t (*result_length)(fp_chdb_result *);
	uint64_t (*result_rows_written)(fp_chdb_result *);
	void (*destroy_result)(fp_chdb_result *);
	void (*set_signal_handlers_enabled)(int); // optional: absent in older builds
} api;

// Saved process state that chDB is known to overwrite. Go's runtime relies on
// its own SIGSEGV/SIGBUS (nil dereference panics), SIGURG (preemption) and
// SIGPROF handlers, all installed with SA_ONSTACK.
struct saved_signals {
	struct sigaction act[FP_NSIG];
	int ok[FP_NSIG];
	sigset_t mask;
	stack_t altstack;
	int altstack_ok;
};

static void save_signals(struct saved_signals *s) {
	for (int i = 1; i < FP_NSIG; i++)
		s->ok[i] = sigaction(i, NULL, &s->act[i]) == 0;
	pthread_sigmask(SIG_SETMASK, NULL, &s->mask);
	s->altstack_ok = sigaltstack(NULL, &s->altstack) == 0;
}

static void restore_signals(const struct saved_signals *s) {
	for (int i = 1; i < FP_NSIG; i++)
		if (s->ok[i])
			sigaction(i, &s->act[i], NULL); // SIGKILL/SIGSTOP fail harmlessly
	pthread_sigmask(SIG_SETMASK, &s->mask, NULL);
	if (s->altstack_ok) {
		stack_t cur;
		// Only touch the alternate stack if chDB replaced it; re-setting the
		// active one would fail and is not needed.
		if (sigaltstack(NULL, &cur) == 0 && (cur.ss_sp != s->altstack.ss_sp || cur.ss_flags != s->altstack.ss_flags)) {
			stack_t want = s->altstack;
			want.ss_flags &= SS_DISABLE;
			sigaltstack(&want, NULL);
		}
	}
}

#define RESOLVE(field, name)                                                   \
	do {                                                                   \
		*(void **)(&api.field) = dlsym(h, name);                           \
		if (api.field == NULL) {                                           \
			snprintf(err, errlen, "symbol %s missing in %s", name, path);  \
			return -1;                                                 \
		}                                                                  \
	} while (0)

int fp_chdb_load(const char *path, char *err, size_t errlen) {
	struct saved_signals saved;
	save_signals(&saved);
	// Static initializers of the library run here and may install handlers.
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	restore_signals(&saved);
	if (h == NULL) {
		const char *e = dlerror();
		snprintf(err, errlen, "%s", e ? e : "dlopen failed");
		return -1;
	}
	RESOLVE(connect, "chdb_connect");
	RESOLVE(close_conn, "chdb_close_conn");
	RESOLVE(query_n, "chdb_query_n");
	RESOLVE(query_arrow_n, "chdb_query_arrow_n");
	RESOLVE(arrow_scan, "chdb_arrow_scan");
	RESOLVE(arrow_unregister, "chdb_arrow_unregister_table");
	RESOLVE(result_error, "chdb_result_error");
	RESOLVE(result_buffer, "chdb_result_buffer");
	RESOLVE(result_length, "chdb_result_length");
	RESOLVE(result_rows_written, "chdb_result_rows_written");
	RESOLVE(destroy_result, "chdb_destroy_query_result");
	*(void **)(&api.set_signal_handlers_enabled) = dlsym(h, "chdb_set_signal_handlers_enabled");
	// The handle is never closed: the engine cannot be unloaded safely.
	return 0;
}

fp_chdb_connection *fp_chdb_connect(int argc, char **argv) {
	struct saved_signals saved;
	save_signals(&saved);
	// Ask chDB not to install handlers where supported, and restore anyway:
	// older builds ignore the flag.
	if (api.set_signal_handlers_enabled != NULL)
		api.set_signal_handlers_enabled(0);
	fp_chdb_connection *c = api.connect(argc, argv);
	restore_signals(&saved);
	return c;
}

void fp_chdb_close(fp_chdb_connection *conn) {
	struct saved_signals saved;
	save_signals(&saved);
	api.close_conn(conn);
	restore_signals(&saved);
}

fp_chdb_result *fp_chdb_query_n(fp_chdb_connection *conn, const char *q, size_t qlen, const char *fmt, size_t fmtlen) {
	return api.query_n(*conn, q, qlen, fmt, fmtlen);
}

fp_chdb_result *fp_chdb_query_arrow_n(fp_chdb_connection *conn, const char *q, size_t qlen, struct ArrowArrayStream *out) {
	return api.query_arrow_n(*conn, q, qlen, out, NULL); // NULL: default type mapping
}

int fp_chdb_arrow_scan(fp_chdb_connection *conn, const char *name, struct ArrowArrayStream *stream) {
	return api.arrow_scan(*conn, name, stream);
}

int fp_chdb_arrow_unregister(fp_chdb_connection *conn, const char *name) {
	return api.arrow_unregister(*conn, name);
}

const char *fp_chdb_result_error(fp_chdb_result *r) { return api.result_error(r); }
const char *fp_chdb_result_buffer(fp_chdb_result *r) { return api.result_buffer(r); }
size_t fp_chdb_result_length(fp_chdb_result *r) { return api.result_length(r); }
uint64_t fp_chdb_result_rows_written(fp_chdb_result *r) { return api.result_rows_written(r); }
void fp_chdb_destroy_result(fp_chdb_result *r) { api.destroy_result(r); }

void fp_arrow_stream_release(struct ArrowArrayStream *s) {
	if (s != NULL && s->release != NULL)
		s->release(s);
}

void fp_signal_handlers(uintptr_t *out) {
	for (int i = 1; i < FP_NSIG; i++) {
		struct sigaction sa;
		out[i - 1] = 0;
		if (sigaction(i, NULL, &sa) == 0)
			out[i - 1] = (sa.sa_flags & SA_SIGINFO) ? (uintptr_t)sa.sa_sigaction : (uintptr_t)sa.sa_handler;
	}
}
