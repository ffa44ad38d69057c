package queryclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/model"
)

// DefaultBaseURL is the aggregator's default HTTP address.
const DefaultBaseURL = "http://127.0.0.1:7070"

// maxBody bounds a response read into memory (profiles can be large, not unbounded).
const maxBody = 1 << 30

// Client calls one aggregator. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	hc    *http.Client
	token string
}

// SetToken makes every request carry "Authorization: Bearer token" (the
// aggregator's read token); "" sends none.
func (c *Client) SetToken(token string) { c.token = token }

// New returns a client for the aggregator at baseURL ("http://host:port"; a bare
// "host:port" means http). hc nil means a client with a 2-minute timeout.
func New(baseURL string, hc *http.Client) (*Client, error) {
	if baseURL == "" {
		baseURL = DefaultBaseURL
	}
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("aggregator url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("aggregator url %q: want http(s)://host:port", baseURL)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	return &Client{base: u, hc: hc}, nil
}

// APIError is a non-2xx answer; Message is the server's {"error": ...} text.
type APIError struct {
	StatusCode int
	Message    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("aggregator: %s (HTTP %d)", e.Message, e.StatusCode)
}

// SelectionValues encodes sel as query parameters, each name prefixed (e.g. "base_").
// Zero times are left out (the server defaults to the last hour).
func SelectionValues(sel model.Selection, prefix string, v url.Values) url.Values {
	if v == nil {
		v = url.Values{}
	}
	if sel.Service != "" {
		v.Set(prefix+"service", sel.Service)
	}
	if sel.ProfileType != "" {
		v.Set(prefix+"profile_type", sel.ProfileType)
	}
	if !sel.From.IsZero() {
		v.Set(prefix+"from", sel.From.Format(time.RFC3339Nano))
	}
	if !sel.To.IsZero() {
		v.Set(prefix+"to", sel.To.Format(time.RFC3339Nano))
	}
	for _, f := range sel.Filters {
		v.Add(prefix+"filter", f.Key+"="+f.Value)
	}
	return v
}

// Raw GETs /api/v1/<path> and returns the body and its content type.
func (c *Client) Raw(ctx context.Context, path string, q url.Values) ([]byte, string, error) {
	return c.do(ctx, http.MethodGet, path, q, nil)
}

// do sends one request to /api/v1/<path> (body, if any, as JSON) and returns the
// answer's body and content type; a non-2xx answer is an *APIError.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte) ([]byte, string, error) {
	u := c.base.JoinPath("/api/v1/", path)
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, "", fmt.Errorf("query %s: %w", path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("query %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, "", fmt.Errorf("query %s: read body: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return nil, "", &APIError{StatusCode: resp.StatusCode, Message: msg}
	}
	return data, resp.Header.Get("Content-Type"), nil
}

// Analyze asks the aggregator to run its analyzer now (POST /api/v1/analyze).
func (c *Client) Analyze(ctx context.Context, ar model.AnalyzeRequest) (*model.AnalyzeResponse, error) {
	body, err := json.Marshal(ar)
	if err != nil {
		return nil, fmt.Errorf("encode analyze request: %w", err)
	}
	data, _, err := c.do(ctx, http.MethodPost, "analyze", nil, body)
	if err != nil {
		return nil, err
	}
	var out model.AnalyzeResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("query analyze: decode answer: %w", err)
	}
	return &out, nil
}

// Get GETs /api/v1/<path> and decodes the JSON answer into out.
func (c *Client) Get(ctx context.Context, path string, q url.Values, out any) error {
	body, _, err := c.Raw(ctx, path, q)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("query %s: decode answer: %w", path, err)
	}
	return nil
}

func timeValues(from, to time.Time) url.Values {
	return SelectionValues(model.Selection{From: from, To: to}, "", nil)
}

// Services lists services with samples in [from, to).
func (c *Client) Services(ctx context.Context, from, to time.Time) ([]string, error) {
	var out struct {
		Services []string `json:"services"`
	}
	err := c.Get(ctx, "services", timeValues(from, to), &out)
	return out.Services, err
}

// LabelKeys lists the label keys present in sel.
func (c *Client) LabelKeys(ctx context.Context, sel model.Selection) ([]string, error) {
	var out struct {
		Keys []string `json:"keys"`
	}
	err := c.Get(ctx, "labels", SelectionValues(sel, "", nil), &out)
	return out.Keys, err
}

// LabelValues lists the values of one label in sel.
func (c *Client) LabelValues(ctx context.Context, sel model.Selection, key string) ([]string, error) {
	var out struct {
		Values []string `json:"values"`
	}
	err := c.Get(ctx, "label/"+url.PathEscape(key)+"/values", SelectionValues(sel, "", nil), &out)
	return out.Values, err
}

// Top returns the top functions of sel by self samples (limit 0: server default).
func (c *Client) Top(ctx context.Context, sel model.Selection, limit int) (*model.Top, error) {
	q := SelectionValues(sel, "", nil)
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out model.Top
	if err := c.Get(ctx, "top", q, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Flame returns the flame graph of sel.
func (c *Client) Flame(ctx context.Context, sel model.Selection) (*model.FlameNode, error) {
	var out model.FlameNode
	if err := c.Get(ctx, "flame", SelectionValues(sel, "", nil), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Profile returns the stacks of sel.
func (c *Client) Profile(ctx context.Context, sel model.Selection) (*model.Profile, error) {
	var out model.Profile
	if err := c.Get(ctx, "profile", SelectionValues(sel, "", nil), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ProfileBytes exports sel as "pprof" (gzipped profile.proto) or "folded" text.
func (c *Client) ProfileBytes(ctx context.Context, sel model.Selection, format string) ([]byte, error) {
	if format != "pprof" && format != "folded" {
		return nil, fmt.Errorf("profile format %q: want pprof or folded", format)
	}
	q := SelectionValues(sel, "", nil)
	q.Set("format", format)
	body, _, err := c.Raw(ctx, "profile", q)
	return body, err
}

// Diff compares two selections (movers 0: server default).
func (c *Client) Diff(ctx context.Context, base, cmp model.Selection, movers int) (*model.Diff, error) {
	q := SelectionValues(base, "base_", nil)
	SelectionValues(cmp, "cmp_", q)
	if movers > 0 {
		q.Set("movers", strconv.Itoa(movers))
	}
	var out model.Diff
	if err := c.Get(ctx, "diff", q, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// IsNotFound reports whether err is a 404 from the server (e.g. an endpoint this
// aggregator does not have).
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.StatusCode == http.StatusNotFound
}

// Series returns function's inclusive share of sel per step (step 0: server default).
func (c *Client) Series(ctx context.Context, sel model.Selection, function string, step time.Duration) ([]model.SeriesPoint, error) {
	q := SelectionValues(sel, "", nil)
	q.Set("function", function)
	if step > 0 {
		q.Set("step", step.String())
	}
	var out struct {
		Points []model.SeriesPoint `json:"points"`
	}
	err := c.Get(ctx, "series", q, &out)
	return out.Points, err
}

// Versions lists the versions of service seen in [from, to) (zero times: last hour).
func (c *Client) Versions(ctx context.Context, service string, from, to time.Time) ([]model.VersionSpan, error) {
	q := timeValues(from, to)
	q.Set("service", service)
	var out struct {
		Versions []model.VersionSpan `json:"versions"`
	}
	err := c.Get(ctx, "versions", q, &out)
	return out.Versions, err
}

// Findings lists stored analyzer findings, newest first.
func (c *Client) Findings(ctx context.Context, fq model.FindingsQuery) ([]model.FindingRecord, error) {
	return c.findings(ctx, "findings", findingsValues(fq))
}

// Opportunities returns the latest stored opportunities (kind ignored), largest
// estimated saving first.
func (c *Client) Opportunities(ctx context.Context, fq model.FindingsQuery) ([]model.FindingRecord, error) {
	fq.Kind = ""
	return c.findings(ctx, "opportunities", findingsValues(fq))
}

func findingsValues(fq model.FindingsQuery) url.Values {
	q := timeValues(fq.From, fq.To)
	if fq.Kind != "" {
		q.Set("kind", fq.Kind)
	}
	if fq.Service != "" {
		q.Set("service", fq.Service)
	}
	if fq.Limit > 0 {
		q.Set("limit", strconv.Itoa(fq.Limit))
	}
	return q
}

func (c *Client) findings(ctx context.Context, route string, q url.Values) ([]model.FindingRecord, error) {
	var out struct {
		Findings []model.FindingRecord `json:"findings"`
	}
	err := c.Get(ctx, route, q, &out)
	return out.Findings, err
}
