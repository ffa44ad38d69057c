package samplebatch

import (
	"fmt"
	"hash/fnv"
	"strings"
	"unicode/utf8"
)

// ElisionMarker replaces what ShortenName removes from a frame name, so a shortened
// name is visibly shortened and never mistaken for a real symbol.
const ElisionMarker = "…"

// minShortenBytes is the smallest limit ShortenName honours: below it the hash marker
// alone would not fit, so the limit is raised to it.
const minShortenBytes = 32

// ShortenName returns name unchanged if it fits in max bytes. Otherwise it first elides
// the contents of template (<…>) and parameter ((…)) lists, keeping the qualified name
// readable; if that is still too long it keeps a prefix and a suffix around a marker
// holding an FNV-1a hash of the whole name, so distinct long names stay distinct. The
// result is deterministic, valid UTF-8 if name is, and at most max bytes (limits below
// minShortenBytes are raised to it).
func ShortenName(name string, max int) string {
	if len(name) <= max {
		return name
	}
	max = maxInt(max, minShortenBytes)
	if e := elideLists(name); len(e) <= max {
		return e
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	mark := fmt.Sprintf("%s#%08x%s", ElisionMarker, h.Sum32(), ElisionMarker)
	keep := max - len(mark)
	pre, suf := keep-keep/4, keep/4
	return validPrefix(name, pre) + mark + validSuffix(name, suf)
}

// elideLists replaces the contents of every outermost <…> and (…) with the marker.
// C++ operator names containing < or ( are rare enough in hot frames that mangling
// them into a shorter, still-marked name is acceptable.
func elideLists(name string) string {
	var b strings.Builder
	depth := 0
	var open byte
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case depth == 0 && (c == '<' || c == '('):
			open, depth = c, 1
			b.WriteByte(c)
			b.WriteString(ElisionMarker)
		case depth > 0 && c == open:
			depth++
		case depth > 0 && c == closer(open):
			depth--
			if depth == 0 {
				b.WriteByte(c)
			}
		case depth == 0:
			b.WriteByte(c)
		}
	}
	if depth > 0 { // unbalanced: close what was opened so the marker stays visible
		b.WriteByte(closer(open))
	}
	return b.String()
}

func closer(open byte) byte {
	if open == '<' {
		return '>'
	}
	return ')'
}

func validPrefix(s string, n int) string {
	if n <= 0 {
		return ""
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

func validSuffix(s string, n int) string {
	if n <= 0 {
		return ""
	}
	s = s[len(s)-n:]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[1:]
	}
	return s
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}
