// Fixture of the unwind and agent end-to-end tests: main -> a -> b -> c, c
// burning CPU for argv[1] milliseconds (default 1000). Compiled by the tests
// with the compiler and flags under test (no frame pointers by default at
// -O2; the frame-pointer tests use -O1 -fno-omit-frame-pointer, where
// noinline keeps the chain).
#include <stdlib.h>
#include <unistd.h>
#include <time.h>

static double now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

volatile unsigned long sink;

__attribute__((noinline)) void c(double ms) {
	double end = now_ms() + ms;
	while (now_ms() < end) {
		for (int i = 0; i < 10000; i++) {
			sink += i * 7;
		}
	}
}

__attribute__((noinline)) void b(double ms) { c(ms); sink++; }

__attribute__((noinline)) void a(double ms) { b(ms); sink++; }

int main(int argc, char **argv) {
	// FIXTURE_WAIT: start burning only after a byte on stdin (the test
	// first waits until the agent has this process's unwind tables).
	char go;
	if (getenv("FIXTURE_WAIT") && read(0, &go, 1) != 1)
		return 1;
	a(argc > 1 ? atof(argv[1]) : 1000);
	return 0;
}
