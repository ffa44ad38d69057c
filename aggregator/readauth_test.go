package aggregator

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// getStatus GETs path with an optional bearer token and cookie; it does not follow
// redirects, so the login redirect is visible.
func getStatus(t *testing.T, base, path, token string, cookie *http.Cookie, accept string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestReadAuth(t *testing.T) {
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ui") })
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ts := startServer(t, be.open(t), Config{Token: "ingest", ReadToken: "reader"}, WithUI(ui))
			for _, tc := range []struct {
				path, token string
				want        int
			}{
				{"/api/v1/services", "", 401},
				{"/api/v1/services", "wrong", 401},
				{"/api/v1/services", "ingest", 401}, // the write role does not read
				{"/api/v1/services", "reader", 200},
				{"/", "", 401},
				{"/", "reader", 200},
				{"/metrics", "", 401},
				{"/metrics", "reader", 200},
				{"/healthz", "", 200},
				{"/readyz", "", 200},
			} {
				if got := getStatus(t, ts.httpURL, tc.path, tc.token, nil, ""); got != tc.want {
					t.Errorf("GET %s token %q: %d, want %d", tc.path, tc.token, got, tc.want)
				}
			}
			if got := getStatus(t, ts.httpURL, "/", "", nil, "text/html"); got != http.StatusSeeOther {
				t.Errorf("browser without token: %d, want a redirect to /login", got)
			}
		})
	}
}

func TestReadAuthLoginAndMetricsOpen(t *testing.T) {
	ts := startServer(t, newMemStore(), Config{ReadToken: "reader", MetricsOpen: true})
	if got := getStatus(t, ts.httpURL, "/metrics", "", nil, ""); got != 200 {
		t.Errorf("metrics open: %d, want 200", got)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(tok string) *http.Response {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, ts.httpURL+"/login",
			strings.NewReader(url.Values{"token": {tok}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post("wrong"); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong login: %d cookies %v", resp.StatusCode, resp.Cookies())
	}
	resp := post("reader")
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 || !resp.Cookies()[0].HttpOnly {
		t.Fatalf("login: %d cookies %v", resp.StatusCode, resp.Cookies())
	}
	if got := getStatus(t, ts.httpURL, "/api/v1/services", "", &http.Cookie{Name: ReadTokenCookie, Value: "forged"}, ""); got != 401 {
		t.Errorf("API with a forged cookie: %d, want 401", got)
	}
	if got := getStatus(t, ts.httpURL, "/api/v1/services", "", resp.Cookies()[0], ""); got != 200 {
		t.Errorf("API with the login cookie: %d, want 200", got)
	}
	if got := getStatus(t, ts.httpURL, "/login", "", nil, "text/html"); got != 200 {
		t.Errorf("login page: %d, want 200", got)
	}
}

func TestReadTokenFileRotation(t *testing.T) {
	old := readTokenFileRecheck
	readTokenFileRecheck = 0
	t.Cleanup(func() { readTokenFileRecheck = old })
	file := filepath.Join(t.TempDir(), "read-token")
	if err := os.WriteFile(file, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, newMemStore(), Config{ReadTokenFile: file})
	if got := getStatus(t, ts.httpURL, "/api/v1/services", "first", nil, ""); got != 200 {
		t.Fatalf("first token: %d", got)
	}
	if err := os.WriteFile(file, []byte("second-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := getStatus(t, ts.httpURL, "/api/v1/services", "first", nil, ""); got != 401 {
		t.Errorf("rotated-out token: %d, want 401", got)
	}
	if got := getStatus(t, ts.httpURL, "/api/v1/services", "second-token", nil, ""); got != 200 {
		t.Errorf("rotated-in token: %d, want 200", got)
	}
	// A briefly empty file (a rewrite in progress) keeps the token in force.
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := getStatus(t, ts.httpURL, "/api/v1/services", "second-token", nil, ""); got != 200 {
		t.Errorf("during rewrite: %d, want 200", got)
	}
	// The query client sends the token.
	ts.client.SetToken("second-token")
	if _, err := ts.client.Services(context.Background(), time.Now().Add(-time.Hour), time.Now()); err != nil {
		t.Errorf("query client with token: %v", err)
	}
}
