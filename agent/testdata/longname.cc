// longname sorts strings for argv[1] milliseconds. libstdc++'s std::sort helpers
// over std::string demangle to names over 1 KiB (template arguments spelled out).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char **argv) {
	long ms = argc > 1 ? std::atol(argv[1]) : 1000;
	auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
	std::vector<std::string> v;
	unsigned seed = 1;
	for (int i = 0; i < 20000; i++) {
		seed = seed * 1103515245 + 12345;
		v.push_back("key-" + std::to_string(seed) + std::string(24, 'x'));
	}
	size_t sink = 0;
	while (std::chrono::steady_clock::now() < end) {
		std::vector<std::string> w = v;
		std::sort(w.begin(), w.end());
		sink += w[0].size();
	}
	return sink == 0;
}
