package wal

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestAppendReplay(t *testing.T) {
	dir := t.TempDir()
	l, recs, _, err := Open(dir)
	if err != nil || len(recs) != 0 {
		t.Fatalf("open empty: %v, %d records", err, len(recs))
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if _, err := l.Append(fmt.Sprintf("b%02d", i), bytes.Repeat([]byte{byte(i)}, 100+i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, recs, st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if len(recs) != 50 || st.TornBytes != 0 {
		t.Fatalf("replayed %d records, %d torn bytes; want 50, 0", len(recs), st.TornBytes)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		var i int
		if _, err := fmt.Sscanf(r.ID, "b%02d", &i); err != nil || !bytes.Equal(r.Data, bytes.Repeat([]byte{byte(i)}, 100+i)) {
			t.Fatalf("record %q: %d bytes, wrong content", r.ID, len(r.Data))
		}
		seen[r.ID] = true
	}
	if len(seen) != 50 {
		t.Fatalf("%d distinct ids", len(seen))
	}
}

// TestTornTail truncates the last record of a segment for real, as a crash
// inside a write leaves it: replay keeps the records before it.
func TestTornTail(t *testing.T) {
	for _, cut := range []int{1, 5, 9, 40} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			dir := t.TempDir()
			l, _, _, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if _, err := l.Append(fmt.Sprint(i), bytes.Repeat([]byte("x"), 64)); err != nil {
					t.Fatal(err)
				}
			}
			l.Close()
			segs, _ := segments(dir)
			p := segPath(dir, segs[len(segs)-1])
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, fi.Size()-int64(cut)); err != nil {
				t.Fatal(err)
			}
			l, recs, st, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if len(recs) != 2 || st.TornBytes == 0 {
				t.Fatalf("after cutting %d bytes: %d records, %d torn bytes; want 2 and > 0", cut, len(recs), st.TornBytes)
			}
		})
	}
}

func TestCorruptByteStopsSegment(t *testing.T) {
	dir := t.TempDir()
	l, _, _, _ := Open(dir)
	for i := range 3 {
		if _, err := l.Append(fmt.Sprint(i), []byte("payload")); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	segs, _ := segments(dir)
	p := segPath(dir, segs[0])
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	l, recs, st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if len(recs) != 1 || st.TornBytes == 0 {
		t.Fatalf("%d records, %d torn bytes; want 1 and > 0", len(recs), st.TornBytes)
	}
}

func TestRotateRemove(t *testing.T) {
	dir := t.TempDir()
	l, _, _, _ := Open(dir)
	defer l.Close()
	a, err := l.Append("a", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	cut, err := l.Rotate()
	if err != nil || cut <= a {
		t.Fatalf("rotate: %d, %v (record in %d)", cut, err, a)
	}
	b, err := l.Append("b", []byte("2"))
	if err != nil || b != cut {
		t.Fatalf("append after rotate went to %d, want %d (%v)", b, cut, err)
	}
	if err := l.Remove(cut); err != nil {
		t.Fatal(err)
	}
	if again, _ := l.Rotate(); again == cut {
		t.Fatal("rotate after an append kept the segment")
	}
	l2, recs, _, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if len(recs) != 1 || recs[0].ID != "b" {
		t.Fatalf("after removing segments below %d: %+v", cut, recs)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.wal")); len(m) < 2 {
		t.Fatalf("segments %v", m)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	rec := func(id string, data []byte) []byte {
		dir := f.TempDir()
		l, _, _, _ := Open(dir)
		l.Append(id, data)
		l.Close()
		segs, _ := segments(dir)
		b, _ := os.ReadFile(segPath(dir, segs[0]))
		return b
	}
	f.Add(rec("id", []byte("data")))
	f.Add(rec("", nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := decodeRecord(b)
		if err != nil {
			return
		}
		if n > len(b) || n < headerBytes || len(r.ID)+len(r.Data) > n {
			t.Fatalf("decoded %d of %d bytes: id %d, data %d", n, len(b), len(r.ID), len(r.Data))
		}
	})
}
