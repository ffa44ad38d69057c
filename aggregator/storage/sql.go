package storage

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// quote is the one way a value becomes SQL text: a ClickHouse string
// literal with backslash, quote and control bytes escaped.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\'':
			b.WriteString(`\'`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\x%02X`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// builtinLabels are the sample columns a Filter key may name directly.
var builtinLabels = []string{"service", "version", "host", "namespace", "pod", "container", "comm", "pid"}

func isBuiltin(k string) bool {
	for _, b := range builtinLabels {
		if b == k {
			return true
		}
	}
	return false
}

// labelExpr is the SQL expression of a label's value in samples.
func labelExpr(key string) string {
	switch {
	case key == "pid":
		return "toString(pid)"
	case isBuiltin(key):
		return key
	}
	return "label_values[indexOf(label_keys, " + quote(key) + ")]"
}

// timeRange renders [from, to) on a DateTime column; a zero bound is open.
func timeRange(col string, from, to time.Time) []string {
	var c []string
	if !from.IsZero() {
		c = append(c, fmt.Sprintf("%s >= toDateTime(%d)", col, from.Unix()))
	}
	if !to.IsZero() {
		c = append(c, fmt.Sprintf("%s < toDateTime(%d)", col, to.Unix()))
	}
	return c
}

// selectionWhere renders a Selection as a WHERE condition on samples.
// Filters on one key are ORed, keys are ANDed.
func selectionWhere(sel model.Selection) (string, error) { return selectionWhereOf(sel, true) }

// selectionWhereOf is selectionWhere, without the profile type condition
// unless typed.
func selectionWhereOf(sel model.Selection, typed bool) (string, error) {
	if !sel.From.IsZero() && !sel.To.IsZero() && !sel.From.Before(sel.To) {
		return "", fmt.Errorf("selection: from %s is not before to %s", sel.From.Format(time.RFC3339), sel.To.Format(time.RFC3339))
	}
	conds := timeRange("ts", sel.From, sel.To)
	if typed {
		profileType := sel.ProfileType
		if profileType == "" {
			profileType = samplebatch.ProfileCPU
		}
		if err := samplebatch.CheckProfileType(profileType); err != nil {
			return "", fmt.Errorf("selection: profile_type: %w", err)
		}
		conds = append(conds, "profile_type = "+quote(profileType))
	}
	if sel.Service != "" {
		conds = append(conds, "service = "+quote(sel.Service))
	}
	byKey := map[string][]string{}
	for _, f := range sel.Filters {
		if f.Key == "" {
			return "", fmt.Errorf("selection: filter with empty key")
		}
		if f.Key == "pid" {
			if _, err := strconv.ParseUint(f.Value, 10, 32); err != nil {
				return "", fmt.Errorf("selection: filter pid=%q: not a process id", f.Value)
			}
		}
		byKey[f.Key] = append(byKey[f.Key], f.Value)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var ors []string
		for _, v := range byKey[k] {
			e := labelExpr(k) + " = " + quote(v)
			if !isBuiltin(k) {
				// indexOf is 0 for a missing key and arr[0] is "": require the key.
				e = "(has(label_keys, " + quote(k) + ") AND " + e + ")"
			}
			ors = append(ors, e)
		}
		conds = append(conds, "("+strings.Join(ors, " OR ")+")")
	}
	return strings.Join(conds, " AND "), nil
}
