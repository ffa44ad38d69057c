package aggregator

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// DefaultRange is the time range of a selection without from/to.
const DefaultRange = time.Hour

// Parameter size limits: a query's cost grows with its filters, so a request cannot
// make one arbitrarily expensive (or ship a 300 KB value into SQL).
const (
	// MaxFilters bounds filter parameters per selection (base_/cmp_ included).
	MaxFilters = 32
	// MaxLabelKeyBytes bounds a filter's label key.
	MaxLabelKeyBytes = 128
	// MaxParamValueBytes bounds any single parameter value (filter values, function
	// names, services).
	MaxParamValueBytes = 4096
)

// paramError is a bad query parameter; it becomes a 400 naming the parameter.
type paramError struct {
	name string
	msg  string
}

func (e *paramError) Error() string { return fmt.Sprintf("parameter %s: %s", e.name, e.msg) }

func badParam(name, format string, args ...any) error {
	return &paramError{name: name, msg: fmt.Sprintf(format, args...)}
}

// ParseTime reads an API time: RFC 3339, Unix seconds (fractions allowed), "now" or
// "now-DURATION" / "now+DURATION" with a Go duration (now-1h, now-90m) or days (now-7d).
func ParseTime(v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "now" {
		return now, nil
	}
	if rest, ok := strings.CutPrefix(v, "now"); ok && len(rest) > 1 && (rest[0] == '-' || rest[0] == '+') {
		d, err := parseDuration(rest[1:])
		if err != nil {
			return time.Time{}, err
		}
		if rest[0] == '-' {
			d = -d
		}
		return now.Add(d), nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
			return time.Time{}, fmt.Errorf("unix seconds %q out of range", v)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not RFC 3339, Unix seconds or now-DURATION", v)
	}
	return t, nil
}

// parseDuration is time.ParseDuration plus a "d" (24h) unit.
func parseDuration(v string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil || days < 0 || days > 3650 {
			return 0, fmt.Errorf("bad duration %q", v)
		}
		return time.Duration(days * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q", v)
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", v)
	}
	return d, nil
}

// ParseFilter reads "key=value". The value is kept verbatim (it may contain '=',
// quotes or anything else: the store treats it as a value, never as SQL).
func ParseFilter(v string) (model.Filter, error) {
	k, val, ok := strings.Cut(v, "=")
	if !ok {
		return model.Filter{}, fmt.Errorf("%q: want key=value", v)
	}
	if k == "" {
		return model.Filter{}, fmt.Errorf("%q: empty label key", v)
	}
	if len(k) > MaxLabelKeyBytes {
		return model.Filter{}, fmt.Errorf("label key longer than %d bytes", MaxLabelKeyBytes)
	}
	if len(val) > MaxParamValueBytes {
		return model.Filter{}, fmt.Errorf("label value longer than %d bytes", MaxParamValueBytes)
	}
	for _, r := range k {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("_.-/", r) {
			return model.Filter{}, fmt.Errorf("label key %q: only letters, digits and _ . - / are allowed", k)
		}
	}
	return model.Filter{Key: k, Value: val}, nil
}

// parseSelection reads a selection; profile_type defaults to cpu. With a prefix ("base_", "cmp_"), a prefixed
// parameter wins over the unprefixed one, and prefixed filters add to shared ones.
func parseSelection(q url.Values, prefix string, now time.Time) (model.Selection, error) {
	get := func(name string) (string, string) {
		if prefix != "" {
			if v := q.Get(prefix + name); v != "" {
				return prefix + name, v
			}
		}
		return name, q.Get(name)
	}
	var sel model.Selection
	_, sel.Service = get("service")
	if name, v := get("profile_type"); v != "" {
		if err := samplebatch.CheckProfileType(v); err != nil {
			return sel, badParam(name, "%v", err)
		}
		sel.ProfileType = v
	}
	sel.To = now
	if name, v := get("to"); v != "" {
		t, err := ParseTime(v, now)
		if err != nil {
			return sel, badParam(name, "%v", err)
		}
		sel.To = t
	}
	sel.From = sel.To.Add(-DefaultRange)
	if name, v := get("from"); v != "" {
		t, err := ParseTime(v, now)
		if err != nil {
			return sel, badParam(name, "%v", err)
		}
		sel.From = t
	}
	if !sel.From.Before(sel.To) {
		name, _ := get("from")
		return sel, badParam(name, "from %s is not before to %s", sel.From.Format(time.RFC3339), sel.To.Format(time.RFC3339))
	}
	names := []string{"filter"}
	if prefix != "" {
		names = append(names, prefix+"filter")
	}
	for _, name := range names {
		if n := len(sel.Filters) + len(q[name]); n > MaxFilters {
			return sel, badParam(name, "%d filters, limit %d", n, MaxFilters)
		}
		for _, v := range q[name] {
			f, err := ParseFilter(v)
			if err != nil {
				return sel, badParam(name, "%v", err)
			}
			sel.Filters = append(sel.Filters, f)
		}
	}
	return sel, nil
}

// checkParamSizes rejects any parameter value over MaxParamValueBytes.
func checkParamSizes(q url.Values) error {
	for name, vs := range q {
		for _, v := range vs {
			if len(v) > MaxParamValueBytes {
				return badParam(name, "value of %d bytes, limit %d", len(v), MaxParamValueBytes)
			}
		}
	}
	return nil
}

// intParam reads an integer parameter in [1, max], def when absent.
func intParam(q url.Values, name string, def, max int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, badParam(name, "%q: want an integer in [1, %d]", v, max)
	}
	return n, nil
}

// timeRange reads from/to without filters (services, versions, findings).
func timeRange(q url.Values, now time.Time) (from, to time.Time, err error) {
	sel, err := parseSelection(url.Values{"from": q["from"], "to": q["to"]}, "", now)
	return sel.From, sel.To, err
}
