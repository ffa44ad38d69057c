package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed web/static
var embedded embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	name  string
	ctype string
	data  []byte
	etag  string // strong ETag: content hash
	hash  string // short content hash used as the ?v= cache-busting parameter
}

// site is the set of assets; index.html references the others with ?v=HASH so they
// can be cached forever while index.html itself is always revalidated.
type site struct {
	files map[string]*asset
	index *asset
	mod   time.Time
}

// Handler serves the UI: embedded assets by path, and index.html for any other GET
// path (the application keeps its state in the query string).
func Handler() http.Handler {
	s, err := load(embedded)
	if err != nil {
		// The assets are compiled in; failing here means a broken build.
		panic(fmt.Sprintf("ui: load embedded assets: %v", err))
	}
	return s
}

func load(fsys fs.FS) (*site, error) {
	root, err := fs.Sub(fsys, "web/static")
	if err != nil {
		return nil, fmt.Errorf("open static dir: %w", err)
	}
	s := &site{files: map[string]*asset{}, mod: time.Unix(0, 0)}
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(root, p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		s.files["/"+p] = newAsset("/"+p, data)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk static dir: %w", err)
	}
	idx, ok := s.files["/index.html"]
	if !ok {
		return nil, fmt.Errorf("index.html missing")
	}
	html := idx.data
	for name, a := range s.files {
		if name == "/index.html" {
			continue
		}
		// Absolute paths: index.html is also served for deep paths (SPA fallback).
		html = bytes.ReplaceAll(html, []byte(`"`+name+`"`), []byte(`"`+name+"?v="+a.hash+`"`))
	}
	s.index = newAsset("/index.html", html)
	s.files["/index.html"] = s.index
	return s, nil
}

func newAsset(name string, data []byte) *asset {
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) { // don't depend on the host's mime.types for the basics
	case ".html":
		ct = "text/html; charset=utf-8"
	case ".js":
		ct = "text/javascript; charset=utf-8"
	case ".css":
		ct = "text/css; charset=utf-8"
	case ".svg":
		ct = "image/svg+xml"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	return &asset{name: name, ctype: ct, data: data, etag: `"` + h[:32] + `"`, hash: h[:12]}
}

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := path.Clean("/" + r.URL.Path)
	if strings.HasPrefix(p, "/api/") || p == "/api" {
		// The aggregator routes /api/ itself; reaching here means a wrong path, and
		// answering with HTML would confuse API clients.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "no API route " + p})
		return
	}
	a, ok := s.files[p]
	switch {
	case ok:
	case path.Ext(p) != "":
		// A missing asset must not come back as index.html: the browser would try to
		// run HTML as a script and show nothing useful.
		http.NotFound(w, r)
		return
	default:
		a = s.index
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", a.etag)
	if a != s.index && r.URL.Query().Get("v") == a.hash {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	if a == s.index {
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "same-origin")
	}
	http.ServeContent(w, r, "", s.mod, bytes.NewReader(a.data))
}
