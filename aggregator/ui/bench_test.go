package ui

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// genTreeJS defines makeTree(n, seed, diff) in the page: a random call tree of n nodes
// (depth up to ~40, sibling names unique) shaped like the API's FlameNode, or like
// DiffNode with independent baseline and comparison samples when diff is true.
const genTreeJS = `
window.makeTree = function (n, seed, diff) {
  let s = seed >>> 0;
  const rnd = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296; };
  const nodes = [{ name: 'root', kids: [], depth: 0, a: 0, b: 0, names: new Set() }];
  for (let i = 1; i < n; i++) {
    // Prefer recent nodes as parents so the tree gets deep, like real stacks.
    let p = nodes[Math.max(0, nodes.length - 1 - Math.floor(rnd() * rnd() * nodes.length))];
    if (p.depth >= 40) p = nodes[Math.floor(rnd() * nodes.length)];
    let name;
    do { name = 'pkg' + Math.floor(rnd() * 300) + '.(*T' + Math.floor(rnd() * 20) + ').func' + Math.floor(rnd() * 1000); } while (p.names.has(name));
    p.names.add(name);
    const c = { name, kids: [], depth: p.depth + 1, a: Math.floor(rnd() * 50), b: Math.floor(rnd() * 50), names: new Set() };
    p.kids.push(c);
    nodes.push(c);
  }
  const A = [0], B = [0];
  const out = (nd) => {
    const kids = nd.kids.map(out);
    let ta = nd.a, tb = nd.b;
    for (const k of kids) { ta += diff ? k.base : k.total; tb += diff ? k.cmp : 0; }
    if (!diff) return { name: nd.name, total: ta, self: nd.a, children: kids.length ? kids : undefined };
    return { name: nd.name, base: ta, cmp: tb, base_self: nd.a, cmp_self: nd.b, children: kids.length ? kids : undefined };
  };
  const root = out(nodes[0]);
  if (!diff) return root;
  const bt = root.base || 1, ct = root.cmp || 1;
  const pct = (x) => { x.base_pct = 100 * x.base / bt; x.cmp_pct = 100 * x.cmp / ct; x.delta_pct = x.cmp_pct - x.base_pct; (x.children || []).forEach(pct); };
  pct(root);
  return { base_total: root.base, cmp_total: root.cmp, root, movers: [] };
};
window.benchData = {};
`

// BenchmarkRender times, in headless Chromium, how long the UI takes from the JSON
// answer's arrival to the painted frame: JSON.parse, layout, canvas drawing and the
// next animation frame.
func BenchmarkRender(b *testing.B) {
	setup(b, true)
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch strings.TrimPrefix(r.URL.Path, "/api/v1/") {
		case "services":
			fmt.Fprint(w, `{"services":["bench"]}`)
		case "flame":
			fmt.Fprint(w, `{"name":"root","total":0,"self":0}`)
		default:
			fmt.Fprint(w, `{}`)
		}
	})
	mux.Handle("/", Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	old := env.url
	env.url = srv.URL
	defer func() { env.url = old }()

	for _, bc := range []struct {
		name   string
		nodes  int
		diff   bool
		render string
	}{
		{"flame50k", 50_000, false, "renderFlame"},
		{"diff50k", 50_000, true, "renderDiff"},
		{"flame100k", 100_000, false, "renderFlame"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := openPage(b, "/?service=bench")
			evalJS[chromedp.Void](p, genTreeJS)
			size := evalJS[int](p, fmt.Sprintf(`(window.benchData.json = JSON.stringify(makeTree(%d, 1, %v))).length`, bc.nodes, bc.diff))
			var total float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				total += evalAwait[float64](p, fmt.Sprintf(`(() => {
  const t0 = performance.now();
  const data = JSON.parse(window.benchData.json);
  return window.__fleetprof.%s(data).then(() => performance.now() - t0);
})()`, bc.render))
			}
			b.ReportMetric(total/float64(b.N), "ms/render")
			b.ReportMetric(float64(size), "json-bytes")
			b.ReportMetric(0, "ns/op") // browser time is what matters, reported above
			which := map[bool]string{false: "flame", true: "diff"}[bc.diff]
			b.ReportMetric(float64(evalJS[int](p, fmt.Sprintf(`window.__fleetprof.%sLayout().length`, which))), "frames-drawn")
			// A redraw (zoom, search, resize) without new data must stay well under a frame budget.
			var redraw float64
			for range 5 {
				redraw += evalJS[float64](p, fmt.Sprintf(`window.__fleetprof.redraw(%q)`, which))
			}
			b.ReportMetric(redraw/5, "ms/redraw")
			p.screenshot(bc.name)
		})
	}
}
