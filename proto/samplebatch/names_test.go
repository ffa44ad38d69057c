package samplebatch

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// sortName is the shape of the demangled name of libstdc++'s std::sort helper over
// std::string, padded past the default limit as g++ -O2 produces it.
var sortName = "void std::__introsort_loop<__gnu_cxx::__normal_iterator<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >*, std::vector<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >, std::allocator<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > > > >, long, __gnu_cxx::__ops::_Iter_less_iter>(" +
	strings.Repeat("__gnu_cxx::__normal_iterator<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >*>, ", 12) + "long, __gnu_cxx::__ops::_Iter_less_iter)"

func TestShortenName(t *testing.T) {
	long := strings.Repeat("α", 800) // 1,600 bytes, no lists to elide
	tests := []struct {
		name, in string
		max      int
		want     string // "" means: only check the invariants
	}{
		{"fits", "main", 1024, "main"},
		{"exact", strings.Repeat("x", 64), 64, strings.Repeat("x", 64)},
		{"templates elided", sortName, 1024, "void std::__introsort_loop<…>(…)"},
		{"hash fallback", long, 100, ""},
		{"tiny limit raised", long, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ShortenName(tt.in, tt.max)
			if tt.want != "" && got != tt.want {
				t.Fatalf("ShortenName = %q, want %q", got, tt.want)
			}
			if len(got) > maxInt(tt.max, minShortenBytes) {
				t.Errorf("%d bytes, limit %d", len(got), tt.max)
			}
			if !utf8.ValidString(got) {
				t.Errorf("invalid UTF-8: %q", got)
			}
			if got != tt.in && !strings.Contains(got, ElisionMarker) {
				t.Errorf("shortened without marker: %q", got)
			}
			if again := ShortenName(tt.in, tt.max); again != got {
				t.Errorf("not deterministic: %q then %q", got, again)
			}
		})
	}
	if a, b := ShortenName(long+"a", 100), ShortenName(long+"b"+long, 100); a == b {
		t.Errorf("distinct names collide: %q", a)
	}
}

// A name over MaxFrameBytes is stored shortened and counted; the batch is not rejected.
func TestDecodeShortensLongNames(t *testing.T) {
	if len(sortName) <= 1024 {
		t.Fatalf("fixture name is %d bytes, want > 1024", len(sortName))
	}
	data, err := Encode([]Sample{sample([]string{"main", sortName}, 5), sample([]string{"main", "ok"}, 2)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Decode(data, Limits{})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if b.ShortenedNames != 1 {
		t.Errorf("ShortenedNames = %d, want 1", b.ShortenedNames)
	}
	if got := b.Samples(); got != 7 {
		t.Errorf("samples = %d, want 7", got)
	}
	fs := b.Stacks[b.Rows[0].StackID]
	if want := []string{"main", "void std::__introsort_loop<…>(…)"}; strings.Join(fs, ";") != strings.Join(want, ";") {
		t.Errorf("frames = %q, want %q", fs, want)
	}
}
