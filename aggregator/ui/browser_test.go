package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/fleetprof/fleetprof/aggregator"
	"github.com/fleetprof/fleetprof/aggregator/storage"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// The browser tests drive the real page in headless Chromium against a real
// aggregator (embedded ClickHouse) holding known data:
//
//	version v1 (baseline), T0+10m: main;serve;handle;parse 500, …;render 300, main;serve;gc 200
//	version v2 (comparison), T0+40m: …;parse 600, …;render 300, main;serve;gc 100
//
// so over the hour the flame graph's root has 2000 samples, parse 1100, render 600,
// gc 300, and from v1 to v2 parse's share rises 50% → 60% (more), gc's falls
// 20% → 10% (less) and render's stays 30%.

const chromiumPath = "/usr/bin/chromium"

// The first screen the tests check against, a common desktop size.
const viewW, viewH = 1600, 1000

var (
	t0      = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	testNow = t0.Add(time.Hour) // the server's clock: "now-1h" is T0
	service = "checkout"
)

// env is the shared test environment: one chDB engine per process, one browser.
var env struct {
	once     sync.Once
	skip     string
	err      error
	url      string
	store    *storage.Store
	srv      *httptest.Server
	browser  context.Context
	cancel   []func()
	artifact string
}

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(env.cancel) - 1; i >= 0; i-- {
		env.cancel[i]()
	}
	os.Exit(code)
}

// setup starts the browser and, unless storeless, the aggregator with test data.
// parseFile and parseLine are the location the test data gives frame parse.
const (
	parseFile = "/srv/shop/parse.py"
	parseLine = 12
)

func setup(tb testing.TB, storeless bool) {
	tb.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		testenv.Skip(tb, testenv.MissingTool, "headless Chromium not installed at %s (run make setup): %v", chromiumPath, err)
	}
	env.once.Do(func() { env.err = startBrowser() })
	if env.err != nil {
		tb.Fatalf("start browser: %v", env.err)
	}
	if storeless {
		return
	}
	if env.url == "" && env.skip == "" {
		if err := startServer(); err != nil {
			if errors.Is(err, storage.ErrEngineNotInstalled) {
				env.skip = "chDB library not installed (run scripts/fetch-chdb.sh or make setup): " + err.Error()
			} else {
				tb.Fatalf("start aggregator: %v", err)
			}
		}
	}
	if env.skip != "" {
		testenv.Skip(tb, testenv.MissingTool, "%s", env.skip)
	}
}

func startBrowser() error {
	dir, err := os.MkdirTemp("", "fleetprof-ui-chromium-")
	if err != nil {
		return err
	}
	env.cancel = append(env.cancel, func() { os.RemoveAll(dir) })
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("force-device-scale-factor", "1"),
		chromedp.WindowSize(viewW, viewH),
		chromedp.UserDataDir(dir),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	env.cancel = append(env.cancel, acancel, bcancel)
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		return err
	}
	env.browser = bctx
	return nil
}

func startServer() error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "fleetprof-ui-store-")
	if err != nil {
		return err
	}
	env.cancel = append(env.cancel, func() { os.RemoveAll(dir) })
	st, err := storage.Open(ctx, storage.Config{URI: "embedded:" + dir})
	if err != nil {
		return err
	}
	env.cancel = append(env.cancel, func() { st.Close() })
	env.store = st
	row := func(ts time.Time, version, host string, value int64, frames ...string) samplebatch.Sample {
		return samplebatch.Sample{TS: ts.Unix(), Value: value, PeriodNS: 10_101_010, Frames: frames,
			Labels: samplebatch.Labels{Service: service, Version: version, Host: host, Namespace: "shop", Pod: "checkout-" + version,
				Container: "app", Comm: "checkout", PID: 42, Extra: []samplebatch.Label{{Key: "region", Value: "eu"}}}}
	}
	b1, b2 := t0.Add(10*time.Minute), t0.Add(40*time.Minute)
	// parse has a source location, as a Python frame would.
	located := func(s samplebatch.Sample) samplebatch.Sample {
		s.Locations = []string{"", "", "", samplebatch.Location(parseFile, parseLine)}
		return s
	}
	samples := []samplebatch.Sample{
		located(row(b1, "v1", "h1", 500, "main", "serve", "handle", "parse")),
		row(b1, "v1", "h1", 300, "main", "serve", "handle", "render"),
		row(b1, "v1", "h1", 200, "main", "serve", "gc"),
		located(row(b2, "v2", "h2", 600, "main", "serve", "handle", "parse")),
		row(b2, "v2", "h2", 300, "main", "serve", "handle", "render"),
		row(b2, "v2", "h2", 100, "main", "serve", "gc"),
	}
	samples = append(samples, deepWide(b1)...)
	samples = append(samples, sandwichRows(b1)...)
	data, err := samplebatch.Encode(samples)
	if err != nil {
		return err
	}
	batch, err := samplebatch.Decode(data, samplebatch.Limits{Now: func() time.Time { return testNow }})
	if err != nil {
		return err
	}
	if _, _, err := st.Ingest(ctx, "ui-test-batch-1", batch); err != nil {
		return err
	}
	finding, _ := json.Marshal(map[string]any{
		"kind": "regression", "service": service, "function": "parse",
		"before": map[string]any{"value": 0.5, "lo": 0.48, "hi": 0.52}, "after": map[string]any{"value": 0.6, "lo": 0.58, "hi": 0.62},
		"absolute_change": 0.1, "relative_change": 0.2, "p_value": 1e-6,
		"change_time": t0.Add(30 * time.Minute).Format(time.RFC3339), "window_start": t0.Format(time.RFC3339),
		"window_end": testNow.Format(time.RFC3339), "version_before": "v1", "version_after": "v2",
		"first_seen": t0.Add(40 * time.Minute).Format(time.RFC3339), "last_seen": testNow.Format(time.RFC3339),
		"resolution": map[string]any{"title": "Revert slow parser", "body": "## Why\nparse got **20%** slower in `v2`.\n- revert PR #7"},
	})
	if err := st.PutFindings(ctx, []model.FindingRecord{{ID: "f-parse", Kind: "regression", Service: service, Created: testNow, Body: finding}}); err != nil {
		return err
	}
	if err := st.PutFindings(ctx, append(opportunityRecords(testNow), gradualRecord(testNow), selfRecord(testNow))); err != nil {
		return err
	}
	srv, err := aggregator.New(aggregator.Config{}, st, nil, aggregator.WithUI(Handler()), aggregator.WithClock(func() time.Time { return testNow }))
	if err != nil {
		return err
	}
	env.srv = httptest.NewServer(srv.Handler())
	env.cancel = append(env.cancel, env.srv.Close)
	env.url = env.srv.URL
	return nil
}

// page is one browser tab on the test server.
type page struct {
	t         testing.TB
	ctx       context.Context
	artifacts string // screenshot directory
}

func openPage(t testing.TB, path string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(env.browser)
	t.Cleanup(cancel)
	tctx, tcancel := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(tcancel)
	p := &page{t: t, ctx: tctx}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(viewW, viewH)); err != nil {
		t.Fatalf("set viewport: %v", err)
	}
	p.do(chromedp.Navigate(env.url + path))
	p.waitIdle()
	return p
}

func (p *page) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		p.screenshot("failed")
		p.t.Fatalf("browser: %v", err)
	}
}

// waitIdle waits until the current view finished loading (ready, empty or error).
func (p *page) waitIdle() {
	p.t.Helper()
	p.waitFor(`["ready","error","empty"].includes(document.body.dataset.status)`)
	if msg := evalJS[string](p, `document.getElementById('status').textContent`); strings.HasPrefix(msg, "UI error") {
		p.screenshot("ui-error")
		p.t.Fatalf("the page reported a script error: %s", msg)
	}
}

func (p *page) waitFor(expr string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		p.screenshot("timeout")
		p.t.Fatalf("waiting for %s: %v (status %q)", expr, err, evalJS[string](p, `document.getElementById('status').textContent`))
	}
}

func evalJS[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func evalAwait[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// screenshot saves a PNG of the page under $FLEETPROF_ARTIFACTS (default a temp dir).
func (p *page) screenshot(name string) {
	p.t.Helper()
	if p.artifacts == "" {
		p.artifacts = os.Getenv("FLEETPROF_ARTIFACTS")
		if p.artifacts == "" {
			p.artifacts = filepath.Join(p.t.TempDir(), "artifacts")
		}
	}
	artifactsDir := p.artifacts
	if err := os.MkdirAll(artifactsDir, 0o755); err != nil {
		p.t.Errorf("artifacts dir: %v", err)
		return
	}
	png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return
	}
	file := filepath.Join(artifactsDir, strings.NewReplacer("/", "_", " ", "_").Replace(p.t.Name())+"-"+name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		p.t.Errorf("write screenshot: %v", err)
		return
	}
	p.t.Logf("screenshot: %s", file)
}

// rect is one drawn flame graph frame, from window.__fleetprof.layout().
type rect struct {
	Name        string  `json:"name"`
	Depth       int     `json:"depth"`
	X           float64 `json:"x"`
	Width       float64 `json:"width"`
	Y           float64 `json:"y"`
	Value       float64 `json:"value"`
	Highlighted bool    `json:"highlighted"`
	Kind        string  `json:"kind"`
}

func byName(rs []rect) map[string]rect {
	m := map[string]rect{}
	for _, r := range rs {
		m[r.Name] = r
	}
	return m
}

func (p *page) clickFrame(canvasID string, r rect) {
	p.t.Helper()
	type box struct{ Left, Top float64 }
	b := evalJS[box](p, fmt.Sprintf(`(() => { const r = document.getElementById(%q).getBoundingClientRect(); return {Left: r.left, Top: r.top}; })()`, canvasID))
	p.do(chromedp.MouseClickXY(b.Left+r.X+r.Width/2, b.Top+r.Y+8))
}

func (p *page) hoverFrame(canvasID string, r rect) {
	p.t.Helper()
	type box struct{ Left, Top float64 }
	b := evalJS[box](p, fmt.Sprintf(`(() => { const r = document.getElementById(%q).getBoundingClientRect(); return {Left: r.left, Top: r.top}; })()`, canvasID))
	p.do(chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, b.Left+r.X+r.Width/2, b.Top+r.Y+8))
}

func (p *page) setInput(id, value string) {
	p.t.Helper()
	evalJS[chromedp.Void](p, fmt.Sprintf(`(() => { const e = document.getElementById(%q); e.value = %q; e.dispatchEvent(new Event('input', {bubbles: true})); })()`, id, value))
}

func sel(extra string) string {
	return "/?service=" + service + extra
}

func TestBrowserFlame(t *testing.T) {
	setup(t, false)
	p := openPage(t, sel(""))
	defer p.screenshot("final")
	if st := evalJS[string](p, `document.body.dataset.status`); st != "ready" {
		t.Fatalf("status %q: %s", st, evalJS[string](p, `document.getElementById('status').textContent`))
	}
	width := evalJS[float64](p, `document.getElementById('flame').clientWidth`)
	rs := byName(evalJS[[]rect](p, `window.__fleetprof.layout()`))
	p.screenshot("flame")
	want := map[string]float64{"root": 2000, "main": 2000, "serve": 2000, "handle": 1700, "parse": 1100, "render": 600, "gc": 300}
	for name, v := range want {
		r, ok := rs[name]
		if !ok {
			t.Errorf("frame %s not drawn; drawn: %v", name, rs)
			continue
		}
		if exp := v / 2000 * width; math.Abs(r.Width-exp) > 1 {
			t.Errorf("frame %s is %.1f px wide, want %.1f (%v of 2000 samples)", name, r.Width, exp, v)
		}
	}
	// Top-down (icicle) by default: the root is the first row.
	if rs["root"].Y != 0 || rs["parse"].Y <= 0 {
		t.Errorf("default (top-down): root y %.0f, parse y %.0f, want root on the first row", rs["root"].Y, rs["parse"].Y)
	}
	if rs["parse"].X < rs["render"].X == false {
		t.Errorf("children are not laid out by name: parse x %.0f, render x %.0f", rs["parse"].X, rs["render"].X)
	}

	// Hovering shows the file and first line, total and self samples with their shares.
	p.hoverFrame("flame", rs["parse"])
	p.waitFor(`!document.getElementById('tooltip').hidden`)
	if tip := evalJS[string](p, `document.getElementById('tooltip').textContent`); tip != "parse"+samplebatch.Location(parseFile, parseLine)+"total 1,100 (55.0%)self 1,100 (55.0%)click: zoom · right-click or S: sandwich view" {
		t.Errorf("tooltip %q", tip)
	}
	p.screenshot("tooltip")

	// Click zooms: handle fills the width, its parents stay, gc (a sibling) is gone.
	p.clickFrame("flame", rs["handle"])
	p.waitFor(`window.__fleetprof.state().zoom === 'root;main;serve;handle'`)
	zs := byName(evalJS[[]rect](p, `window.__fleetprof.layout()`))
	p.screenshot("zoomed")
	if math.Abs(zs["handle"].Width-width) > 1 {
		t.Errorf("zoomed handle is %.1f px wide, want %.1f", zs["handle"].Width, width)
	}
	if exp := 1100.0 / 1700 * width; math.Abs(zs["parse"].Width-exp) > 1 {
		t.Errorf("zoomed parse is %.1f px wide, want %.1f", zs["parse"].Width, exp)
	}
	if _, ok := zs["gc"]; ok {
		t.Error("gc still drawn after zooming into handle")
	}
	if loc := evalJS[string](p, `location.search`); !strings.Contains(loc, "zoom=root%3Bmain%3Bserve%3Bhandle") {
		t.Errorf("zoom not in URL: %s", loc)
	}
	if c := evalJS[string](p, `document.getElementById('crumbs').textContent`); c != "root › main › serve › handle" {
		t.Errorf("breadcrumb %q", c)
	}
	// The breadcrumb goes back.
	p.do(chromedp.Click(chromedp.CSS(`#crumbs a[data-i="0"]`)))
	p.waitFor(`!window.__fleetprof.state().zoom`)
	if n := len(evalJS[[]rect](p, `window.__fleetprof.layout()`)); n != 7 {
		t.Errorf("%d frames after zooming out, want 7", n)
	}

	// Search highlights matching frames and reports their share.
	p.setInput("search", "render")
	p.waitFor(`document.getElementById('search-info').textContent.includes('30.0%')`)
	for _, r := range evalJS[[]rect](p, `window.__fleetprof.layout()`) {
		if r.Highlighted != (r.Name == "render") {
			t.Errorf("frame %s highlighted=%v with search 'render'", r.Name, r.Highlighted)
		}
	}
	p.screenshot("search")

	// The toggle turns it bottom-up: the root is the last row.
	p.do(chromedp.Click(chromedp.CSS(`#icicle`)))
	p.waitFor(`window.__fleetprof.state().icicle === '0' && window.__fleetprof.layout().some(r => r.name === 'root' && r.y > 0)`)
	if is := byName(evalJS[[]rect](p, `window.__fleetprof.layout()`)); is["root"].Y <= is["parse"].Y {
		t.Errorf("bottom-up: root y %.0f not below parse y %.0f", is["root"].Y, is["parse"].Y)
	}

	// The state survives a reload from the URL (shareable views).
	p.do(chromedp.Reload())
	p.waitIdle()
	p.waitFor(`document.getElementById('search').value === 'render' && !document.getElementById('icicle').checked`)
	if href := evalJS[string](p, `document.getElementById('download').href`); !strings.Contains(href, "/api/v1/profile?") || !strings.Contains(href, "format=pprof") || !strings.Contains(href, "service=checkout") {
		t.Errorf("download link %q", href)
	} else {
		res, err := http.Get(href)
		if err != nil {
			t.Fatalf("download pprof: %v", err)
		}
		defer res.Body.Close()
		head := make([]byte, 2)
		if _, err := io.ReadFull(res.Body, head); err != nil || res.StatusCode != 200 || head[0] != 0x1f || head[1] != 0x8b {
			t.Errorf("download pprof: status %d, first bytes %x (%v), want 200 and gzip", res.StatusCode, head, err)
		}
	}
}

func TestBrowserFilter(t *testing.T) {
	setup(t, false)
	p := openPage(t, sel("&f="+url.QueryEscape("version=v1")))
	defer p.screenshot("final")
	rs := byName(evalJS[[]rect](p, `window.__fleetprof.layout()`))
	width := evalJS[float64](p, `document.getElementById('flame').clientWidth`)
	if exp := 500.0 / 1000 * width; math.Abs(rs["parse"].Width-exp) > 1 {
		t.Errorf("with version=v1, parse is %.1f px wide, want %.1f", rs["parse"].Width, exp)
	}
	if c := evalJS[string](p, `document.getElementById('filters').textContent`); !strings.Contains(c, "version=v1") {
		t.Errorf("filter chip missing: %q", c)
	}
	// The label picker offers the labels of the data, including extra ones.
	p.waitFor(`[...document.getElementById('fkey').options].some(o => o.value === 'region')`)
}

func TestBrowserDiff(t *testing.T) {
	setup(t, false)
	p := openPage(t, sel("&view=diff&bf="+url.QueryEscape("version=v1")+"&cf="+url.QueryEscape("version=v2")))
	defer p.screenshot("final")
	if st := evalJS[string](p, `document.body.dataset.status`); st != "ready" {
		t.Fatalf("status %q: %s", st, evalJS[string](p, `document.getElementById('status').textContent`))
	}
	rs := byName(evalJS[[]rect](p, `window.__fleetprof.diffLayout()`))
	for name, kind := range map[string]string{"parse": "more", "handle": "more", "gc": "less", "render": "same", "root": "same"} {
		if rs[name].Kind != kind {
			t.Errorf("diff frame %s is %q, want %q", name, rs[name].Kind, kind)
		}
	}
	movers := evalJS[string](p, `document.getElementById('movers').tBodies[0].textContent`)
	if !strings.Contains(movers, "parse") || !strings.Contains(movers, "+10.0%") {
		t.Errorf("movers table %q lacks parse +10.0%%", movers)
	}
	if l := evalJS[string](p, `document.querySelector('#view-diff .legend').textContent`); !strings.Contains(l, "more") || !strings.Contains(l, "less") {
		t.Errorf("legend %q", l)
	}
	if v := evalJS[string](p, `document.getElementById('bf').value`); v != "version=v1" {
		t.Errorf("baseline filter field %q", v)
	}
	p.screenshot("diff")
	// The root is on the first screen, below the controls.
	if y := p.frameTop("diffcanvas", rs["root"]); y < 0 || y+16 > viewH {
		t.Errorf("diff root at y %.0f, not on the first screen (0..%d)", y, viewH)
	}
	tot := evalJS[string](p, `document.getElementById('totals').textContent`)
	if !strings.Contains(tot, "baseline 1,000 samples") || !strings.Contains(tot, "comparison 1,000 samples") {
		t.Errorf("header totals %q, want both sides' 1,000 samples", tot)
	}
	if n := evalJS[int](p, `[...document.querySelectorAll('#view-diff button')].filter(b => /compare/i.test(b.textContent)).length`); n != 1 {
		t.Errorf("%d compare buttons in the diff view, want 1", n)
	}
	// Names are ellipsized on one line, never wrapped.
	if ws := evalJS[string](p, `getComputedStyle(document.querySelector('#movers td.fn')).whiteSpace`); ws != "nowrap" {
		t.Errorf("movers names white-space %q, want nowrap", ws)
	}
}

func TestBrowserTop(t *testing.T) {
	setup(t, false)
	p := openPage(t, sel("&view=top"))
	defer p.screenshot("final")
	col := func() []string {
		return evalJS[[]string](p, `[...document.querySelectorAll('#top-table tbody td.fn')].map(td => td.textContent)`)
	}
	if got := col(); len(got) < 3 || got[0] != "parse" || got[1] != "render" || got[2] != "gc" {
		t.Fatalf("default order (self desc) %v, want parse, render, gc first", got)
	}
	p.do(chromedp.Click(chromedp.CSS(`#top-table th[data-sort="function"]`)))
	p.waitFor(`document.querySelector('#top-table th[data-sort="function"]').classList.contains('asc')`)
	if got := strings.Join(col(), ","); got != "gc,handle,main,parse,render,serve" {
		t.Errorf("sorted by name: %s", got)
	}
	p.do(chromedp.Click(chromedp.CSS(`#top-table th[data-sort="function"]`)))
	p.waitFor(`document.querySelector('#top-table th[data-sort="function"]').classList.contains('desc')`)
	if got := strings.Join(col(), ","); got != "serve,render,parse,main,handle,gc" {
		t.Errorf("sorted by name descending: %s", got)
	}
	p.do(chromedp.Click(chromedp.CSS(`#top-table th[data-sort="inclusive"]`)))
	p.waitFor(`document.querySelector('#top-table th[data-sort="inclusive"]').classList.contains('desc')`)
	if got := col(); got[len(got)-1] != "gc" {
		t.Errorf("by inclusive descending, last is %s, want gc: %v", got[len(got)-1], got)
	}
	p.setInput("top-filter", "r")
	if got := strings.Join(col(), ","); got != "serve,parse,render" {
		t.Errorf("filtered by 'r': %s", got)
	}
	p.screenshot("top")
	// Clicking a function focuses it in the flame graph.
	p.do(chromedp.Click(chromedp.CSS(`#top-table a[data-fn="parse"]`)))
	p.waitFor(`window.__fleetprof.state().view === 'flame' && window.__fleetprof.layout().some(r => r.name === 'parse' && r.highlighted)`)
	if q := evalJS[string](p, `document.getElementById('search').value`); q != "/^parse$/" {
		t.Errorf("search box shows %q after focusing parse, want /^parse$/", q)
	}
}

func TestBrowserError(t *testing.T) {
	setup(t, false)
	p := openPage(t, sel("&from=garbage"))
	defer p.screenshot("final")
	msg := evalJS[string](p, `document.getElementById('status').className + ': ' + document.getElementById('status').textContent`)
	if !strings.HasPrefix(msg, "error: ") || !strings.Contains(msg, "parameter from") || !strings.Contains(msg, "400") {
		t.Errorf("error state %q, want the API's 400 message about parameter from", msg)
	}
	// An empty selection says so instead of drawing nothing.
	p2 := openPage(t, "/?service=no-such-service")
	defer p2.screenshot("empty")
	if st := evalJS[string](p2, `document.getElementById('status').className`); st != "empty" {
		t.Errorf("status %q for an empty selection, want empty", st)
	}
}

func TestBrowserSeriesAndFindings(t *testing.T) {
	setup(t, false)
	p := openPage(t, sel("&view=series&fn=parse&step=10m"))
	defer p.screenshot("final")
	p.waitFor(`document.querySelector('#chart svg') !== null`)
	if n := evalJS[int](p, `document.querySelectorAll('#chart svg circle').length`); n < 2 {
		t.Errorf("%d points in the gCPU chart, want at least 2", n)
	}
	if n := evalJS[int](p, `document.querySelectorAll('#chart line.changepoint').length`); n != 1 {
		t.Errorf("%d change points marked, want 1", n)
	}
	if n := evalJS[int](p, `document.querySelectorAll('#chart line.deploy').length`); n < 1 {
		t.Errorf("%d deploys marked, want at least 1", n)
	}
	p.screenshot("series")

	p.do(chromedp.Click(chromedp.CSS(`#tabs a[data-view="findings"]`)))
	p.waitFor(`document.querySelector('.finding.regression') !== null`)
	txt := evalJS[string](p, `document.getElementById('findings-list').textContent`)
	for _, s := range []string{"Regressions (1, by estimated cores)", "parse", "50.0%", "60.0%", "Revert slow parser", "20%",
		"first seen " + t0.Add(40*time.Minute).Format(time.RFC3339), "last seen " + testNow.Format(time.RFC3339)} {
		if !strings.Contains(txt, s) {
			t.Errorf("findings view lacks %q: %s", s, txt)
		}
	}
	if n := evalJS[int](p, `document.querySelectorAll('.finding .pr h5, .finding .pr b, .finding .pr li').length`); n < 2 {
		t.Errorf("PR body Markdown not rendered")
	}
	p.screenshot("findings")
	p.do(chromedp.Click(chromedp.CSS(`.finding a[data-diff]`)))
	p.waitFor(`window.__fleetprof.state().view === 'diff' && window.__fleetprof.diffLayout().length > 0`)
	st := evalJS[map[string]any](p, `window.__fleetprof.state()`)
	if fmt.Sprint(st["bf"]) != "[version=v1]" || fmt.Sprint(st["cf"]) != "[version=v2]" {
		t.Errorf("finding's diff compares %v with %v, want version=v1 vs version=v2", st["bf"], st["cf"])
	}
	if rs := byName(evalJS[[]rect](p, `window.__fleetprof.diffLayout()`)); rs["parse"].Kind != "more" {
		t.Errorf("finding's diff shows parse as %q, want more", rs["parse"].Kind)
	}
}

// TestBrowserDeepLink: any non-API path serves the app (SPA fallback), and it works.
func TestBrowserDeepLink(t *testing.T) {
	setup(t, false)
	p := openPage(t, "/views/shared/link?service="+service+"&view=top")
	defer p.screenshot("final")
	if n := evalJS[int](p, `document.querySelectorAll('#top-table tbody tr').length`); n != 6 {
		t.Errorf("%d rows in the top table on a deep link, want 6", n)
	}
}

// deepWide is a profile 25 handlers wide and up to 84 frames deep (service "deepwide"):
// bottom-up, its canvas is taller than the screen.
func deepWide(ts time.Time) []samplebatch.Sample {
	var out []samplebatch.Sample
	for i := range 200 {
		frames := []string{"main", fmt.Sprintf("wide.handler%d", i%25)}
		for k := range 20 + i%60 {
			frames = append(frames, fmt.Sprintf("deep.level%d", k))
		}
		frames = append(frames, fmt.Sprintf("leaf.fn%d", i))
		out = append(out, samplebatch.Sample{TS: ts.Unix(), Value: int64(1 + i%7), PeriodNS: 10_101_010, Frames: frames,
			Labels: samplebatch.Labels{Service: "deepwide", Version: "v1", Host: "h1", Comm: "deepwide", PID: 7}})
	}
	return out
}

// frameTop is where frame r's top edge is in the viewport (CSS px).
func (p *page) frameTop(canvasID string, r rect) float64 {
	p.t.Helper()
	return evalJS[float64](p, fmt.Sprintf(`document.getElementById(%q).getBoundingClientRect().top`, canvasID)) + r.Y
}

// inView fails the test for each element not wholly on the first screen.
func (p *page) inView(ids ...string) {
	p.t.Helper()
	for _, id := range ids {
		if ok := evalJS[bool](p, fmt.Sprintf(`(() => { const r = document.getElementById(%q).getBoundingClientRect(); return r.width > 0 && r.top >= 0 && r.bottom <= innerHeight; })()`, id)); !ok {
			p.t.Errorf("control #%s is not on the first screen", id)
		}
	}
}

// TestBrowserLanding opens a deep, wide profile as a new user would: the controls and
// the root frame are on the first screen, in both orientations, and the frame names
// are in the DOM.
func TestBrowserLanding(t *testing.T) {
	setup(t, false)
	p := openPage(t, "/?service=deepwide")
	defer p.screenshot("final")
	if st := evalJS[string](p, `document.body.dataset.status`); st != "ready" {
		t.Fatalf("status %q: %s", st, evalJS[string](p, `document.getElementById('status').textContent`))
	}
	p.screenshot("landing")
	controls := []string{"service", "from", "to", "apply", "search", "icicle", "reset-zoom", "totals"}
	p.inView(controls...)
	rs := byName(evalJS[[]rect](p, `window.__fleetprof.layout()`))
	if y := p.frameTop("flame", rs["root"]); y < 0 || y+16 > viewH {
		t.Errorf("root at y %.0f, not on the first screen", y)
	}
	names := evalJS[string](p, `document.querySelector('#view-flame .frame-names').textContent`)
	for _, n := range []string{"main", "wide.handler3", "deep.level0"} {
		if !strings.Contains(names, n) {
			t.Errorf("frame %s not named in the DOM: %.200s", n, names)
		}
	}
	if tot := evalJS[string](p, `document.getElementById('totals').textContent`); !strings.Contains(tot, "794 samples") || !strings.Contains(tot, "1 h") {
		t.Errorf("header totals %q, want 794 samples over 1 h", tot)
	}

	p.do(chromedp.Click(chromedp.CSS(`#icicle`)))
	p.waitFor(`window.__fleetprof.state().icicle === '0'`)
	p.screenshot("bottom-up")
	p.inView(controls...)
	rs = byName(evalJS[[]rect](p, `window.__fleetprof.layout()`))
	if y := p.frameTop("flame", rs["root"]); y < 0 || y+16 > viewH {
		t.Errorf("bottom-up: root at y %.0f, not on the first screen", y)
	}
}
