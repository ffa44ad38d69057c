package pyroscope

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Matcher is one label matcher of a Pyroscope (Prometheus-style) selector.
type Matcher struct {
	Name  string
	Op    string // "=", "!=", "=~" or "!~"
	Value string
	re    *regexp.Regexp
}

// Selector limits: a selector is user input that becomes SQL filters.
const (
	// MaxSelectorBytes bounds a selector's text.
	MaxSelectorBytes = 16 << 10
	// MaxMatchers bounds the matchers in one selector.
	MaxMatchers = 64
	// maxLabelName bounds a label name, as the HTTP API's filters do.
	maxLabelName = 128
)

// Matches reports whether v satisfies the matcher.
func (m Matcher) Matches(v string) bool {
	switch m.Op {
	case "=":
		return v == m.Value
	case "!=":
		return v != m.Value
	case "=~":
		return m.re.MatchString(v)
	default:
		return !m.re.MatchString(v)
	}
}

// ParseSelector reads `{name="v", other=~"re.*", x!="y"}`; an empty string or
// {} selects everything. Regular expressions are RE2 (linear time), anchored at
// both ends as in Prometheus.
func ParseSelector(s string) ([]Matcher, error) {
	if len(s) > MaxSelectorBytes {
		return nil, fmt.Errorf("selector over %d bytes", MaxSelectorBytes)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return nil, fmt.Errorf("selector %q: want {label=\"value\", ...}", s)
	}
	rest := strings.TrimSpace(s[1 : len(s)-1])
	var out []Matcher
	for rest != "" {
		if len(out) == MaxMatchers {
			return nil, fmt.Errorf("selector has more than %d matchers", MaxMatchers)
		}
		i := 0
		for i < len(rest) && isNameByte(rest[i], i == 0) {
			i++
		}
		if i == 0 {
			return nil, fmt.Errorf("selector: expected a label name at %q", rest)
		}
		if i > maxLabelName {
			return nil, fmt.Errorf("selector: label name longer than %d bytes", maxLabelName)
		}
		m := Matcher{Name: rest[:i]}
		rest = strings.TrimLeft(rest[i:], " ")
		for _, op := range []string{"=~", "!~", "!=", "="} {
			if strings.HasPrefix(rest, op) {
				m.Op = op
				break
			}
		}
		if m.Op == "" {
			return nil, fmt.Errorf("selector: label %s: want =, !=, =~ or !~", m.Name)
		}
		rest = strings.TrimLeft(rest[len(m.Op):], " ")
		val, n, err := quoted(rest)
		if err != nil {
			return nil, fmt.Errorf("selector: label %s: %w", m.Name, err)
		}
		m.Value, rest = val, strings.TrimLeft(rest[n:], " ")
		if m.Op == "=~" || m.Op == "!~" {
			if m.re, err = regexp.Compile("^(?:" + m.Value + ")$"); err != nil {
				return nil, fmt.Errorf("selector: label %s: regexp: %w", m.Name, err)
			}
		}
		out = append(out, m)
		if rest == "" {
			break
		}
		if rest[0] != ',' {
			return nil, fmt.Errorf("selector: expected , at %q", rest)
		}
		rest = strings.TrimLeft(rest[1:], " ")
	}
	return out, nil
}

func isNameByte(c byte, first bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && (c >= '0' && c <= '9' || c == '.')
}

// quoted reads a "..." , '...' or `...` string at the start of s and returns it
// unquoted with the bytes it took.
func quoted(s string) (string, int, error) {
	if s == "" || !strings.ContainsRune("\"'`", rune(s[0])) {
		return "", 0, fmt.Errorf("want a quoted value at %q", s)
	}
	q := s[0]
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == '\\' && q != '`':
			i++
		case s[i] == q:
			raw := s[:i+1]
			if q == '\'' {
				// Go has no single-quoted strings: requote.
				raw = `"` + strings.ReplaceAll(strings.ReplaceAll(s[1:i], `\'`, `'`), `"`, `\"`) + `"`
			}
			v, err := strconv.Unquote(raw)
			if err != nil {
				return "", 0, fmt.Errorf("bad quoted value %s: %w", s[:i+1], err)
			}
			return v, i + 1, nil
		}
	}
	return "", 0, fmt.Errorf("unterminated value %q", s)
}
