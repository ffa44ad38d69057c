package ui

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// sandwichRows is service "sandwich": alloc is called by a (40 samples) and by b (80),
// and calls memclr (60 of its 120 samples); the rest is alloc's own.
//
//	main;a;alloc;memclr 40   main;b;alloc 60   main;b;alloc;memclr 20   main;b;work 30
func sandwichRows(ts time.Time) []samplebatch.Sample {
	row := func(v int64, frames ...string) samplebatch.Sample {
		return samplebatch.Sample{TS: ts.Unix(), Value: v, PeriodNS: 10_101_010, Frames: frames,
			Labels: samplebatch.Labels{Service: "sandwich", Version: "v1", Host: "h1", Comm: "sandwich", PID: 9}}
	}
	return []samplebatch.Sample{
		row(40, "main", "a", "alloc", "memclr"),
		row(60, "main", "b", "alloc"),
		row(20, "main", "b", "alloc", "memclr"),
		row(30, "main", "b", "work"),
	}
}

// gradualRecord is a gradual finding of checkout's render: its share ramped up over
// the test data's hour, during which v2 was deployed.
func gradualRecord(now time.Time) model.FindingRecord {
	body, _ := json.Marshal(map[string]any{"kind": "gradual", "service": service, "function": "render",
		"before":          map[string]any{"value": 0.25, "lo": 0.24, "hi": 0.26},
		"after":           map[string]any{"value": 0.3, "lo": 0.29, "hi": 0.31},
		"absolute_change": 0.05, "relative_change": 0.2, "p_value": 1e-9, "estimated_cores": 0.5,
		"change_time": t0.Format(time.RFC3339), "window_start": t0.Format(time.RFC3339), "window_end": now.Format(time.RFC3339),
		"gradual": map[string]any{"start": t0.Format(time.RFC3339), "end": t0.Add(50 * time.Minute).Format(time.RFC3339),
			"slope_per_hour": 0.06, "cumulative_change": 0.2, "releases": []string{"v2"}},
		"root_causes": []map[string]any{{"commit": "abc", "pr": 9, "title": "Grow the render cache", "author": "ann", "confidence": 0.4}},
	})
	return model.FindingRecord{ID: "g-render", Kind: "gradual", Service: service, Created: now, Body: body}
}

// selfRecord is a self-share regression of service selfshare's gc (its own code), with its
// inclusive shares beside the self ones.
func selfRecord(now time.Time) model.FindingRecord {
	body, _ := json.Marshal(map[string]any{"kind": "regression", "service": "selfshare", "function": "gc",
		"before": map[string]any{"value": 0.1, "lo": 0.09, "hi": 0.11}, "after": map[string]any{"value": 0.12, "lo": 0.11, "hi": 0.13},
		"inclusive_before": map[string]any{"value": 0.2, "lo": 0.19, "hi": 0.21}, "inclusive_after": map[string]any{"value": 0.22, "lo": 0.21, "hi": 0.23},
		"absolute_change": 0.02, "relative_change": 0.2, "p_value": 1e-9, "estimated_cores": 0.01,
		"change_time": t0.Add(30 * time.Minute).Format(time.RFC3339), "filters_passed": []string{"significance", "self_share"},
	})
	return model.FindingRecord{ID: "f-gc-self", Kind: "regression", Service: "selfshare", Created: now, Body: body}
}

// TestBrowserSelfShare: a self-share regression shows its self shares and its
// inclusive ones beside them.
func TestBrowserSelfShare(t *testing.T) {
	setup(t, false)
	p := openPage(t, "/?service=selfshare&view=findings")
	defer p.screenshot("final")
	p.waitFor(`document.querySelector('.finding.regression') !== null`)
	txt := evalJS[string](p, `document.querySelector('.finding.regression').textContent`)
	for _, w := range []string{"self share 10.0% [9.00%, 11.0%] → 12.0% [11.0%, 13.0%]", "inclusive 20.0% [19.0%, 21.0%] → 22.0% [21.0%, 23.0%]"} {
		if !strings.Contains(txt, w) {
			t.Errorf("self finding lacks %q: %s", w, txt)
		}
	}
}

// TestBrowserGradual: a gradual finding is listed in its own group with its ramp and
// releases, its ramp is a band in the function's gCPU chart, and its flame diff
// compares before the ramp with its end.
func TestBrowserGradual(t *testing.T) {
	setup(t, false)
	p := openPage(t, sel("&view=findings"))
	defer p.screenshot("final")
	p.waitFor(`document.querySelector('.finding.gradual') !== null`)
	txt := evalJS[string](p, `document.querySelector('.finding.gradual').textContent`)
	for _, w := range []string{"render", "ramp " + t0.Format(time.RFC3339) + " … " + t0.Add(50*time.Minute).Format(time.RFC3339),
		"25.0% [24.0%, 26.0%] → 30.0% [29.0%, 31.0%]", "cumulative +20.0%", "+144.0% of the service per day",
		"releases during the ramp: v2", "PR #9 Grow the render cache"} {
		if !strings.Contains(txt, w) {
			t.Errorf("gradual finding lacks %q: %s", w, txt)
		}
	}
	if h := evalJS[string](p, `[...document.querySelectorAll('#findings-list h3')].map(h => h.textContent).join('|')`); !strings.Contains(h, "Gradual regressions (1, by estimated cores)") {
		t.Errorf("headings %q lack the gradual group", h)
	}
	p.screenshot("gradual")
	// The kind selector lists gradual regressions; choosing it shows only them.
	evalJS[bool](p, `(() => { const s = document.getElementById('fkind'); s.value = 'gradual'; s.dispatchEvent(new Event('change')); return true })()`)
	p.waitFor(`window.__fleetprof.state().kind === 'gradual' && document.querySelectorAll('.finding').length === 1 && document.querySelector('.finding.gradual') !== null`)
	p.do(chromedp.Click(chromedp.CSS(`.finding.gradual a[data-series-i]`)))
	p.waitFor(`document.querySelector('#chart svg') !== null`)
	if n := evalJS[int](p, `document.querySelectorAll('#chart rect.ramp').length`); n != 1 {
		t.Errorf("%d ramps marked in render's chart, want 1", n)
	}
	p.screenshot("gradual-series")
	p.do(chromedp.Click(chromedp.CSS(`#tabs a[data-view="findings"]`)))
	p.waitFor(`document.querySelector('.finding.gradual a[data-diff]') !== null`)
	p.do(chromedp.Click(chromedp.CSS(`.finding.gradual a[data-diff]`)))
	p.waitFor(`window.__fleetprof.state().view === 'diff'`)
	st := evalJS[map[string]any](p, `window.__fleetprof.state()`)
	if st["bto"] != t0.Format(time.RFC3339) || st["cfrom"] != t0.Add(37*time.Minute+30*time.Second).Format("2006-01-02T15:04:05.000Z") {
		t.Errorf("ramp diff compares %v…%v with %v…%v", st["bfrom"], st["bto"], st["cfrom"], st["cto"])
	}
}

// opportunityRecords are 30 opportunities of service "opps" whose estimated saving in
// cores is their index (opp-00 the smallest), stored in index order.
func opportunityRecords(now time.Time) []model.FindingRecord {
	var out []model.FindingRecord
	for i := range 30 {
		body, _ := json.Marshal(map[string]any{"kind": "opportunity", "service": "opps", "function": fmt.Sprintf("opp.fn%02d", i),
			"opportunity": map[string]any{"pattern": "p", "estimated_saving_share": 0.01, "estimated_saving_cores": float64(i) / 10}})
		out = append(out, model.FindingRecord{ID: fmt.Sprintf("opp-%02d", i), Kind: "opportunity", Service: "opps", Created: now, Body: body})
	}
	return out
}

type sandwichLayout struct {
	Callers []rect `json:"callers"`
	Callees []rect `json:"callees"`
}

// TestBrowserSandwich opens alloc's sandwich view from the table, checks both callers
// and the callee with their samples, and the layout: callers above, callees below.
func TestBrowserSandwich(t *testing.T) {
	setup(t, false)
	p := openPage(t, "/?service=sandwich")
	defer p.screenshot("final")
	p.do(chromedp.Click(chromedp.CSS(`#top-table a[data-sandwich="alloc"]`)))
	p.waitFor(`window.__fleetprof.state().view === 'sandwich' && document.body.dataset.status === 'ready'`)
	p.screenshot("sandwich")
	l := evalJS[sandwichLayout](p, `window.__fleetprof.sandwichLayout()`)
	callers, callees := byName(l.Callers), byName(l.Callees)
	sum := map[string]float64{} // main appears twice: above a and above b
	for _, r := range l.Callers {
		sum[r.Name] += r.Value
	}
	for name, want := range map[string]float64{"alloc": 120, "a": 40, "b": 80, "main": 120} {
		if got := sum[name]; got != want {
			t.Errorf("callers: %s has %.0f samples, want %.0f", name, got, want)
		}
	}
	if _, ok := callers["work"]; ok {
		t.Error("callers show work, which never calls alloc")
	}
	for name, want := range map[string]float64{"alloc": 120, "memclr": 60} {
		if got := callees[name].Value; got != want {
			t.Errorf("callees: %s has %.0f samples, want %.0f", name, got, want)
		}
	}
	if len(callees) != 2 {
		t.Errorf("callees %v, want alloc and memclr only", l.Callees)
	}
	// Callers above the function: alloc is the callers graph's bottom row, a and b above.
	if !(callers["a"].Y < callers["alloc"].Y && callers["main"].Y < callers["a"].Y) {
		t.Errorf("callers not above the function: %+v", l.Callers)
	}
	callersTop := evalJS[float64](p, `document.getElementById('sw-callers').getBoundingClientRect().top`)
	calleesTop := evalJS[float64](p, `document.getElementById('sw-callees').getBoundingClientRect().top`)
	if !(callersTop < calleesTop) || calleesTop+callees["memclr"].Y+16 > viewH {
		t.Errorf("callees graph at %.0f (callers at %.0f): not below the callers on the first screen", calleesTop, callersTop)
	}
	if info := evalJS[string](p, `document.getElementById('sw-info').textContent`); !strings.Contains(info, "120 samples") || !strings.Contains(info, "self 60") {
		t.Errorf("sandwich summary %q, want 120 samples, self 60", info)
	}
}

// TestBrowserKeyboard walks the flame graph with the keyboard: arrows select, Enter
// zooms, S opens the selected frame's sandwich view, and the selection is announced.
func TestBrowserKeyboard(t *testing.T) {
	setup(t, false)
	p := openPage(t, sel(""))
	defer p.screenshot("final")
	p.do(chromedp.Focus(chromedp.CSS(`#flame`)))
	for range 3 { // root → main → serve → handle (the widest child)
		p.do(chromedp.KeyEvent(kb.ArrowDown))
	}
	if got := evalJS[string](p, `document.getElementById('frame-info').textContent`); !strings.HasPrefix(got, "handle — 85.0%") {
		t.Fatalf("selected frame %q, want handle — 85.0%%", got)
	}
	p.do(chromedp.KeyEvent(kb.ArrowLeft)) // gc: siblings are laid out by name
	if got := evalJS[string](p, `document.getElementById('frame-info').textContent`); !strings.HasPrefix(got, "gc") {
		t.Errorf("after ArrowLeft selected %q, want gc", got)
	}
	p.do(chromedp.KeyEvent(kb.ArrowRight)) // back to handle
	p.do(chromedp.KeyEvent(kb.Enter))
	p.waitFor(`window.__fleetprof.state().zoom === 'root;main;serve;handle'`)
	p.screenshot("zoomed")
	p.do(chromedp.KeyEvent(kb.Escape))
	p.waitFor(`!window.__fleetprof.state().zoom`)
	p.do(chromedp.KeyEvent("s"))
	p.waitFor(`window.__fleetprof.state().view === 'sandwich' && window.__fleetprof.state().fn === 'handle'`)
}

// TestBrowserLayout: the table and the flame graph are side by side at 1600 px, stacked
// on a narrow screen, and the table counts what the selection has, not the page size.
func TestBrowserLayout(t *testing.T) {
	setup(t, false)
	p := openPage(t, "/?service=deepwide&limit=10")
	defer p.screenshot("final")
	p.inView("top-table")
	if y := p.frameTop("flame", byName(evalJS[[]rect](p, `window.__fleetprof.layout()`))["root"]); y < 0 || y+16 > viewH {
		t.Errorf("root frame at y %.0f, not on the first screen", y)
	}
	type box struct{ Left, Top, Right, Bottom float64 }
	pos := func(id string) box {
		return evalJS[box](p, fmt.Sprintf(`(() => { const r = document.querySelector(%q).getBoundingClientRect(); return {Left: r.left, Top: r.top, Right: r.right, Bottom: r.bottom}; })()`, id))
	}
	if tb, fl := pos(".pane-table"), pos(".pane-flame"); !(tb.Right <= fl.Left) {
		t.Errorf("table %+v and flame graph %+v are not side by side", tb, fl)
	}
	// deepwide has 25 handlers, 79 levels, 200 leaves, main and root's child count: 305 functions.
	info := evalJS[string](p, `document.getElementById('top-info').textContent`)
	if !strings.Contains(info, "10 shown of 305 functions") {
		t.Errorf("table counts %q, want 10 shown of 305 functions", info)
	}
	p.do(chromedp.Click(chromedp.CSS(`#top-more`)))
	p.waitFor(`document.getElementById('top-info').textContent.includes('40 shown of 305')`)
	if tot := evalJS[string](p, `document.getElementById('totals').textContent`); !strings.Contains(tot, "cores") {
		t.Errorf("header totals %q lack cores", tot)
	}
	p.screenshot("wide")

	if err := chromedp.Do(p.ctx, chromedp.EmulateViewport(700, viewH)); err != nil {
		t.Fatalf("narrow viewport: %v", err)
	}
	p.waitFor(`document.querySelector('.pane-table').getBoundingClientRect().bottom <= document.querySelector('.pane-flame').getBoundingClientRect().top`)
	p.screenshot("narrow")
}

// TestBrowserFindingsOrder: opportunities are listed by estimated saving, a page at
// a time from the opportunities API, with the total it counts (not what was fetched).
func TestBrowserFindingsOrder(t *testing.T) {
	setup(t, false)
	p := openPage(t, "/?service=opps&view=findings")
	defer p.screenshot("final")
	p.waitFor(`document.querySelectorAll('.finding.opportunity').length > 0`)
	fns := func() []string {
		return evalJS[[]string](p, `[...document.querySelectorAll('.finding.opportunity h4')].map(h => h.textContent)`)
	}
	got := fns()
	if len(got) != 25 || got[0] != "opp.fn29" || got[24] != "opp.fn05" {
		t.Errorf("first page %v, want 25 from opp.fn29 down to opp.fn05", got)
	}
	if h := evalJS[string](p, `document.querySelector('#findings-list h3').textContent`); !strings.Contains(h, "25 shown of 30") {
		t.Errorf("heading %q, want 25 shown of 30", h)
	}
	p.do(chromedp.Click(chromedp.CSS(`#findings-list button[data-more]`)))
	p.waitFor(`document.querySelectorAll('.finding.opportunity').length === 30`)
	if got := fns(); got[29] != "opp.fn00" {
		t.Errorf("last after paging %s, want opp.fn00", got[29])
	}
	// The second page came from the server, after the first 25.
	if !evalJS[bool](p, `performance.getEntriesByType('resource').some(e => e.name.includes('/api/v1/opportunities?') && e.name.includes('offset=25'))`) {
		t.Error("no request for the opportunities after the first 25 (offset=25)")
	}
	if h := evalJS[string](p, `document.querySelector('#findings-list h3').textContent`); !strings.Contains(h, "(30, by estimated saving") {
		t.Errorf("heading after paging %q, want all 30", h)
	}
}
