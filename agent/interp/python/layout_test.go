package python

import (
	"encoding/binary"
	"errors"
	"testing"
)

func TestLayoutFor(t *testing.T) {
	rt := make([]byte, debugPrefixSize)
	copy(rt, debugCookie)
	binary.LittleEndian.PutUint64(rt[debugVersionAt:], 0x030d00f0)
	binary.LittleEndian.PutUint64(rt[debugInterpHeadAt:], 1000)
	binary.LittleEndian.PutUint64(rt[debugInterpNextAt:], 2000)
	binary.LittleEndian.PutUint64(rt[debugThreadsHeadAt:], 3000)
	tests := []struct {
		name    string
		v       Version
		runtime []byte
		wantErr error
		head    int64
	}{
		{"3.10", Version{3, 10}, nil, nil, 32},
		{"3.11", Version{3, 11}, nil, nil, 40},
		{"3.12", Version{3, 12}, nil, nil, 40},
		{"3.13 from debug offsets", Version{3, 13}, rt, nil, 1000},
		{"3.13 without cookie", Version{3, 13}, make([]byte, debugPrefixSize), ErrUnsupported, 0},
		{"3.13 binary says 3.14", Version{3, 14}, rt, ErrUnsupported, 0},
		{"3.9", Version{3, 9}, nil, ErrUnsupported, 0},
		{"2.7", Version{2, 7}, nil, ErrUnsupported, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := LayoutFor(tc.v, tc.runtime)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && l.RuntimeInterpHead != tc.head {
				t.Fatalf("interpreters.head at %d, want %d", l.RuntimeInterpHead, tc.head)
			}
		})
	}
}

func TestModule(t *testing.T) {
	for file, want := range map[string]string{
		"/srv/app/handlers.py":             "handlers",
		"/usr/lib/python3/pkg/__init__.py": "pkg",
		"<frozen importlib._bootstrap>":    "importlib._bootstrap",
		"<string>":                         "string",
	} {
		if got := Module(file); got != want {
			t.Errorf("Module(%q) = %q, want %q", file, got, want)
		}
	}
}

func TestVersionFromHex(t *testing.T) {
	if v := VersionFromHex(0x030b07f0); v != (Version{3, 11}) {
		t.Fatalf("got %v", v)
	}
}
