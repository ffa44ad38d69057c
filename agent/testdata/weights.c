// Fixture for the agreement test (agent/AGREEMENT.md): main calls w40, w25,
// w15, w10, w6 and w4 in turn; each runs a loop whose trip count is
// proportional to the number in its name. Measured self shares deviate from
// those numbers (gcc lays the loops out differently, e.g. w25 runs slower per
// iteration than w40), which does not matter: the test compares two
// profilers on the same run. Runs for argv[1] milliseconds (default 5000).
// Built with gcc -O1 -fno-omit-frame-pointer.
#include <stdlib.h>
#include <time.h>

volatile unsigned long sink;

static double now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// Each unit is ~2.5 µs of work; one round of all six functions is ~250 µs,
// far shorter than the 10 ms sampling period, so both profilers see the
// mixture.
#define UNIT 1000
#define BURN(n) for (long i = 0; i < (long)(n) * UNIT; i++) sink += i

__attribute__((noinline)) void w40(void) { BURN(40); }
__attribute__((noinline)) void w25(void) { BURN(25); }
__attribute__((noinline)) void w15(void) { BURN(15); }
__attribute__((noinline)) void w10(void) { BURN(10); }
__attribute__((noinline)) void w6(void) { BURN(6); }
__attribute__((noinline)) void w4(void) { BURN(4); }

int main(int argc, char **argv) {
	double end = now_ms() + (argc > 1 ? atof(argv[1]) : 5000);
	while (now_ms() < end) {
		for (int r = 0; r < 16; r++) {
			w40(); w25(); w15(); w10(); w6(); w4();
		}
	}
	return 0;
}
