// Test fixture for symbolize: main -> a -> b -> c. c prints the runtime
// addresses of the four functions, then blocks until stdin closes
// (argument "block"), or waits for one line on stdin, sleeps 100 ms and
// exits (argument "short": the test can observe it before it exits).
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv);
void a(const char *mode);
void b(const char *mode);
void c(const char *mode);

__attribute__((noinline)) void c(const char *mode) {
	printf("main %p\na %p\nb %p\nc %p\nready\n", (void *)main, (void *)a, (void *)b, (void *)c);
	fflush(stdout);
	char buf[64];
	if (strcmp(mode, "short") == 0) {
		if (read(0, buf, sizeof buf) < 0) {
			return;
		}
		usleep(100 * 1000);
		return;
	}
	while (read(0, buf, sizeof buf) > 0) {
	}
}

__attribute__((noinline)) void b(const char *mode) { c(mode); }

__attribute__((noinline)) void a(const char *mode) { b(mode); }

int main(int argc, char **argv) {
	a(argc > 1 ? argv[1] : "block");
	return 0;
}
