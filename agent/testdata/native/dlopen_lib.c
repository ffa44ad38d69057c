// The library of dlopen.c: lib_spin -> lib_leaf, built -O2 without frame
// pointers.
#include <time.h>

volatile unsigned long lib_sink;

static double now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

__attribute__((noinline)) void lib_leaf(void) {
	for (int i = 0; i < 100000; i++)
		lib_sink += i * 3;
}

void lib_spin(double ms) {
	double end = now_ms() + ms;
	while (now_ms() < end) {
		lib_leaf();
		lib_sink++;
	}
}
