package testenv

import "testing"

func TestAllowlist(t *testing.T) {
	for _, tc := range []struct {
		r    Reason
		want bool
	}{
		{KernelFeature, true}, {Short, true}, {Platform, true},
		{MissingTool, false}, {NotRoot, false}, {MissingData, false}, {TooFewSamples, false},
	} {
		if got := Allowed(tc.r); got != tc.want {
			t.Errorf("Allowed(%q) = %v, want %v", tc.r, got, tc.want)
		}
	}
}

func TestStrictFromEnv(t *testing.T) {
	for _, tc := range []struct {
		ci, strict string
		want       bool
	}{
		{"", "", false}, {"true", "", true}, {"", "1", true}, {"false", "0", false},
	} {
		t.Setenv("CI", tc.ci)
		t.Setenv("FLEETPROF_STRICT_TESTS", tc.strict)
		if got := Strict(); got != tc.want {
			t.Errorf("CI=%q FLEETPROF_STRICT_TESTS=%q: Strict() = %v, want %v", tc.ci, tc.strict, got, tc.want)
		}
	}
}
