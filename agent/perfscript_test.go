package agent

import (
	"maps"
	"math"
	"testing"
)

// TestParsePerfScript checks perf script's callchains become root-first
// stacks named as the symbolizer names frames.
func TestParsePerfScript(t *testing.T) {
	tests := []struct {
		name, in string
		want     map[string]int64
	}{
		{"user and kernel", `qs  8934 
	ffffffff8100a1b2 finish_task_switch.isra.0 ([kernel.kallsyms])
	            12f2 cmp (/tmp/qs)
	           3fd35 __GI___qsort_r (/usr/lib/x86_64-linux-gnu/libc.so.6)
	            11dc main (/tmp/qs)
	           27304 __libc_start_main@@GLIBC_2.34 (/usr/lib/x86_64-linux-gnu/libc.so.6)

qs  8934 
	            12f2 cmp (/tmp/qs)
	           3fd35 __GI___qsort_r (/usr/lib/x86_64-linux-gnu/libc.so.6)
	            11dc main (/tmp/qs)
	           27304 __libc_start_main@@GLIBC_2.34 (/usr/lib/x86_64-linux-gnu/libc.so.6)
`, map[string]int64{
			"__libc_start_main@@GLIBC_2.34;main;__GI___qsort_r;cmp;finish_task_switch.isra.0_[k]": 1,
			"__libc_start_main@@GLIBC_2.34;main;__GI___qsort_r;cmp":                               1,
		}},
		{"unknown frames", `gzip  8934 
	            43e0 [unknown] (/usr/bin/gzip)
	         7f00001 [unknown] ([unknown])
	           27249 __libc_start_call_main (/usr/lib/x86_64-linux-gnu/libc.so.6)
`, map[string]int64{"__libc_start_call_main;[unknown];[unknown] gzip+0x43e0": 1}},
		{"no samples", "", map[string]int64{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := parsePerfScript([]byte(tc.in)); !maps.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCompareFidelity checks completeness, the chain share and alias
// folding on hand-made profiles.
func TestCompareFidelity(t *testing.T) {
	al := aliases{"__GI___qsort_r": "__GI___qsort_r", "qsort_r": "__GI___qsort_r", "__memmove_x": "__memcpy_x", "__memcpy_x": "__memcpy_x"}
	w := fidelityWorkload{name: "qs", leaf: ";cmp", chain: ";main;qsort_r"}
	perf := map[string]int64{
		"__libc_start_main@@GLIBC_2.34;main;__GI___qsort_r;cmp":         8,
		"__libc_start_main@@GLIBC_2.34;main;__GI___qsort_r;__memmove_x": 2,
	}
	fleet := map[string]int64{
		"__libc_start_main;main;qsort_r;cmp":        6,
		"[unknown];cmp":                             2,
		"__libc_start_main;main;qsort_r;__memcpy_x": 2,
	}
	f := compareFidelity(w, al, perf, fleet)
	tests := []struct {
		name      string
		got, want float64
	}{
		{"perf complete %", f.perfComplete, 100},
		{"fleetprof complete %", f.fleetComplete, 80},
		{"perf chain %", f.perfChain, 100},
		{"fleetprof chain %", f.fleetChain, 75},
		{"top-5 max diff", f.top.maxDiff, 0}, // cmp 80/80, memcpy alias 20/20
	}
	for _, tc := range tests {
		if math.Abs(tc.got-tc.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if f.fleetIncomplete != "[unknown];cmp" {
		t.Errorf("most frequent incomplete stack %q", f.fleetIncomplete)
	}
}
