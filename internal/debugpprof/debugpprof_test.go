package debugpprof_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fleetprof/fleetprof/internal/debugpprof"
)

func TestRegister(t *testing.T) {
	for _, c := range []struct {
		name     string
		on       bool
		path     string
		want     int
		wantBody string
	}{
		{"on: goroutines", true, "/debug/pprof/goroutine?debug=1", http.StatusOK, "goroutine profile"},
		{"on: index", true, "/debug/pprof/", http.StatusOK, "heap"},
		{"off", false, "/debug/pprof/goroutine?debug=1", http.StatusNotFound, "start with --pprof"},
	} {
		t.Run(c.name, func(t *testing.T) {
			mux := http.NewServeMux()
			debugpprof.Register(mux, c.on, "profiling endpoints are off: start with --pprof")
			srv := httptest.NewServer(mux)
			defer srv.Close()
			resp, err := http.Get(srv.URL + c.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.want || !strings.Contains(string(body), c.wantBody) {
				t.Errorf("GET %s: %d %.80q, want %d containing %q", c.path, resp.StatusCode, body, c.want, c.wantBody)
			}
		})
	}
}
