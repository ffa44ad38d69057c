package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	h := Handler()
	// The hash index.html uses for app.js, so the immutable case can be asserted.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	m := regexp.MustCompile(`app\.js\?v=([0-9a-f]{12})`).FindStringSubmatch(rec.Body.String())
	if m == nil {
		t.Fatalf("index.html does not reference app.js?v=HASH:\n%s", rec.Body.String())
	}
	jsHash := m[1]

	tests := []struct {
		name, method, path string
		header             map[string]string
		code               int
		ctype              string
		cache              string
		body               string // substring
	}{
		{"index", "GET", "/", nil, 200, "text/html; charset=utf-8", "no-cache", `<canvas id="flame"`},
		{"spa route", "GET", "/some/view", nil, 200, "text/html; charset=utf-8", "no-cache", `<canvas id="flame"`},
		{"spa route with query", "GET", "/?view=diff&service=a", nil, 200, "text/html; charset=utf-8", "no-cache", "fleetprof"},
		{"index.html", "GET", "/index.html", nil, 200, "text/html; charset=utf-8", "no-cache", "fleetprof"},
		{"script unversioned", "GET", "/app.js", nil, 200, "text/javascript; charset=utf-8", "no-cache", "__fleetprof"},
		{"script versioned", "GET", "/app.js?v=" + jsHash, nil, 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "__fleetprof"},
		{"script stale version", "GET", "/app.js?v=000000000000", nil, 200, "text/javascript; charset=utf-8", "no-cache", "__fleetprof"},
		{"css", "GET", "/app.css", nil, 200, "text/css; charset=utf-8", "no-cache", "body"},
		{"missing asset is 404 not html", "GET", "/nope.js", nil, 404, "text/plain; charset=utf-8", "", "not found"},
		{"api path is json 404", "GET", "/api/v1/nothing", nil, 404, "application/json", "", `"error"`},
		{"post refused", "POST", "/", nil, 405, "text/plain; charset=utf-8", "", "method not allowed"},
		{"head", "HEAD", "/", nil, 200, "text/html; charset=utf-8", "no-cache", ""},
		{"path traversal stays inside", "GET", "/../../etc/passwd", nil, 200, "text/html; charset=utf-8", "no-cache", "fleetprof"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.code {
				t.Fatalf("status %d, want %d (body %q)", res.StatusCode, tc.code, body)
			}
			if got := res.Header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("content type %q, want %q", got, tc.ctype)
			}
			if got := res.Header.Get("Cache-Control"); got != tc.cache {
				t.Errorf("cache control %q, want %q", got, tc.cache)
			}
			if !strings.Contains(string(body), tc.body) {
				t.Errorf("body does not contain %q", tc.body)
			}
		})
	}
}

func TestHandlerConditional(t *testing.T) {
	h := Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/app.js", nil))
	etag := rec.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	req := httptest.NewRequest("GET", "/app.js", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Fatalf("status %d with matching If-None-Match, want 304", rec.Code)
	}
}

// TestIndexReferencesEveryAsset catches an asset renamed without updating index.html.
func TestIndexReferencesEveryAsset(t *testing.T) {
	s, err := load(embedded)
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range s.files {
		if name == "/index.html" {
			continue
		}
		ref := strings.TrimPrefix(name, "/") + "?v=" + a.hash
		if !strings.Contains(string(s.index.data), ref) {
			t.Errorf("index.html does not reference %s", ref)
		}
	}
}

// TestSelfContained: the UI must work offline (air-gapped clusters), so no asset may
// load anything from another origin.
func TestSelfContained(t *testing.T) {
	s, err := load(embedded)
	if err != nil {
		t.Fatal(err)
	}
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//|fetch\(\s*["']https?:`)
	for name, a := range s.files {
		if m := external.Find(a.data); m != nil {
			t.Errorf("%s references another origin: %q", name, m)
		}
	}
}
