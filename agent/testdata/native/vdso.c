// Fixture of TestVDSOUnwind: main -> a -> b, b calling clock_gettime
// (CLOCK_MONOTONIC) and gettimeofday back to back for argv[1] milliseconds,
// so most samples land in the vDSO. glibc's gettimeofday is an IFUNC bound to
// the vDSO's (b calls it directly); clock_gettime goes through libc's
// wrapper.
#include <stdlib.h>
#include <unistd.h>
#include <time.h>
#include <sys/time.h>

volatile unsigned long sink;

static double ms_of(const struct timespec *ts) { return ts->tv_sec * 1e3 + ts->tv_nsec / 1e6; }

__attribute__((noinline)) void b(double ms) {
	struct timespec ts;
	struct timeval tv;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double end = ms_of(&ts) + ms;
	do {
		gettimeofday(&tv, NULL);
		sink += tv.tv_usec;
		clock_gettime(CLOCK_MONOTONIC, &ts);
	} while (ms_of(&ts) < end);
}

__attribute__((noinline)) void a(double ms) { b(ms); sink++; }

int main(int argc, char **argv) {
	// FIXTURE_WAIT: start only after a byte on stdin (the test first waits
	// until the agent has this process's unwind tables).
	char go;
	if (getenv("FIXTURE_WAIT") && read(0, &go, 1) != 1)
		return 1;
	a(argc > 1 ? atof(argv[1]) : 1000);
	return 0;
}
