// Test fixture for symbolize's DWARF inline expansion (built -O2 -g):
// mix and step are inlined into outer. Prints outer's address, then blocks
// until stdin closes.
#include <stdio.h>
#include <unistd.h>

static volatile unsigned sink;

static inline __attribute__((always_inline)) unsigned mix(unsigned x) {
	for (int i = 0; i < 8; i++) {
		x = x * 2654435761u + sink;
		sink = x;
	}
	return x;
}

static inline __attribute__((always_inline)) unsigned step(unsigned x) {
	return mix(x ^ 0x9e3779b9u) + mix(x);
}

__attribute__((noinline)) unsigned outer(unsigned x) { return step(x) * 3 + sink; }

int main(void) {
	printf("outer %p\nready\n", (void *)outer);
	fflush(stdout);
	sink = outer(1);
	char buf[64];
	while (read(0, buf, sizeof buf) > 0) {
	}
	return 0;
}
