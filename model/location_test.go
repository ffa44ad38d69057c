package model

import "testing"

func TestSplitLocation(t *testing.T) {
	for _, tc := range []struct {
		in   string
		file string
		line int
		ok   bool
	}{
		{Location("/srv/app.py", 14), "/srv/app.py", 14, true},
		{"C:/x/y.py:3", "C:/x/y.py", 3, true},
		{"<frozen importlib._bootstrap>:1165", "<frozen importlib._bootstrap>", 1165, true},
		{"", "", 0, false}, {"a.py", "", 0, false}, {":3", "", 0, false}, {"a.py:", "", 0, false},
		{"a.py:-1", "", 0, false}, {"a.py:+1", "", 0, false}, {"a.py:1x", "", 0, false},
	} {
		file, line, ok := SplitLocation(tc.in)
		if file != tc.file || line != tc.line || ok != tc.ok {
			t.Errorf("SplitLocation(%q) = %q, %d, %v; want %q, %d, %v", tc.in, file, line, ok, tc.file, tc.line, tc.ok)
		}
	}
}
