// Fixture for the agent's end-to-end tests: main -> a -> b -> c, where c burns
// CPU for argv[1] milliseconds (default 1000), so samples land in c with the
// known call chain main;a;b;c. Built with gcc -O1 -fno-omit-frame-pointer;
// noinline keeps the chain at -O1.
#include <stdlib.h>
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
	a(argc > 1 ? atof(argv[1]) : 1000);
	return 0;
}
