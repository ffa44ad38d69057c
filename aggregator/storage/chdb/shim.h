// Minimal declarations for the parts of chDB's C API this package uses.
// chDB ships no header with libchdb.so; these mirror the exported symbols of
// chDB 26.5 (nm -D --defined-only libchdb.so | grep chdb) and the layout of
// its public chdb.h. Everything is reached through dlsym so the Go binary
// builds and starts without the library.
#ifndef FLEETPROF_CHDB_SHIM_H
#define FLEETPROF_CHDB_SHIM_H

#include <stddef.h>
#include <stdint.h>

// Arrow C stream interface (https://arrow.apache.org/docs/format/CStreamInterface.html).
// The guards match Arrow's abi.h so both can be included together.
#ifndef ARROW_C_DATA_INTERFACE
#define ARROW_C_DATA_INTERFACE
struct ArrowSchema {
	const char *format;
	const char *name;
	const char *metadata;
	int64_t flags;
	int64_t n_children;
	struct ArrowSchema **children;
	struct ArrowSchema *dictionary;
	void (*release)(struct ArrowSchema *);
	void *private_data;
};
struct ArrowArray {
	int64_t length;
	int64_t null_count;
	int64_t offset;
	int64_t n_buffers;
	int64_t n_children;
	const void **buffers;
	struct ArrowArray **children;
	struct ArrowArray *dictionary;
	void (*release)(struct ArrowArray *);
	void *private_data;
};
#endif
#ifndef ARROW_C_STREAM_INTERFACE
#define ARROW_C_STREAM_INTERFACE
struct ArrowArrayStream {
	int (*get_schema)(struct ArrowArrayStream *, struct ArrowSchema *out);
	int (*get_next)(struct ArrowArrayStream *, struct ArrowArray *out);
	const char *(*get_last_error)(struct ArrowArrayStream *);
	void (*release)(struct ArrowArrayStream *);
	void *private_data;
};
#endif

// Opaque chDB handles. chdb_connect returns a pointer to a connection
// handle; every other call takes the handle itself.
typedef struct fp_chdb_conn_ *fp_chdb_connection;
typedef struct fp_chdb_result_ fp_chdb_result;

// Loads libchdb.so and resolves the symbols. Returns 0 on success, otherwise
// writes a message into err. Process signal handlers are preserved.
int fp_chdb_load(const char *path, char *err, size_t errlen);

// Connects with argv (argv[0] is a program name), preserving every signal
// disposition, the calling thread's signal mask and its alternate signal
// stack across the call. Returns NULL on failure.
fp_chdb_connection *fp_chdb_connect(int argc, char **argv);
void fp_chdb_close(fp_chdb_connection *conn);

fp_chdb_result *fp_chdb_query_n(fp_chdb_connection *conn, const char *q, size_t qlen, const char *fmt, size_t fmtlen);
fp_chdb_result *fp_chdb_query_arrow_n(fp_chdb_connection *conn, const char *q, size_t qlen, struct ArrowArrayStream *out);
int fp_chdb_arrow_scan(fp_chdb_connection *conn, const char *name, struct ArrowArrayStream *stream);
int fp_chdb_arrow_unregister(fp_chdb_connection *conn, const char *name);

const char *fp_chdb_result_error(fp_chdb_result *r);
const char *fp_chdb_result_buffer(fp_chdb_result *r);
size_t fp_chdb_result_length(fp_chdb_result *r);
uint64_t fp_chdb_result_rows_written(fp_chdb_result *r);
void fp_chdb_destroy_result(fp_chdb_result *r);

// Releases an Arrow stream if the producer has not been released yet.
void fp_arrow_stream_release(struct ArrowArrayStream *s);

// Signal disposition snapshot used by tests to prove handlers survive.
// Writes the handler address (sa_handler/sa_sigaction) of signals 1..64
// into out[0..63]; unreadable signals get 0.
void fp_signal_handlers(uintptr_t *out);

#endif
