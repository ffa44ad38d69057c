package ui

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/fleetprof/fleetprof/aggregator"
)

// TestBrowserLogin: with a read token, a browser logs in at /login: a wrong token is
// refused, and after the right one the UI loads its data (its API calls carry the
// login cookie).
func TestBrowserLogin(t *testing.T) {
	setup(t, false)
	srv, err := aggregator.New(aggregator.Config{ReadToken: "reader"}, env.store, nil,
		aggregator.WithUI(Handler()), aggregator.WithClock(func() time.Time { return testNow }))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	ctx, cancel := chromedp.NewContext(env.browser)
	t.Cleanup(cancel)
	// The first action creates the tab; it must not carry the timeout.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(viewW, viewH)); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 30*time.Second)
	t.Cleanup(tcancel)
	p := &page{t: t, ctx: tctx}
	p.do(chromedp.Navigate(hs.URL + "/login"))
	until(p, `!!document.getElementById("token")`)
	login := func(tok string) {
		evalJS[bool](p, `document.getElementById("token").value = `+"`"+tok+"`"+`; true`)
		p.do(chromedp.Click(chromedp.CSS(`#login`)))
	}
	login("wrong")
	until(p, `document.body.textContent.includes("wrong token")`)
	login("reader")
	until(p, `location.pathname !== "/login"`)
	until(p, `["ready","error","empty"].includes(document.body.dataset.status)`)
	if got := evalJS[string](p, `document.body.dataset.status`); got != "ready" {
		t.Fatalf("after login the UI is %q, want ready", got)
	}
}

// until evaluates expr until it is true, across navigations (during which evaluation
// fails), or the page's deadline.
func until(p *page, expr string) {
	p.t.Helper()
	for i := 0; i < 100 && p.ctx.Err() == nil; i++ {
		if ok, err := chromedp.Run(p.ctx, chromedp.Evaluate[bool](expr)); err == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	where, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`location.href + " " + document.body.textContent`))
	p.t.Fatalf("waiting for %s: %v (page %s)", expr, p.ctx.Err(), where)
}
