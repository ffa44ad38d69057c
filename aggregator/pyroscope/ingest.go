package pyroscope

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/pprofconv"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
	"github.com/google/pprof/profile"
)

// IngestFunc stores rows under a batch id through the aggregator's ingest path.
// It reports duplicate for an id already stored, and an error wrapping
// samplebatch.ErrInvalid for rows the limits reject.
type IngestFunc func(ctx context.Context, batchID string, samples []samplebatch.Sample) (rows int, duplicate bool, err error)

// PushConfig configures the push endpoints.
type PushConfig struct {
	// MaxBodyBytes bounds one request body; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Now stamps profiles that carry no time; default time.Now.
	Now func() time.Time
}

// DefaultMaxBodyBytes is the default bound of one push request, the Arrow path's
// default message size.
const DefaultMaxBodyBytes = 16 << 20

// DefaultSampleRate is the sampling rate (Hz) assumed for folded and lines uploads
// without sampleRate: the SDKs' default.
const DefaultSampleRate = 100

// maxSampleRate bounds sampleRate: above 1 MHz the period is under a microsecond,
// which no profiler samples at.
const maxSampleRate = 1_000_000

func (c PushConfig) withDefaults() PushConfig {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Pusher serves POST /ingest and push.v1.PusherService/Push.
type Pusher struct {
	cfg    PushConfig
	ingest IngestFunc
}

// NewPusher returns the push endpoints writing through ingest.
func NewPusher(cfg PushConfig, ingest IngestFunc) *Pusher {
	return &Pusher{cfg: cfg.withDefaults(), ingest: ingest}
}

// Errors that decide the answer.
var (
	// ErrBadRequest marks input that cannot be read (400).
	ErrBadRequest = errors.New("bad request")
	// ErrUnsupportedType marks a profile type fleetprof does not store (422).
	ErrUnsupportedType = errors.New("profile type not stored: fleetprof stores CPU profiles only")
)

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// ServeHTTP answers POST /ingest.
func (p *Pusher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "ingest: use POST", http.StatusMethodNotAllowed)
		return
	}
	err := p.serveIngest(r)
	switch {
	case err == nil:
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, ErrUnsupportedType):
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
	case errors.Is(err, ErrBadRequest), errors.Is(err, samplebatch.ErrInvalid), errors.Is(err, pprofconv.ErrNoSamples):
		http.Error(w, err.Error(), http.StatusBadRequest)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func (p *Pusher) serveIngest(r *http.Request) error {
	q := r.URL.Query()
	name := q.Get("name")
	if name == "" {
		return badRequest("name is required (app{k=v})")
	}
	labels, kind, err := ParseAppName(name)
	if err != nil {
		return badRequest("name: %v", err)
	}
	now := p.cfg.Now()
	from, err := parseUnixTime(q.Get("from"), now)
	if err != nil {
		return badRequest("from: %v", err)
	}
	if _, err := parseUnixTime(q.Get("until"), now); err != nil {
		return badRequest("until: %v", err)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, p.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return badRequest("body over %d bytes", mbe.Limit)
		}
		return badRequest("read body: %v", err)
	}
	format := q.Get("format")
	if format == "" {
		format = "pprof"
		if strings.HasPrefix(r.Header.Get("Content-Type"), "text/") {
			format = "folded"
		}
	}
	id := batchID("ingest", name, q.Get("from"), q.Get("until"), format, string(body))
	var samples []samplebatch.Sample
	switch format {
	case "pprof":
		data, err := profilePart(r.Header.Get("Content-Type"), body)
		if err != nil {
			return err
		}
		samples, err = p.fromPprof(data, labels, from)
		if err != nil {
			return err
		}
	case "trie", "tree":
		return badRequest("format %q is not supported: send pprof, folded or lines", format)
	case "folded", "lines":
		if kind != "" && kind != "cpu" && kind != "itimer" {
			return fmt.Errorf("%w (got %q)", ErrUnsupportedType, kind)
		}
		rate, err := sampleRate(q.Get("sampleRate"))
		if err != nil {
			return err
		}
		samples, err = fromText(body, format == "lines", labels, from, int64(time.Second)/rate)
		if err != nil {
			return err
		}
	default:
		return badRequest("format %q: want pprof, folded or lines", format)
	}
	_, _, err = p.ingest(r.Context(), id, samples)
	return err
}

func sampleRate(v string) (int64, error) {
	if v == "" {
		return DefaultSampleRate, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > maxSampleRate {
		return 0, badRequest("sampleRate %q: want 1..%d Hz", v, maxSampleRate)
	}
	return n, nil
}

// profilePart returns the pprof bytes of a body: the "profile" part of a
// multipart form (how the SDKs send it), or the body itself.
func profilePart(contentType string, body []byte) ([]byte, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" {
		return body, nil //nolint:nilerr // not multipart: the body is the profile
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, badRequest(`multipart body has no "profile" part`)
		}
		if err != nil {
			return nil, badRequest("multipart body: %v", err)
		}
		if part.FormName() == "profile" {
			data, err := io.ReadAll(part)
			if err != nil {
				return nil, badRequest("multipart profile part: %v", err)
			}
			return data, nil
		}
	}
}

// fromPprof imports a CPU pprof profile; other profile types are rejected.
func (p *Pusher) fromPprof(data []byte, labels samplebatch.Labels, at time.Time) ([]samplebatch.Sample, error) {
	prof, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, badRequest("parse pprof: %v", err)
	}
	if err := checkCPU(prof); err != nil {
		return nil, err
	}
	if prof.TimeNanos <= 0 {
		prof.TimeNanos = at.UnixNano()
	}
	samples, err := pprofconv.Import(prof, pprofconv.ImportOptions{Labels: labels, Now: p.cfg.Now})
	if err != nil {
		return nil, fmt.Errorf("import pprof: %w", err)
	}
	return samples, nil
}

// checkCPU accepts a profile that has a cpu/nanoseconds sample type, or samples
// counted with a cpu period (what runtime/pprof and the SDKs write).
func checkCPU(p *profile.Profile) error {
	for _, st := range p.SampleType {
		if st.Type == "cpu" && st.Unit == "nanoseconds" {
			return nil
		}
	}
	if p.PeriodType != nil && p.PeriodType.Type == "cpu" {
		return nil
	}
	types := make([]string, 0, len(p.SampleType))
	for _, st := range p.SampleType {
		types = append(types, st.Type+"/"+st.Unit)
	}
	return fmt.Errorf("%w (got %s)", ErrUnsupportedType, strings.Join(types, ", "))
}

// maxTextFrames bounds one folded stack: the sample batch's frames limit.
const maxTextFrames = 1024

// fromText reads folded ("a;b;c 12") or lines ("a;b;c", one sample each) stacks,
// root first.
func fromText(body []byte, lines bool, labels samplebatch.Labels, at time.Time, periodNS int64) ([]samplebatch.Sample, error) {
	ts := at.Truncate(time.Minute).Unix()
	index := map[string]int{}
	var out []samplebatch.Sample
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), len(body)+1)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		stack, v := line, int64(1)
		if !lines {
			i := strings.LastIndexByte(line, ' ')
			if i < 0 {
				return nil, badRequest("folded line %d: want \"a;b;c COUNT\"", n)
			}
			c, err := strconv.ParseInt(line[i+1:], 10, 64)
			if err != nil || c < 0 {
				return nil, badRequest("folded line %d: count %q is not a non-negative integer", n, line[i+1:])
			}
			stack, v = strings.TrimSpace(line[:i]), c
		}
		if v == 0 || stack == "" {
			continue
		}
		frames := strings.Split(stack, ";")
		if len(frames) > maxTextFrames {
			return nil, badRequest("line %d: %d frames, limit %d", n, len(frames), maxTextFrames)
		}
		if i, ok := index[stack]; ok {
			out[i].Value += v
			continue
		}
		index[stack] = len(out)
		out = append(out, samplebatch.Sample{TS: ts, Labels: labels, Frames: frames, Value: v, PeriodNS: periodNS})
	}
	if err := sc.Err(); err != nil {
		return nil, badRequest("read stacks: %v", err)
	}
	if len(out) == 0 {
		return nil, pprofconv.ErrNoSamples
	}
	return out, nil
}

// batchID derives the idempotence key of a push from what identifies it.
func batchID(kind string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s", len(p), p)
	}
	return "pyroscope-" + kind + "-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Magnitudes that tell the unit of a Unix time: Pyroscope accepts seconds,
// milliseconds, microseconds and nanoseconds in from/until.
const (
	maxUnixSeconds = 1e11 // year 5138
	maxUnixMillis  = 1e14
	maxUnixMicros  = 1e17
)

// parseUnixTime reads from/until; empty is now.
func parseUnixTime(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return now, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("%q: want a Unix time (s, ms, µs or ns)", v)
	}
	switch {
	case n < maxUnixSeconds:
		return time.Unix(n, 0), nil
	case n < maxUnixMillis:
		return time.UnixMilli(n), nil
	case n < maxUnixMicros:
		return time.UnixMicro(n), nil
	default:
		return time.Unix(0, n), nil
	}
}
