package hotmod

import (
	"strconv"
	"testing"
)

func TestCountEmails(t *testing.T) {
	got := CountEmails([]string{"user-1@example.com", "bob@example.com", "user-22@example.com"})
	if got != 2 {
		t.Fatalf("CountEmails = %d, want 2", got)
	}
}

func TestKeys(t *testing.T) {
	got := Keys([]int{1, -20, 300})
	want := []string{"1", "-20", "300"}
	if len(got) != len(want) {
		t.Fatalf("Keys = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Keys = %v, want %v", got, want)
		}
	}
}

func TestSquares(t *testing.T) {
	got := Squares(4)
	if len(got) != 4 || got[3] != 9 || cap(got) < 4 {
		t.Fatalf("Squares(4) = %v", got)
	}
}

func TestJoin(t *testing.T) {
	if got := Join([]string{"a", "b"}); got != "a,b," {
		t.Fatalf("Join = %q", got)
	}
}

var sink int

// BenchmarkHot runs every hot function; the analyzer's tests profile it.
func BenchmarkHot(b *testing.B) {
	// Sized so each pattern gets a sizable share of the profile.
	lines := make([]string, 16)
	ids := make([]int, 1024)
	parts := make([]string, 384)
	for i := range lines {
		lines[i] = "user-" + strconv.Itoa(i) + "@example.com"
	}
	for i := range ids {
		ids[i] = i * 7919
	}
	for i := range parts {
		parts[i] = strconv.Itoa(i)
	}
	for b.Loop() {
		sink += CountEmails(lines)
		sink += len(Keys(ids))
		sink += len(Squares(8192))
		sink += len(Join(parts))
	}
}
