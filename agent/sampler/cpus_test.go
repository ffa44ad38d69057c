package sampler

import (
	"slices"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"0\n", []int{0}, false},
		{"0-1\n", []int{0, 1}, false},
		{"0-2,4,6-7", []int{0, 1, 2, 4, 6, 7}, false},
		{"", nil, true},
		{"a", nil, true},
		{"3-1", nil, true},
		{"0-", nil, true},
		{"-1", nil, true},
	}
	for _, tt := range tests {
		got, err := parseCPUList(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseCPUList(%q) error %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("parseCPUList(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestOnlineCPUs(t *testing.T) {
	cpus, err := onlineCPUs()
	if err != nil {
		t.Fatalf("onlineCPUs: %v", err)
	}
	if len(cpus) == 0 {
		t.Fatal("no online cpus")
	}
}
