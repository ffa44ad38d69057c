// Fixture of the native unwind tests: main -> a -> lib_spin, where
// lib_spin lives in argv[2], a library dlopen'ed only after the process
// started (and after FIXTURE_WAIT's byte). Runs about argv[1] milliseconds.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

volatile unsigned long sink;

__attribute__((noinline)) void a(void (*spin)(double), double ms) { spin(ms); sink++; }

int main(int argc, char **argv) {
	char go;
	if (getenv("FIXTURE_WAIT") && read(0, &go, 1) != 1)
		return 1;
	if (argc < 3)
		return 2;
	void *h = dlopen(argv[2], RTLD_NOW);
	if (!h) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	void (*spin)(double) = (void (*)(double))dlsym(h, "lib_spin");
	if (!spin)
		return 1;
	a(spin, atof(argv[1]));
	return 0;
}
