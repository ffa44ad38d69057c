package queryclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/model"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{"", DefaultBaseURL, false},
		{"127.0.0.1:7070", "http://127.0.0.1:7070", false},
		{"https://agg.example:443", "https://agg.example:443", false},
		{"ftp://x", "", true},
		{"http://", "", true},
	} {
		c, err := New(tc.in, nil)
		if (err != nil) != tc.err {
			t.Errorf("New(%q) error = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err == nil && c.base.String() != tc.want {
			t.Errorf("New(%q) base = %s, want %s", tc.in, c.base, tc.want)
		}
	}
}

func TestSelectionValues(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sel := model.Selection{Service: "api", From: from, To: from.Add(time.Hour),
		Filters: []model.Filter{{Key: "version", Value: "v1"}, {Key: "q", Value: "a=b&c"}}, ProfileType: "alloc_space/bytes"}
	got := SelectionValues(sel, "base_", nil)
	want := url.Values{
		"base_service":      {"api"},
		"base_profile_type": {"alloc_space/bytes"},
		"base_from":         {"2026-01-01T00:00:00Z"},
		"base_to":           {"2026-01-01T01:00:00Z"},
		"base_filter":       {"version=v1", "q=a=b&c"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("SelectionValues = %v, want %v", got, want)
	}
	if got := SelectionValues(model.Selection{}, "", nil); len(got) != 0 {
		t.Fatalf("empty selection encodes as %v", got)
	}
}

func TestAPIError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/top":
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"parameter from: bad"}`))
		case "/api/v1/flame":
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte("upstream down"))
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"no API route"}`))
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = c.Top(ctx, model.Selection{}, 0)
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Message != "parameter from: bad" {
		t.Fatalf("Top error = %v, want APIError 400 with the server's message", err)
	}
	if _, err := c.Flame(ctx, model.Selection{}); err == nil || !strings.Contains(err.Error(), "upstream down") {
		t.Fatalf("Flame error = %v, want the plain-text body", err)
	}
	if _, err := c.Services(ctx, time.Time{}, time.Time{}); !IsNotFound(err) {
		t.Fatalf("Services error = %v, want not found", err)
	}
	if _, err := c.ProfileBytes(ctx, model.Selection{}, "svg"); err == nil {
		t.Fatal("ProfileBytes with format svg: no error")
	}
}
