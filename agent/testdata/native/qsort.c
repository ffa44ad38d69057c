// Fixture of the native unwind tests: the hot path is libc's qsort calling
// back into cmp, so walks must cross Debian's libc (no frame pointers) to
// reach main. Runs about argv[1] milliseconds.
#include <stdlib.h>
#include <unistd.h>
#include <time.h>

#define N 4096

__attribute__((noinline)) int cmp(const void *x, const void *y) {
	unsigned a = *(const unsigned *)x, b = *(const unsigned *)y;
	return (a > b) - (a < b);
}

static double now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static unsigned v[N];

int main(int argc, char **argv) {
	// FIXTURE_WAIT: start burning only after a byte on stdin (the test
	// first waits until the agent has this process's unwind tables).
	char go;
	if (getenv("FIXTURE_WAIT") && read(0, &go, 1) != 1)
		return 1;
	double end = now_ms() + (argc > 1 ? atof(argv[1]) : 1000);
	unsigned seed = 1;
	while (now_ms() < end) {
		for (int i = 0; i < N; i++)
			v[i] = seed = seed * 1103515245 + 12345;
		qsort(v, N, sizeof v[0], cmp);
	}
	return 0;
}
