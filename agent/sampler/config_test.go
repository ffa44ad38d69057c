package sampler

import (
	"strings"
	"testing"
	"time"
)

func TestWithDefaults(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		ncpu       int
		wantHz     int
		wantStacks int
		wantCounts int
	}{
		{"zero on 2 cpus", Config{}, 2, 19, 16384, 4096},
		{"99 Hz on 64 cpus", Config{Hz: 99}, 64, 99, 65536, 69696},
		{"19 Hz on 64 cpus", Config{}, 64, 19, 16384, 13376},
		{"explicit sizes kept", Config{Hz: 49, StackMapEntries: 100, CountMapEntries: 7}, 8, 49, 100, 7},
		{"short drain interval", Config{DrainInterval: time.Second}, 4, 19, 16384, 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.cfg.withDefaults(tt.ncpu)
			if got.Hz != tt.wantHz || got.StackMapEntries != tt.wantStacks || got.CountMapEntries != tt.wantCounts {
				t.Errorf("got hz %d stacks %d counts %d, want %d %d %d",
					got.Hz, got.StackMapEntries, got.CountMapEntries, tt.wantHz, tt.wantStacks, tt.wantCounts)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("defaults invalid: %v", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := Config{}.withDefaults(2)
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"hz zero", func(c *Config) { c.Hz = 0 }, "hz 0"},
		{"hz too high", func(c *Config) { c.Hz = MaxHz + 1 }, "hz"},
		{"negative drain interval", func(c *Config) { c.DrainInterval = -time.Second }, "drain interval"},
		{"no stack entries", func(c *Config) { c.StackMapEntries = 0 }, "stack map entries"},
		{"huge stack map", func(c *Config) { c.StackMapEntries = 1 << 30 }, "stack map entries"},
		{"no count entries", func(c *Config) { c.CountMapEntries = -1 }, "count map entries"},
		{"ring not power of two", func(c *Config) { c.EventRingSize = 3 << 12 }, "event ring size"},
		{"ring below a page", func(c *Config) { c.EventRingSize = 1024 }, "event ring size"},
		{"negative event buffer", func(c *Config) { c.EventBuffer = -1 }, "event buffer"},
		{"unbuffered events", func(c *Config) { c.EventBuffer = 0 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
