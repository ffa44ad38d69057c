package unwind

import (
	"debug/elf"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/internal/testenv"
)

func TestCacheRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		rows []Row
	}{
		{"empty", nil},
		{"one", []Row{{PC: 0x1000, CFAOff: 8, Kind: KindCFASP, RAOff: -8}}},
		{"signed", []Row{{PC: 1, CFAOff: -16, Kind: KindCFAFP, FPRule: 1, FPOff: -16, RAOff: -8}, {PC: 9, Kind: KindGap}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeCache(encodeCache(tc.rows))
			if err != nil || !slices.Equal(got, tc.rows) {
				t.Errorf("round trip: %v %v, want %v", got, err, tc.rows)
			}
		})
	}
}

// TestCacheEviction writes three tables into a cache with room for two:
// the least recently used (oldest modification time) goes.
func TestCacheEviction(t *testing.T) {
	rows := make([]Row, 100)
	size := int64(len(encodeCache(rows)))
	c := &diskCache{dir: t.TempDir(), maxBytes: 2 * size}
	old := time.Now().Add(-time.Hour)
	for i, id := range []string{"aa", "bb"} {
		if err := c.put(id, rows); err != nil {
			t.Fatal(err)
		}
		at := old.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(c.path(id), at, at); err != nil {
			t.Fatal(err)
		}
	}
	// A hit renews aa: bb is now the least recently used.
	if _, ok, err := c.get("aa"); !ok || err != nil {
		t.Fatalf("get aa: %v %v", ok, err)
	}
	if err := c.put("cc", rows); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(c.dir, "*"+cacheSuffix))
	for i := range names {
		names[i] = filepath.Base(names[i])
	}
	if want := []string{"aa.rows", "cc.rows"}; !slices.Equal(names, want) || c.size != 2*size || c.evictions != 1 {
		t.Errorf("cache holds %v (%d bytes, %d evictions), want %v (%d bytes, 1 eviction)", names, c.size, c.evictions, want, 2*size)
	}
	// A restart sums what is there.
	c2 := &diskCache{dir: c.dir, maxBytes: c.maxBytes}
	if err := c2.scan(); err != nil || c2.size != c.size {
		t.Errorf("rescan: %d bytes %v, want %d", c2.size, err, c.size)
	}
}

// BenchmarkCacheReadLibc reads Debian's libc's table back from the disk
// cache: what a restart pays per file instead of BenchmarkBuildLibc.
func BenchmarkCacheReadLibc(b *testing.B) {
	const path = "/usr/lib/x86_64-linux-gnu/libc.so.6"
	f, err := elf.Open(path)
	if err != nil {
		testenv.Skip(b, testenv.Platform, "no Debian x86-64 libc at %s", path)
	}
	defer f.Close()
	rows, err := Build(f)
	if err != nil {
		b.Fatal(err)
	}
	c := &diskCache{dir: b.TempDir(), maxBytes: DefaultCacheMaxBytes}
	if err := c.put("libc", rows); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if got, ok, err := c.get("libc"); !ok || err != nil || len(got) != len(rows) {
			b.Fatalf("cache read: %d rows %v %v", len(got), ok, err)
		}
	}
	b.ReportMetric(float64(c.size), "file_bytes")
}
