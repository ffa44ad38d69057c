// Fixture of the native unwind tests: main -> a -> b -> c where c is a true
// leaf (no calls), so -momit-leaf-frame-pointer leaves it without a frame
// even in a frame-pointer build. Runs about argv[1] milliseconds.
#include <stdlib.h>
#include <unistd.h>
#include <time.h>

volatile unsigned long sink;

__attribute__((noinline)) void c(long n) {
	for (long i = 0; i < n; i++)
		sink += i * 7;
}

__attribute__((noinline)) void b(long n) { c(n); sink++; }

__attribute__((noinline)) void a(long n) { b(n); sink++; }

static double now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
	// FIXTURE_WAIT: start burning only after a byte on stdin (the test
	// first waits until the agent has this process's unwind tables).
	char go;
	if (getenv("FIXTURE_WAIT") && read(0, &go, 1) != 1)
		return 1;
	double end = now_ms() + (argc > 1 ? atof(argv[1]) : 1000);
	while (now_ms() < end)
		a(1000000);
	return 0;
}
