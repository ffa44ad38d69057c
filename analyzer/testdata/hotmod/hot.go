// Package hotmod is a fixture for the offense pipeline: each function holds one hot
// anti-pattern the analyzer must find and fix.
package hotmod

import (
	"fmt"
	"regexp"
)

// CountEmails counts the lines that are user e-mail addresses.
func CountEmails(lines []string) int {
	n := 0
	for _, l := range lines {
		re := regexp.MustCompile(`^user-[0-9]+@example\.com$`)
		if re.MatchString(l) {
			n++
		}
	}
	return n
}

// Keys renders ids as decimal strings.
func Keys(ids []int) []string {
	var out []string
	for _, id := range ids {
		out = append(out, fmt.Sprintf("%d", id))
	}
	return out
}

// Squares returns the first n squares.
func Squares(n int) []int {
	var sq []int
	for i := 0; i < n; i++ {
		sq = append(sq, i*i)
	}
	return sq
}

// Join joins parts, each followed by a comma.
func Join(parts []string) string {
	s := ""
	for _, p := range parts {
		s += p + ","
	}
	return s
}
