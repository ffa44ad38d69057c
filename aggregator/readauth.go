package aggregator

import (
	"crypto/subtle"
	"fmt"
	"html"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/otlp"
)

// ReadTokenCookie carries the read token of a browser that logged in at /login.
const ReadTokenCookie = "fleetprof_read_token" //nolint:gosec // a cookie name, not a credential

// readTokenFileRecheck is how often a read token file is re-stat'ed, so a rotated
// secret takes effect without a restart while requests do not stat every time.
var readTokenFileRecheck = time.Second

// readAuth holds the read token: fixed, or from a file reread when it changes.
type readAuth struct {
	fixed string
	file  string

	mu      sync.Mutex
	checked time.Time
	mtime   time.Time
	size    int64
	token   string
}

func newReadAuth(fixed, file string) (*readAuth, error) {
	a := &readAuth{fixed: fixed, file: file}
	if file != "" {
		if _, err := a.current(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// enabled reports whether reads need a token.
func (a *readAuth) enabled() bool { return a.fixed != "" || a.file != "" }

// current returns the token in force, rereading the file when it changed. A file
// that cannot be read or is empty keeps the previous token (rotation by rewrite).
func (a *readAuth) current() (string, error) {
	if a.file == "" {
		return a.fixed, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if a.token != "" && now.Sub(a.checked) < readTokenFileRecheck {
		return a.token, nil
	}
	a.checked = now
	fi, err := os.Stat(a.file)
	if err != nil {
		if a.token != "" {
			return a.token, nil
		}
		return "", fmt.Errorf("read token file: %w", err)
	}
	if a.token != "" && fi.ModTime().Equal(a.mtime) && fi.Size() == a.size {
		return a.token, nil
	}
	b, err := os.ReadFile(a.file)
	t := strings.TrimSpace(string(b))
	if err != nil || t == "" {
		if a.token != "" {
			return a.token, nil
		}
		return "", fmt.Errorf("read token file %s: empty or unreadable", a.file)
	}
	a.token, a.mtime, a.size = t, fi.ModTime(), fi.Size()
	return t, nil
}

// ok reports whether r carries the read token (bearer header or login cookie).
func (a *readAuth) ok(r *http.Request) bool {
	want, err := a.current()
	if err != nil || want == "" {
		return false
	}
	got, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found {
		c, err := r.Cookie(ReadTokenCookie)
		if err != nil {
			return false
		}
		got = c.Value
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// open paths answer without a token: Kubernetes probes, and /metrics when chosen.
func (s *Server) openPath(p string) bool {
	// Pyroscope and OTLP push paths check the ingest token themselves:
	// senders hold that one, not the read token.
	return p == "/healthz" || p == "/readyz" || p == "/login" || (p == "/metrics" && s.cfg.MetricsOpen) ||
		p == "/ingest" || strings.HasPrefix(p, "/push.v1.PusherService/") || p == otlp.HTTPPath
}

// requireRead wraps h: with a read token configured, everything but the open paths
// needs it. API calls get a JSON 401; browsers are sent to the login page.
func (s *Server) requireRead(h http.Handler) http.Handler {
	if !s.readAuth.enabled() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.openPath(r.URL.Path) || s.readAuth.ok(r) {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="fleetprof"`)
		if r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html") {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "read token required (Authorization: Bearer <token>)"})
	})
}

const loginPage = `<!doctype html><html><head><meta charset="utf-8"><title>fleetprof login</title></head>
<body><form method="post" action="/login"><p>%s</p>
<label>Read token <input id="token" name="token" type="password" autofocus></label>
<button id="login" type="submit">Log in</button></form></body></html>`

// login serves the token form (GET) and checks it (POST): a right token is kept in
// an HttpOnly cookie so the UI's API calls carry it.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if r.Method != http.MethodPost {
		fmt.Fprintf(w, loginPage, "")
		return
	}
	tok := r.PostFormValue("token")
	req := r.Clone(r.Context())
	req.Header.Set("Authorization", "Bearer "+tok)
	if tok == "" || !s.readAuth.ok(req) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, loginPage, html.EscapeString("wrong token"))
		return
	}
	// Secure only with TLS: over plain HTTP a Secure cookie would never come back.
	http.SetCookie(w, &http.Cookie{ //nolint:gosec // Secure follows TLS, see above
		Name: ReadTokenCookie, Value: tok, Path: "/", HttpOnly: true,
		Secure: s.tls != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
