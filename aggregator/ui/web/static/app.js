// fleetprof web UI. Plain JavaScript, no build step: the aggregator embeds this file.
// All view state lives in the query string so any view can be shared as a URL.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const API = '/api/v1/';

  // A bug in this script must show up as a message, never as a blank or frozen page.
  window.addEventListener('error', (e) => setStatus('error', 'UI error: ' + e.message));
  window.addEventListener('unhandledrejection', (e) => setStatus('error', 'UI error: ' + (e.reason && e.reason.message ? e.reason.message : e.reason)));

  // ---------- state <-> URL ----------
  const MULTI = ['f', 'bf', 'cf'];
  function readState() {
    const q = new URLSearchParams(location.search);
    const s = {};
    for (const [k, v] of q) {
      if (MULTI.includes(k)) (s[k] = s[k] || []).push(v);
      else s[k] = v;
    }
    s.view = s.view || 'flame';
    s.from = s.from || 'now-1h';
    s.to = s.to || 'now';
    for (const k of MULTI) s[k] = s[k] || [];
    return s;
  }
  function writeState(s, replace) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(s)) {
      if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
      else if (v !== undefined && v !== null && v !== '') q.set(k, v);
    }
    const url = location.pathname + '?' + q.toString();
    if (url === location.pathname + location.search) return;
    if (replace) history.replaceState(null, '', url);
    else history.pushState(null, '', url);
  }
  let state = readState();
  function update(patch, replace) {
    state = Object.assign({}, state, patch);
    writeState(state, replace);
    syncForm();
    render();
  }
  window.addEventListener('popstate', () => { state = readState(); syncForm(); render(); });

  // ---------- API ----------
  function selParams(s, extra) {
    const q = new URLSearchParams();
    if (s.service) q.set('service', s.service);
    q.set('from', s.from);
    q.set('to', s.to);
    s.f.forEach((f) => q.append('filter', f));
    for (const [k, v] of Object.entries(extra || {})) if (v !== undefined && v !== '') q.set(k, v);
    return q;
  }
  async function api(path, params) {
    const url = API + path + (params ? '?' + params.toString() : '');
    let res;
    try {
      res = await fetch(url, { headers: { Accept: 'application/json' } });
    } catch (e) {
      throw new Error('request failed: ' + url + ': ' + e.message);
    }
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { /* not JSON */ }
    if (!res.ok) {
      const msg = body && body.error ? body.error : (text.trim() || res.statusText);
      const err = new Error(`${path.split('?')[0]}: ${res.status} ${msg}`);
      err.status = res.status;
      throw err;
    }
    if (body === null && text) throw new Error(path + ': answer is not JSON');
    return body;
  }
  // list accepts either a bare array or an object wrapping one (endpoints differ).
  function list(body, ...keys) {
    if (Array.isArray(body)) return body;
    if (body) for (const k of keys) if (Array.isArray(body[k])) return body[k];
    return [];
  }

  // ---------- status ----------
  let loadSeq = 0;
  function setStatus(kind, msg) {
    const el = $('status');
    el.className = kind || '';
    el.textContent = msg || '';
    document.body.dataset.status = kind || 'ready';
  }

  // ---------- helpers ----------
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  const fmtInt = (n) => Number(n).toLocaleString('en-US');
  const fmtLine = (n) => String(Number(n) || 0);
  const fmtPct = (p) => (Math.abs(p) >= 10 ? p.toFixed(1) : Math.abs(p) >= 0.01 || p === 0 ? p.toFixed(2) : p.toExponential(1)) + '%';
  const fmtDelta = (p) => (p > 0 ? '+' : '') + fmtPct(p);
  // Long function names may break after a path or package separator, never mid-word.
  const wbr = (name) => esc(name).replace(/([/.])/g, '$1<wbr>');
  const fmtCores = (c) => (c >= 10 ? c.toFixed(1) : c >= 0.1 ? c.toFixed(2) : c.toFixed(3)) + ' cores';
  // The flame graphs are top-down (icicle) unless the URL says icicle=0.
  const topDown = () => state.icicle !== '0';
  function showRoot(fg) {
    const box = fg.canvas.parentNode;
    box.scrollTop = fg.icicle ? 0 : box.scrollHeight;
  }
  function setTotals(text) { $('totals').textContent = text; }
  // timeMs reads a time as the API takes it; one now for both ends of a range.
  function timeMs(v, now) {
    if (v === 'now') return now;
    const m = /^now-(\d+(?:\.\d+)?)([smhd])$/.exec(v);
    if (m) return now - m[1] * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2]];
    if (/^\d+(\.\d+)?$/.test(v)) return v * 1000;
    return Date.parse(v);
  }
  // cores is the average number of CPUs busy over the range: samples × period / span.
  function coresOf(total, periodNS, from, to) {
    const now = Date.now(), ms = timeMs(to, now) - timeMs(from, now);
    if (!(ms > 0) || !(periodNS > 0)) return '';
    return ' · ' + fmtCores((total * periodNS) / (ms * 1e6));
  }
  function fmtSpan(from, to) {
    const now = Date.now(), ms = timeMs(to, now) - timeMs(from, now);
    if (!(ms > 0)) return 'time span ?';
    const h = ms / 3600e3;
    return 'time span ' + (h >= 48 ? (h / 24).toFixed(1) + ' d' : h >= 1 ? +h.toFixed(2) + ' h' : +(ms / 60e3).toFixed(1) + ' min');
  }
  function parseFilterList(text) {
    return text.split(',').map((x) => x.trim()).filter((x) => x.includes('='));
  }
  function hashStr(s) {
    let h = 2166136261;
    for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619); }
    return h >>> 0;
  }
  function matcher(q) {
    if (!q) return null;
    const m = /^\/(.+)\/([i]?)$/.exec(q);
    if (m) {
      try { const re = new RegExp(m[1], m[2]); return (s) => re.test(s); } catch (e) { return () => false; }
    }
    const lq = q.toLowerCase();
    return (s) => s.toLowerCase().includes(lq);
  }

  // ---------- flame graph (canvas) ----------
  // A tree is flattened into typed arrays in depth-first pre-order; end[i] is one past
  // the last node of i's subtree, so a subtree too narrow to see is skipped in O(1).
  // Children are laid out left to right by name (stable across refreshes and diffs).
  const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  function flatten(root, valueOf, childrenOf) {
    const name = [], ref = [];
    let cap = 1024;
    let depth = new Int32Array(cap), x = new Float64Array(cap), w = new Float64Array(cap), parent = new Int32Array(cap);
    const grow = () => {
      cap *= 2;
      const g = (a, T) => { const b = new T(cap); b.set(a); return b; };
      depth = g(depth, Int32Array); x = g(x, Float64Array); w = g(w, Float64Array); parent = g(parent, Int32Array);
    };
    let n = 0, maxDepth = 0;
    // Parallel stacks (no per-node tuple allocation: this runs for 100k nodes).
    const sNode = [root], sDepth = [0], sX = [0], sParent = [-1];
    while (sNode.length) {
      const node = sNode.pop(), d = sDepth.pop(), nx = sX.pop(), p = sParent.pop();
      if (n === cap) grow();
      const i = n++;
      name[i] = node.name; ref[i] = node;
      depth[i] = d; x[i] = nx; w[i] = valueOf(node); parent[i] = p;
      if (d > maxDepth) maxDepth = d;
      let kids = childrenOf(node);
      if (!kids || !kids.length) continue;
      if (kids.length > 1) kids = kids.slice().sort(byName);
      // Push in reverse so the first child is visited first; x runs right to left.
      let cx = nx;
      for (let k = 0; k < kids.length; k++) { const cw = valueOf(kids[k]); if (cw > 0) cx += cw; }
      for (let k = kids.length - 1; k >= 0; k--) {
        const c = kids[k], cw = valueOf(c);
        if (!(cw > 0)) continue;
        cx -= cw;
        sNode.push(c); sDepth.push(d + 1); sX.push(cx); sParent.push(i);
      }
    }
    // Subtree sizes from a reverse pass (children come after their parent).
    const end = new Int32Array(n);
    for (let i = 0; i < n; i++) end[i] = 1;
    for (let i = n - 1; i > 0; i--) end[parent[i]] += end[i];
    for (let i = 0; i < n; i++) end[i] += i;
    return { n, name, ref, depth, x, w, end, parent, maxDepth };
  }

  const ROW = 16;
  class FlameGraph {
    constructor(canvas, opts) {
      this.canvas = canvas;
      this.opts = opts; // {colorOf(i, flat), tooltip(i), onZoom(path)}
      this.flat = null;
      this.zoom = 0;
      this.search = null;
      this.icicle = false;
      this.drawn = [];
      this.kinds = null;
      this.sel = -1; // keyboard-selected frame
      canvas.addEventListener('keydown', (e) => this.key(e));
      canvas.addEventListener('contextmenu', (e) => {
        const i = this.hit(e);
        if (i >= 0 && this.opts.onSandwich) { e.preventDefault(); this.opts.onSandwich(this.flat.name[i]); }
      });
      canvas.addEventListener('mousemove', (e) => this.hover(e));
      canvas.addEventListener('mouseleave', () => { $('tooltip').hidden = true; });
      canvas.addEventListener('click', (e) => {
        const i = this.hit(e);
        if (i >= 0) this.setZoom(i, true);
      });
      if (window.ResizeObserver) new ResizeObserver(() => { if (this.flat && this.canvas.offsetParent) this.draw(); }).observe(canvas.parentNode);
    }
    setData(flat) { this.flat = flat; this.zoom = 0; this.sel = -1; this.matches = null; this.colors = new Array(flat.n); }
    // key moves the selection with the arrow keys (towards the root, into the widest
    // child, to the neighbouring sibling), zooms with Enter and opens the sandwich
    // view with S; Escape (handled by the page) resets the zoom.
    key(e) {
      const f = this.flat;
      if (!f || !f.n) return;
      let i = this.sel >= 0 ? this.sel : this.zoom;
      const up = this.icicle ? 'ArrowUp' : 'ArrowDown', down = this.icicle ? 'ArrowDown' : 'ArrowUp';
      if (e.key === up) { if (f.parent[i] >= 0) i = f.parent[i]; }
      else if (e.key === down) {
        let best = -1;
        for (let c = i + 1; c < f.end[i]; c = f.end[c]) if (best < 0 || f.w[c] > f.w[best]) best = c;
        if (best >= 0) i = best;
      } else if (e.key === 'ArrowRight') {
        const n = f.end[i];
        if (n < f.n && f.parent[n] === f.parent[i]) i = n;
      } else if (e.key === 'ArrowLeft') {
        const p = f.parent[i];
        if (p >= 0) { let prev = -1; for (let c = p + 1; c < i; c = f.end[c]) prev = c; if (prev >= 0) i = prev; }
      } else if (e.key === 'Enter') { this.setZoom(i, true); e.preventDefault(); return; }
      else if ((e.key === 's' || e.key === 'S') && this.opts.onSandwich) { this.opts.onSandwich(f.name[i]); e.preventDefault(); return; }
      else return;
      e.preventDefault();
      this.select(i);
    }
    select(i) {
      this.sel = i;
      this.draw();
      const f = this.flat, info = this.opts.infoEl && $(this.opts.infoEl);
      if (info) info.textContent = i >= 0 ? `${f.name[i]} — ${fmtPct(f.w[0] > 0 ? (100 * f.w[i]) / f.w[0] : 0)} of the total` : '';
    }
    pathOf(i) {
      const p = [];
      for (; i >= 0; i = this.flat.parent[i]) p.push(this.flat.name[i]);
      return p.reverse();
    }
    findPath(path) {
      const f = this.flat;
      if (!f || !path.length || f.name[0] !== path[0]) return 0;
      let i = 0;
      for (let k = 1; k < path.length; k++) {
        let c = i + 1, found = -1;
        while (c < f.end[i]) {
          if (f.name[c] === path[k]) { found = c; break; }
          c = f.end[c];
        }
        if (found < 0) break;
        i = found;
      }
      return i;
    }
    setZoom(i, user) {
      this.zoom = i;
      this.draw();
      if (user && this.opts.onZoom) this.opts.onZoom(i === 0 ? '' : this.pathOf(i).join(';'));
    }
    setSearch(q) {
      const m = matcher(q);
      const f = this.flat;
      this.search = m;
      this.matches = null;
      if (m && f) {
        const hit = new Uint8Array(f.n);
        const memo = new Map();
        for (let i = 0; i < f.n; i++) {
          let r = memo.get(f.name[i]);
          if (r === undefined) { r = m(f.name[i]); memo.set(f.name[i], r); }
          if (r) hit[i] = 1;
        }
        // Matched share: count a matching subtree once, not again for nested matches.
        let sum = 0;
        for (let i = 0; i < f.n;) { if (hit[i]) { sum += f.w[i]; i = f.end[i]; } else i++; }
        this.matches = { hit, sum, pct: f.w[0] > 0 ? (100 * sum) / f.w[0] : 0 };
      }
    }
    draw() {
      const f = this.flat, c = this.canvas;
      const dpr = window.devicePixelRatio || 1;
      const W = c.parentNode.clientWidth || 800;
      const H = f ? (f.maxDepth + 1) * ROW : ROW;
      if (c.width !== Math.round(W * dpr) || c.height !== Math.round(H * dpr)) {
        c.width = Math.round(W * dpr); c.height = Math.round(H * dpr);
        c.style.height = H + 'px';
      }
      const ctx = c.getContext('2d');
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, W, H);
      this.drawn = [];
      this.W = W;
      if (!f || f.n === 0 || f.w[0] <= 0) { this.names([]); return; }
      ctx.font = '11px ui-monospace, Menlo, Consolas, monospace';
      ctx.textBaseline = 'middle';
      const charW = ctx.measureText('mmmmmmmmmm').width / 10;
      const z = this.zoom, zx = f.x[z], zw = f.w[z], scale = W / zw;
      const yOf = (d) => (this.icicle ? d * ROW : (f.maxDepth - d) * ROW);
      const hit = this.matches ? this.matches.hit : null;
      const drawOne = (i, px, pw) => {
        const y = yOf(f.depth[i]);
        // Colours are computed once per node: string building dominates redraws otherwise.
        let col = this.colors[i];
        if (col === undefined) col = this.colors[i] = this.opts.colorOf(i, f);
        if (hit) col = hit[i] ? '#e040fb' : dim(col);
        ctx.fillStyle = col;
        ctx.fillRect(px, y, Math.max(pw - 0.5, 0.5), ROW - 1);
        if (pw > 3 * charW + 6) {
          labelled.push(i);
          const maxC = Math.floor((pw - 6) / charW);
          let label = f.name[i];
          if (label.length > maxC) label = label.slice(0, Math.max(maxC - 1, 1)) + '…';
          ctx.fillStyle = '#111';
          ctx.fillText(label, px + 3, y + ROW / 2);
        }
        if (i === this.sel) {
          ctx.strokeStyle = '#0d47a1'; ctx.lineWidth = 2;
          ctx.strokeRect(px + 1, y + 1, Math.max(pw - 2, 1), ROW - 3);
        }
        this.drawn.push(i, px, pw);
      };
      const labelled = [];
      // Ancestors of the zoomed node span the whole width.
      for (let a = f.parent[z]; a >= 0; a = f.parent[a]) drawOne(a, 0, W);
      const stop = f.end[z];
      for (let i = z; i < stop;) {
        const pw = f.w[i] * scale;
        if (pw < 0.5) { i = f.end[i]; continue; } // sub-pixel: skip the whole subtree
        drawOne(i, (f.x[i] - zx) * scale, pw);
        i++;
      }
      this.names(labelled);
    }
    // names lists the labelled frames as text after the canvas (visually hidden), so a
    // screen reader, find-in-page and tests can read what the canvas shows.
    names(idx) {
      let el = this.nameList;
      if (!el) {
        el = this.nameList = document.createElement('ul');
        el.className = 'frame-names';
        el.setAttribute('aria-label', 'flame graph frames');
        this.canvas.parentNode.appendChild(el);
      }
      const f = this.flat, tot = f ? f.w[0] : 0;
      el.innerHTML = idx.map((i) => `<li>${esc(f.name[i])} ${tot > 0 ? fmtPct((100 * f.w[i]) / tot) : ''}</li>`).join('');
    }
    hit(e) {
      const f = this.flat;
      if (!f) return -1;
      const r = this.canvas.getBoundingClientRect();
      const mx = e.clientX - r.left, my = e.clientY - r.top;
      const row = Math.floor(my / ROW);
      const d = this.icicle ? row : f.maxDepth - row;
      const dr = this.drawn;
      for (let k = 0; k < dr.length; k += 3) {
        const i = dr[k];
        if (f.depth[i] === d && mx >= dr[k + 1] && mx < dr[k + 1] + dr[k + 2]) return i;
      }
      return -1;
    }
    hover(e) {
      const i = this.hit(e);
      const tt = $('tooltip');
      if (i < 0) { tt.hidden = true; this.canvas.style.cursor = ''; return; }
      this.canvas.style.cursor = 'pointer';
      tt.innerHTML = this.opts.tooltip(i, this.flat, this.zoom);
      tt.hidden = false;
      const x = Math.min(e.clientX + 14, window.innerWidth - tt.offsetWidth - 8);
      const y = e.clientY + 18 + tt.offsetHeight > window.innerHeight ? e.clientY - tt.offsetHeight - 8 : e.clientY + 18;
      tt.style.left = x + 'px';
      tt.style.top = y + 'px';
    }
    // layout lists the drawn rectangles in CSS pixels (tests and debugging).
    layout() {
      const f = this.flat, out = [], dr = this.drawn;
      const hit = this.matches ? this.matches.hit : null;
      for (let k = 0; k < dr.length; k += 3) {
        const i = dr[k];
        const o = { name: f.name[i], depth: f.depth[i], x: dr[k + 1], width: dr[k + 2], y: this.icicle ? f.depth[i] * ROW : (f.maxDepth - f.depth[i]) * ROW, value: f.w[i] };
        if (hit) o.highlighted = !!hit[i];
        if (this.kinds) o.kind = this.kinds(i, f);
        out.push(o);
      }
      return out;
    }
  }
  const dimmed = new Map();
  function dim(col) {
    let d = dimmed.get(col);
    if (d === undefined) {
      d = col.startsWith('hsl') ? col.replace(/hsl\((\d+(?:\.\d+)?), [\d.]+%, [\d.]+%\)/, 'hsl($1, 10%, 88%)') : '#e6e6e6';
      dimmed.set(col, d);
    }
    return d;
  }
  function warm(name) {
    const h = hashStr(name);
    return `hsl(${(h % 55)}, ${70 + ((h >>> 8) % 20)}%, ${55 + ((h >>> 16) % 12)}%)`;
  }
  function crumbs(el, fg) {
    if (!fg.flat) { el.innerHTML = ''; return; }
    const path = [];
    for (let i = fg.zoom; i >= 0; i = fg.flat.parent[i]) path.push(i);
    path.reverse();
    el.innerHTML = path.map((i, k) => (k === path.length - 1 ? `<b>${esc(fg.flat.name[i])}</b>` : `<a data-i="${i}">${esc(fg.flat.name[i])}</a>`)).join(' › ');
  }
  function bindCrumbs(el, fg) {
    el.addEventListener('click', (e) => { const a = e.target.closest('a[data-i]'); if (a) fg.setZoom(+a.dataset.i, true); });
  }

  // ---------- views ----------
  const cache = {};
  async function cached(key, fn) {
    if (cache[key] && cache[key].ok) return cache[key].data;
    const data = await fn();
    cache[key] = { ok: true, data };
    return data;
  }

  // Flame view: the top table and the flame graph of one selection, side by side.
  const flame = new FlameGraph($('flame'), {
    colorOf: (i, f) => warm(f.name[i]),
    tooltip: (i, f, z) => {
      const n = f.ref[i], tot = f.w[0];
      return `<b>${wbr(n.name)}</b>${n.file ? `<br><small>${wbr(n.file)}:${fmtLine(n.line)}</small>` : ''}<br>total ${fmtInt(n.total)} (${fmtPct((100 * n.total) / tot)}${z ? ', ' + fmtPct((100 * n.total) / f.w[z]) + ' of zoom' : ''})<br>self ${fmtInt(n.self)} (${fmtPct((100 * n.self) / tot)})` +
        '<br><small>click: zoom · right-click or S: sandwich view</small>';
    },
    onZoom: (p) => update({ zoom: p }),
    onSandwich: (name) => update({ view: 'sandwich', fn: name }),
    infoEl: 'frame-info',
  });
  bindCrumbs($('crumbs'), flame);
  let flameKey = '';
  // flameData fetches and flattens a selection's flame graph once per selection.
  function flameData(params) {
    return cached('flame?' + params, async () => {
      const t = await api('flame', params);
      const t0 = performance.now();
      const flat = flatten(t, (n) => n.total, (n) => n.children);
      return { t, flat, flattenMs: performance.now() - t0 };
    });
  }
  async function showFlame(seq) {
    const params = selParams(state);
    const key = 'flame?' + params;
    const tparams = selParams(state, { limit: state.limit || '2000' });
    let tree, top;
    try {
      [tree, top] = await Promise.all([flameData(params), cached('top?' + tparams, () => api('top', tparams))]);
    } catch (e) { if (seq === loadSeq) setStatus('error', e.message); return; }
    if (seq !== loadSeq) return;
    setTop(top);
    const fresh = flameKey !== key;
    if (fresh) { flame.setData(tree.flat); flameKey = key; }
    const turned = flame.icicle !== topDown();
    flame.icicle = topDown();
    flame.zoom = state.zoom ? flame.findPath(state.zoom.split(';')) : 0;
    flame.setSearch(state.q || '');
    if (!tree.t || !tree.t.total) setStatus('empty', 'No samples in this selection. Widen the time range or remove filters.');
    else setStatus('', '');
    if (state.view !== 'top') {
      flame.draw();
      // Bottom-up: the root is the last row; scroll the graph's own box (never the page,
      // whose header holds the controls) so the root is on the first screen.
      if (fresh || turned) showRoot(flame);
      crumbs($('crumbs'), flame);
    }
    renderTop();
    const t = tree.t || {};
    setTotals(`${fmtInt(t.total || 0)} samples${coresOf(t.total || 0, top && top.period_ns, state.from, state.to)} · ${fmtSpan(state.from, state.to)}`);
    $('search-info').textContent = flame.matches ? `matched ${fmtPct(flame.matches.pct)} of samples` : '';
  }

  // Top table (beside the flame graph, or alone in the Top view).
  let topRows = [];
  let topTotal = 0;
  let topCount = 0;
  function setTop(top) {
    topRows = (top && top.functions) || [];
    topTotal = (top && top.total) || 0;
    topCount = top && typeof top.count === 'number' ? top.count : topRows.length;
  }
  function renderTop() {
    const sort = state.sort || '-self';
    const desc = sort.startsWith('-'), col = sort.replace(/^-/, '');
    const m = matcher($('top-filter').value.trim());
    let rows = m ? topRows.filter((r) => m(r.function)) : topRows.slice();
    rows.sort((a, b) => {
      const x = a[col], y = b[col];
      const c = typeof x === 'string' ? x.localeCompare(y) : x - y;
      return desc ? -c : c;
    });
    document.querySelectorAll('#top-table th[data-sort]').forEach((th) => {
      th.classList.toggle('asc', th.dataset.sort === col && !desc);
      th.classList.toggle('desc', th.dataset.sort === col && desc);
    });
    const shown = rows.slice(0, 5000);
    $('top-table').tBodies[0].innerHTML = shown.map((r) =>
      `<tr><td class="fn" title="${esc(r.function)}"><a data-fn="${esc(r.function)}" title="highlight in the flame graph">${esc(r.function)}</a></td>` +
      `<td class="num">${fmtInt(r.self)}</td><td class="num">${fmtPct(r.self_pct)}</td>` +
      `<td class="num">${fmtInt(r.inclusive)}</td><td class="num">${fmtPct(r.inclusive_pct)}</td>` +
      `<td class="acts"><a data-sandwich="${esc(r.function)}" title="callers and callees">sandwich</a> <a data-series="${esc(r.function)}" title="inclusive share over time">gCPU</a></td></tr>`).join('');
    // Counts are counts: how many functions the selection has, how many were fetched, shown.
    const filtered = m ? `${fmtInt(rows.length)} match · ` : '';
    $('top-info').textContent = `${filtered}${fmtInt(Math.min(shown.length, rows.length))} shown of ${fmtInt(topCount)} functions`;
    $('top-more').hidden = topRows.length >= topCount;
    $('top-more').textContent = `load ${fmtInt(Math.min(topCount, topRows.length * 4) - topRows.length)} more`;
  }
  $('top-more').addEventListener('click', () => update({ limit: String(Math.min(topRows.length * 4, 100000)) }, true));
  document.querySelectorAll('#top-table th[data-sort]').forEach((th) => th.addEventListener('click', () => {
    const col = th.dataset.sort, cur = state.sort || '-self';
    // First click sorts numbers descending and names ascending; a second click flips.
    let next = col === 'function' ? col : '-' + col;
    if (cur === next) next = next.startsWith('-') ? col : '-' + col;
    update({ sort: next }, true);
  }));
  $('top-filter').addEventListener('input', () => renderTop());
  $('top-table').addEventListener('click', (e) => {
    const a = e.target.closest('a[data-fn]');
    // An exact-name regex: a substring would also light up longer names containing it.
    if (a) { update({ view: 'flame', q: '/^' + a.dataset.fn.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&') + '$/', zoom: '' }, state.view === 'flame'); return; }
    const w = e.target.closest('a[data-sandwich]');
    if (w) { update({ view: 'sandwich', fn: w.dataset.sandwich }); return; }
    const s = e.target.closest('a[data-series]');
    if (s) update({ view: 'series', fn: s.dataset.series });
  });

  // Sandwich view: one function's callers above it and its callees below, merged over
  // every call path that reaches it. Recursive calls count once (the outermost call).
  function sandwichOf(flat, fn) {
    const node = (name) => ({ name, total: 0, self: 0, children: [], kids: new Map() });
    const child = (n, name) => {
      let c = n.kids.get(name);
      if (!c) { c = node(name); n.kids.set(name, c); n.children.push(c); }
      return c;
    };
    const callers = node(fn), callees = node(fn);
    const merge = (dst, src) => {
      for (const c of src.children || []) {
        const d = child(dst, c.name);
        d.total += c.total; d.self += c.self;
        merge(d, c);
      }
    };
    let calls = 0;
    for (let i = 1; i < flat.n;) {
      if (flat.name[i] !== fn) { i++; continue; }
      const w = flat.w[i], src = flat.ref[i];
      calls++;
      callers.total += w; callees.total += w; callees.self += src.self;
      merge(callees, src);
      let cur = callers;
      for (let a = flat.parent[i]; a > 0; a = flat.parent[a]) { cur = child(cur, flat.name[a]); cur.total += w; }
      cur.self += w; // the outermost caller: these samples' stacks start here
      i = flat.end[i]; // nested (recursive) calls are inside this subtree
    }
    return { callers, callees, calls };
  }
  const swTooltip = (what) => (i, f) => {
    const n = f.ref[i], tot = f.w[0];
    return `<b>${wbr(n.name)}</b><br>${fmtInt(n.total)} samples (${fmtPct(tot > 0 ? (100 * n.total) / tot : 0)} of the function's) ${what}`;
  };
  const swCallers = new FlameGraph($('sw-callers'), { colorOf: (i, f) => warm(f.name[i]), tooltip: swTooltip('through this caller') });
  const swCallees = new FlameGraph($('sw-callees'), { colorOf: (i, f) => warm(f.name[i]), tooltip: swTooltip('in this callee') });
  swCallers.icicle = false; // the function is the bottom row, its callers above
  swCallees.icicle = true;
  async function showSandwich(seq) {
    const fn = state.fn || '';
    if (!fn) {
      swCallers.setData(flatten({ name: '', total: 0, children: [] }, (n) => n.total, (n) => n.children)); swCallers.draw();
      swCallees.setData(swCallers.flat); swCallees.draw();
      setStatus('empty', 'Pick a function: type its name, or use "sandwich" in the table or S / right-click on a flame graph frame.');
      return;
    }
    const params = selParams(state);
    let tree;
    try { tree = await flameData(params); } catch (e) { if (seq === loadSeq) setStatus('error', e.message); return; }
    if (seq !== loadSeq) return;
    const sw = sandwichOf(tree.flat, fn);
    swCallers.setData(flatten(sw.callers, (n) => n.total, (n) => n.children));
    swCallees.setData(flatten(sw.callees, (n) => n.total, (n) => n.children));
    swCallers.draw(); swCallees.draw();
    showRoot(swCallers); showRoot(swCallees);
    const total = tree.t ? tree.t.total : 0;
    if (!sw.calls) setStatus('empty', `No samples of ${fn} in this selection.`);
    else setStatus('', '');
    $('sw-info').textContent = sw.calls ? `${fmtInt(sw.callers.total)} samples (${fmtPct(total > 0 ? (100 * sw.callers.total) / total : 0)} of the selection), self ${fmtInt(sw.callees.self)}` : '';
    setTotals(`${fmtInt(total)} samples · ${fmtSpan(state.from, state.to)}`);
  }
  $('sandwich-form').addEventListener('submit', (e) => { e.preventDefault(); update({ fn: $('sw-fn').value.trim() }); });

  // Diff view.
  function diffColor(d, scale) {
    const t = scale > 0 ? Math.min(Math.abs(d) / scale, 1) : 0;
    if (t < 0.02) return 'hsl(0, 0%, 88%)';
    const l = 92 - 42 * t;
    return d > 0 ? `hsl(0, 80%, ${l.toFixed(1)}%)` : `hsl(210, 80%, ${l.toFixed(1)}%)`;
  }
  const diffKind = (d, scale) => (scale > 0 && Math.abs(d) / scale >= 0.02 ? (d > 0 ? 'more' : 'less') : 'same');
  let diffScale = 1;
  const diffFG = new FlameGraph($('diffcanvas'), {
    colorOf: (i, f) => diffColor(f.ref[i].delta_pct, diffScale),
    tooltip: (i, f) => {
      const n = f.ref[i];
      return `<b>${esc(n.name)}</b><br>baseline ${fmtInt(n.base)} (${fmtPct(n.base_pct)}), self ${fmtInt(n.base_self)}` +
        `<br>comparison ${fmtInt(n.cmp)} (${fmtPct(n.cmp_pct)}), self ${fmtInt(n.cmp_self)}` +
        `<br>change <b class="${n.delta_pct > 0 ? 'more-txt' : 'less-txt'}">${fmtDelta(n.delta_pct)}</b> of total`;
    },
    onZoom: (p) => update({ dzoom: p }),
    onSandwich: (name) => update({ view: 'sandwich', fn: name }),
  });
  diffFG.kinds = (i, f) => diffKind(f.ref[i].delta_pct, diffScale);
  bindCrumbs($('diff-crumbs'), diffFG);
  function diffParams(s) {
    const q = new URLSearchParams();
    if (s.service) q.set('service', s.service);
    q.set('base_from', s.bfrom || s.from);
    q.set('base_to', s.bto || s.to);
    q.set('cmp_from', s.cfrom || s.from);
    q.set('cmp_to', s.cto || s.to);
    s.f.forEach((f) => q.append('filter', f));
    s.bf.forEach((f) => q.append('base_filter', f));
    s.cf.forEach((f) => q.append('cmp_filter', f));
    q.set('movers', '50');
    return q;
  }
  function prepareDiff(d, width) {
    const val = width === 'base' ? (n) => n.base_pct : width === 'both' ? (n) => (n.base_pct + n.cmp_pct) / 2 : (n) => n.cmp_pct;
    const flat = flatten(d.root || { name: 'root', base_pct: 0, cmp_pct: 0, delta_pct: 0 }, val, (n) => n.children);
    // Colour scale: the largest change below the root, so the strongest mover is fully saturated.
    let scale = 0;
    for (let i = 1; i < flat.n; i++) scale = Math.max(scale, Math.abs(flat.ref[i].delta_pct || 0));
    return { flat, scale: scale || 1 };
  }
  let diffKey = '';
  async function showDiff(seq) {
    const params = diffParams(state);
    const width = state.dw || 'cmp';
    const key = 'diff?' + params;
    let d;
    try { d = await cached(key, () => api('diff', params)); } catch (e) { if (seq === loadSeq) setStatus('error', e.message); return; }
    if (seq !== loadSeq) return;
    if (diffKey !== key + width) {
      const p = prepareDiff(d, width);
      diffFG.setData(p.flat); diffScale = p.scale; diffKey = key + width;
    }
    renderDiff(d);
  }
  function renderDiff(d) {
    if (!d.base_total && !d.cmp_total) setStatus('empty', 'Both sides of the diff are empty. Check the time ranges and filters.');
    else if (!d.base_total) setStatus('empty', 'The baseline has no samples: everything shows as new.');
    else if (!d.cmp_total) setStatus('empty', 'The comparison has no samples.');
    else setStatus('', '');
    diffFG.icicle = topDown();
    diffFG.zoom = state.dzoom ? diffFG.findPath(state.dzoom.split(';')) : 0;
    diffFG.setSearch(state.dq || '');
    diffFG.draw();
    showRoot(diffFG);
    crumbs($('diff-crumbs'), diffFG);
    const side = (n, a, b) => `${fmtInt(n || 0)} samples · ${fmtSpan(a, b)}`;
    setTotals(`baseline ${side(d.base_total, state.bfrom || state.from, state.bto || state.to)} — comparison ${side(d.cmp_total, state.cfrom || state.from, state.cto || state.to)}`);
    $('movers').tBodies[0].innerHTML = (d.movers || []).map((m) =>
      `<tr><td class="fn" title="${esc(m.function)}"><a data-q="${esc(m.function)}">${esc(m.function)}</a></td><td class="num">${fmtPct(m.base_inclusive_pct)}</td>` +
      `<td class="num">${fmtPct(m.cmp_inclusive_pct)}</td><td class="num ${m.delta_inclusive_pct > 0 ? 'more-txt' : m.delta_inclusive_pct < 0 ? 'less-txt' : ''}">${fmtDelta(m.delta_inclusive_pct)}</td></tr>`).join('') ||
      '<tr><td colspan="4">no changes</td></tr>';
  }
  $('movers').addEventListener('click', (e) => { const a = e.target.closest('a[data-q]'); if (a) update({ dq: a.dataset.q }, true); });
  $('diff-form').addEventListener('submit', (e) => {
    e.preventDefault();
    update({ bfrom: $('bfrom').value.trim(), bto: $('bto').value.trim(), cfrom: $('cfrom').value.trim(), cto: $('cto').value.trim(),
      bf: parseFilterList($('bf').value), cf: parseFilterList($('cf').value), dzoom: '' });
  });
  $('preset-period').addEventListener('click', () => {
    // Baseline = the same length of time just before the selected range (relative times only).
    const dur = (s) => { const m = /^now-(\d+)([mhd])$/.exec(s); return m ? { n: +m[1], u: m[2] } : s === 'now' ? { n: 0, u: 'h' } : null; };
    const f = dur(state.from), t = dur(state.to);
    let bfrom = '', bto = '';
    if (f && t) {
      const mins = (x) => x.n * { m: 1, h: 60, d: 1440 }[x.u];
      const len = mins(f) - mins(t);
      bto = 'now-' + mins(f) + 'm'; bfrom = 'now-' + (mins(f) + len) + 'm';
    } else {
      const a = Date.parse(state.from), b = Date.parse(state.to);
      if (!isNaN(a) && !isNaN(b)) { bto = new Date(a).toISOString(); bfrom = new Date(a - (b - a)).toISOString(); }
    }
    if (!bfrom) { setStatus('error', 'previous period: use relative (now-1h) or RFC 3339 times'); return; }
    update({ bfrom, bto, cfrom: state.from, cto: state.to, bf: [], cf: [], dzoom: '' });
  });
  // Picking versions fills the form; the one Compare button runs the diff.
  for (const id of ['vbase', 'vcmp']) $(id).addEventListener('change', () => {
    const b = $('vbase').value, c = $('vcmp').value;
    if (!b || !c) return;
    for (const f of ['bfrom', 'bto', 'cfrom', 'cto']) $(f).value = '';
    $('bf').value = 'version=' + b; $('cf').value = 'version=' + c;
  });
  $('diff-width').addEventListener('change', () => update({ dw: $('diff-width').value, dzoom: '' }, true));
  $('diff-search').addEventListener('input', () => update({ dq: $('diff-search').value }, true));

  // Series view: a function's inclusive share per step, with change points and deploys.
  async function showSeries(seq) {
    const chart = $('chart');
    if (!state.fn) { chart.innerHTML = ''; setStatus('empty', 'Pick a function (type its name, or use the gCPU link in the Top table).'); return; }
    const params = selParams(state, { function: state.fn, step: state.step || autoStep(state.from, state.to) });
    let series, versions = [], findings = [], ramps = [];
    try {
      series = list(await cached('series?' + params, () => api('series', params)), 'points', 'series');
    } catch (e) { if (seq === loadSeq) setStatus('error', e.message); return; }
    // Deploys and change points are decoration: show the series even if they fail.
    const notes = [];
    if (state.service) { // deploys are per service
      try {
        versions = list(await cached('versions?' + params, () => api('versions', selParams(state))), 'versions');
      } catch (e) { notes.push('deploys unavailable: ' + e.message); }
    }
    try {
      const fq = new URLSearchParams({ kind: 'regression' });
      if (state.service) fq.set('service', state.service);
      findings = list(await cached('findings?' + fq, () => api('findings', fq)), 'findings').map(findingOf)
        .filter((f) => f.function === state.fn && f.change_time);
      fq.set('kind', 'gradual');
      ramps = list(await cached('findings?' + fq, () => api('findings', fq)), 'findings').map(findingOf)
        .filter((f) => f.function === state.fn && f.gradual);
    } catch (e) { notes.push('change points unavailable: ' + e.message); }
    if (seq !== loadSeq) return;
    if (!series.length) setStatus('empty', 'No samples for this function in the selection.');
    else setStatus(notes.length ? 'empty' : '', notes.join('; '));
    chart.innerHTML = seriesSVG(series, versions, findings, chart.clientWidth || 900, ramps);
  }
  // autoStep picks a step giving at most ~400 points over the range (the API caps points).
  function autoStep(from, to) {
    const now = Date.now(), span = timeMs(to, now) - timeMs(from, now);
    if (!(span > 0)) return '';
    for (const [s, d] of [['1m', 60e3], ['5m', 300e3], ['15m', 900e3], ['1h', 3600e3], ['6h', 21600e3]]) if (span / d <= 400) return s;
    return '24h';
  }
  function seriesSVG(pts, versions, findings, W, ramps = []) {
    const H = 280, L = 60, R = 50, T = 14, B = 30;
    if (!pts.length) return '';
    const ts = pts.map((p) => Date.parse(p.time));
    const t0 = Math.min(...ts), t1 = Math.max(...ts, t0 + 1);
    const ymax = Math.max(...pts.map((p) => p.share || 0), 1e-9) * 1.1;
    const X = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const Y = (v) => T + (1 - v / ymax) * (H - T - B);
    const line = pts.map((p, k) => (k ? 'L' : 'M') + X(ts[k]).toFixed(1) + ',' + Y(p.share || 0).toFixed(1)).join('');
    let g = '';
    for (let k = 0; k <= 4; k++) {
      const v = (ymax * k) / 4;
      g += `<line x1="${L}" x2="${W - R}" y1="${Y(v)}" y2="${Y(v)}" stroke="#eee"/><text x="${L - 4}" y="${Y(v) + 4}" text-anchor="end" font-size="10">${esc(fmtPct(100 * v))}</text>`;
    }
    for (let k = 0; k <= 4; k++) {
      const t = t0 + ((t1 - t0) * k) / 4;
      g += `<text x="${X(t)}" y="${H - 10}" text-anchor="middle" font-size="10">${esc(new Date(t).toISOString().replace('T', ' ').slice(5, 16))}</text>`;
    }
    for (const v of versions) {
      const t = Date.parse(v.first_seen);
      if (!(t >= t0 && t <= t1)) continue;
      g += `<line class="deploy" x1="${X(t)}" x2="${X(t)}" y1="${T}" y2="${H - B}" stroke="#78909c" stroke-dasharray="3,3"><title>deploy ${esc(v.version)}</title></line>` +
        `<text x="${X(t) + 3}" y="${T + 10}" font-size="10" fill="#546e7a">${esc(v.version)}</text>`;
    }
    // A gradual finding's ramp is a band from its start to its end (clipped to the chart).
    for (const f of ramps) {
      const a = Math.max(t0, Date.parse(f.gradual.start)), b = Math.min(t1, Date.parse(f.gradual.end));
      if (!(b > a)) continue;
      g += `<rect class="ramp" x="${X(a).toFixed(1)}" y="${T}" width="${(X(b) - X(a)).toFixed(1)}" height="${H - B - T}" fill="#c62828" fill-opacity="0.08"><title>ramp ${esc(fmtDelta(100 * (f.relative_change || 0)))} ${esc(f.gradual.start)} … ${esc(f.gradual.end)}</title></rect>`;
    }
    for (const f of findings) {
      const t = Date.parse(f.change_time);
      if (!(t >= t0 && t <= t1)) continue;
      g += `<line class="changepoint" x1="${X(t)}" x2="${X(t)}" y1="${T}" y2="${H - B}" stroke="#c62828" stroke-width="2"><title>change point ${esc(fmtDelta(100 * (f.absolute_change || 0)))}</title></line>`;
    }
    const dots = pts.map((p, k) => `<circle cx="${X(ts[k]).toFixed(1)}" cy="${Y(p.share || 0).toFixed(1)}" r="2" fill="#1565c0"><title>${esc(p.time)}: ${esc(fmtPct(100 * (p.share || 0)))} (${fmtInt(p.inclusive)}/${fmtInt(p.total)})</title></circle>`).join('');
    return `<svg width="${W}" height="${H}" data-points="${pts.length}">${g}<path d="${line}" fill="none" stroke="#1565c0" stroke-width="1.5"/>${dots}</svg>`;
  }
  $('series-form').addEventListener('submit', (e) => { e.preventDefault(); update({ fn: $('fn').value.trim(), step: $('step').value }); });

  // Findings view.
  function findingOf(rec) {
    // A stored record wraps the analyzer's finding in body; a bare finding is accepted too.
    let b = rec && rec.body !== undefined ? rec.body : rec;
    if (typeof b === 'string') { try { b = JSON.parse(b); } catch (e) { b = {}; } }
    return Object.assign({}, b || {}, { id: (b && b.id) || rec.id, kind: (b && b.kind) || rec.kind, service: (b && b.service) || rec.service, created: rec.created });
  }
  function prBody(f) {
    const r = f.resolution || f.pr;
    if (!r) return null;
    if (typeof r === 'string') return { title: '', body: r };
    return { title: r.title || '', body: r.body || r.pr_body || r.markdown || r.description || '', url: /^https?:\/\//.test(r.url || r.html_url || '') ? r.url || r.html_url : '' };
  }
  function findingDiff(f) {
    const s = { view: 'diff', service: f.service || state.service, f: [], dzoom: '', dq: f.function || '' };
    const ws = f.window_start, we = f.window_end, ct = f.change_time, g = f.gradual;
    if (g && g.start && g.end) {
      // A ramp: before it started against its last quarter and after (an ongoing ramp
      // ends at the window's end).
      const a = Date.parse(g.start), b = Date.parse(g.end);
      Object.assign(s, { bf: [], cf: [], bfrom: ws || new Date(a - (b - a)).toISOString(), bto: g.start,
        cfrom: new Date(b - (b - a) / 4).toISOString(), cto: we || 'now' });
    } else if (f.version_before && f.version_after && f.version_before !== f.version_after) {
      Object.assign(s, { bf: ['version=' + f.version_before], cf: ['version=' + f.version_after], bfrom: '', bto: '', cfrom: '', cto: '' });
      if (ws && we) { s.from = ws; s.to = we; }
    } else if (ct) {
      Object.assign(s, { bf: [], cf: [], bfrom: ws || ct + '', bto: ct, cfrom: ct, cto: we || 'now' });
      if (!ws) { const t = Date.parse(ct); s.bfrom = new Date(t - 3600e3).toISOString(); }
    } else {
      Object.assign(s, { bf: [], cf: [] });
      if (ws && we) { s.from = ws; s.to = we; }
    }
    return s;
  }
  function markdown(md) {
    // Small, safe Markdown subset: everything is escaped first.
    const lines = esc(md).split('\n');
    let out = '', inCode = false, inList = false;
    for (const ln of lines) {
      if (/^```/.test(ln)) { out += inCode ? '</pre>' : '<pre>'; inCode = !inCode; continue; }
      if (inCode) { out += ln + '\n'; continue; }
      const li = /^\s*[-*] (.*)$/.exec(ln);
      if (li && !inList) { out += '<ul>'; inList = true; }
      if (!li && inList) { out += '</ul>'; inList = false; }
      let h = ln.replace(/`([^`]+)`/g, '<code>$1</code>').replace(/\*\*([^*]+)\*\*/g, '<b>$1</b>')
        .replace(/\[([^\]]+)\]\((https?:\/\/[^)\s]+)\)/g, '<a href="$2" rel="noopener" target="_blank">$1</a>');
      const hd = /^(#{1,6}) (.*)$/.exec(h);
      if (li) out += '<li>' + h.replace(/^\s*[-*] /, '') + '</li>';
      else if (hd) out += `<h${Math.min(hd[1].length + 3, 6)}>${hd[2]}</h${Math.min(hd[1].length + 3, 6)}>`;
      else if (h.trim()) out += '<p>' + h + '</p>';
    }
    if (inCode) out += '</pre>';
    if (inList) out += '</ul>';
    return out;
  }
  let findingsShown = [];
  let findingsMore = false; // the API had more findings than were fetched
  const findingsPage = {}; // per kind: how many are shown
  // Opportunities come a page at a time from /opportunities (each service's latest
  // run, ranked by estimated saving, with the total of all of them); oppsTotal is
  // that total, null when the findings list holds the opportunities instead.
  let oppsTotal = null;
  // Other findings are fetched up to FINDINGS_FETCH, sorted by estimated cores (the
  // cost of a regression) and shown FINDINGS_PAGE at a time.
  const FINDINGS_FETCH = 1000, FINDINGS_PAGE = 25;
  const findingCores = (f) => (f.opportunity && typeof f.opportunity.estimated_saving_cores === 'number' ? f.opportunity.estimated_saving_cores
    : typeof f.estimated_cores === 'number' ? f.estimated_cores : -1);
  async function opportunitiesPage(offset) {
    const q = new URLSearchParams({ limit: String(FINDINGS_PAGE), offset: String(offset) });
    if (state.service) q.set('service', state.service);
    const body = await cached('opportunities?' + q, () => api('opportunities', q));
    return { recs: list(body, 'findings').map(findingOf), total: typeof body.total === 'number' ? body.total : null };
  }
  async function showFindings(seq) {
    const q = new URLSearchParams({ limit: String(FINDINGS_FETCH) });
    if (state.kind) q.set('kind', state.kind);
    if (state.service) q.set('service', state.service);
    let body, opps = null;
    try {
      body = await cached('findings?' + q, () => api('findings', q));
      if (!state.kind || state.kind === 'opportunity') opps = await opportunitiesPage(0);
    } catch (e) { if (seq === loadSeq) setStatus('error', e.message); return; }
    if (seq !== loadSeq) return;
    const recs = list(body, 'findings');
    findingsMore = typeof body.total === 'number' ? body.total > recs.length : recs.length >= FINDINGS_FETCH;
    findingsShown = recs.map(findingOf).sort((a, b) => findingCores(b) - findingCores(a));
    oppsTotal = opps && opps.total !== null ? opps.total : null;
    if (oppsTotal !== null) findingsShown = findingsShown.filter((f) => f.kind !== 'opportunity').concat(opps.recs);
    setStatus(findingsShown.length ? '' : 'empty', findingsShown.length ? '' : 'No findings for this service yet.');
    renderFindings();
  }
  async function moreOpportunities() {
    const have = findingsShown.filter((f) => f.kind === 'opportunity').length;
    const seq = loadSeq;
    let page;
    try { page = await opportunitiesPage(have); } catch (e) { setStatus('error', e.message); return; }
    if (seq !== loadSeq) return;
    findingsShown = findingsShown.concat(page.recs);
    if (page.total !== null) oppsTotal = page.total;
    renderFindings();
  }
  function renderFindings() {
    const groups = [['regression', 'Regressions'], ['gradual', 'Gradual regressions'], ['opportunity', 'Opportunities'], ['', 'Other']];
    const known = groups.map(([k]) => k).filter((k) => k);
    let html = '';
    for (const [kind, title] of groups) {
      const fs = findingsShown.map((f, i) => [f, i]).filter(([f]) => (kind ? f.kind === kind : !known.includes(f.kind)));
      if (!fs.length) continue;
      const paged = kind === 'opportunity' && oppsTotal !== null;
      const total = paged ? Math.max(oppsTotal, fs.length) : fs.length;
      const n = paged ? fs.length : Math.min(findingsPage[kind] || FINDINGS_PAGE, fs.length);
      const of = `${fmtInt(total)}${!paged && findingsMore ? '+' : ''}`;
      html += `<h3>${title} <small>(${n < total ? fmtInt(n) + ' shown of ' : ''}${of}, by estimated ${kind === 'opportunity' ? 'saving in cores' : 'cores'})</small></h3>` +
        fs.slice(0, n).map(([f, i]) => findingHTML(f, i)).join('');
      if (n < total) html += `<button type="button" class="more-btn" data-more="${kind}">show ${fmtInt(Math.min(FINDINGS_PAGE, total - n))} more</button>`;
    }
    $('findings-list').innerHTML = html;
  }
  // Later analysis runs that found a finding again update last_seen (same id).
  const seenText = (f) => `first seen ${esc(f.first_seen)}` + (f.last_seen && f.last_seen !== f.first_seen ? `, last seen ${esc(f.last_seen)}` : '');
  function findingHTML(f, i) {
    const share = (s) => (s && typeof s.value === 'number' ? `${fmtPct(100 * s.value)} [${fmtPct(100 * (s.lo || 0))}, ${fmtPct(100 * (s.hi || 0))}]` : '?');
    const ev = [];
    if (f.kind === 'regression') {
      // A self-share finding: the function's own code; its inclusive share beside it.
      const self = Array.isArray(f.filters_passed) && f.filters_passed.includes('self_share');
      ev.push(`${self ? 'self' : 'inclusive'} share ${share(f.before)} → ${share(f.after)}`);
      if (self && f.inclusive_before && f.inclusive_after) ev.push(`inclusive ${share(f.inclusive_before)} → ${share(f.inclusive_after)}`);
      if (typeof f.relative_change === 'number') ev.push(`relative ${fmtDelta(100 * f.relative_change)}`);
      if (typeof f.estimated_cores === 'number') ev.push(`≈ ${f.estimated_cores.toFixed(3)} cores`);
      if (typeof f.p_value === 'number') ev.push(`p = ${f.p_value.toExponential(2)}`);
      if (f.change_time) ev.push(`changed at ${esc(f.change_time)}`);
      if (f.version_before || f.version_after) ev.push(`versions ${esc(f.version_before || '?')} → ${esc(f.version_after || '?')}`);
      if (f.first_seen) ev.push(seenText(f));
    } else if (f.kind === 'gradual' && f.gradual) {
      const g = f.gradual;
      ev.push(`ramp ${esc(g.start)} … ${esc(g.end)}`, `inclusive share ${share(f.before)} → ${share(f.after)}`);
      if (typeof g.cumulative_change === 'number') ev.push(`cumulative ${fmtDelta(100 * g.cumulative_change)}`);
      if (typeof g.slope_per_hour === 'number') ev.push(`${fmtDelta(100 * 24 * g.slope_per_hour)} of the service per day`);
      if (typeof f.estimated_cores === 'number') ev.push(`≈ ${f.estimated_cores.toFixed(3)} cores`);
      if (typeof f.p_value === 'number') ev.push(`p = ${f.p_value.toExponential(2)}`);
      ev.push(Array.isArray(g.releases) && g.releases.length ? `releases during the ramp: ${g.releases.map(esc).join(', ')}` : 'no release during the ramp');
      if (f.first_seen) ev.push(seenText(f));
    } else if (f.opportunity) {
      const o = f.opportunity;
      ev.push(`pattern <b>${esc(o.pattern || '?')}</b>`, `share ${share(f.before)}`);
      if (typeof o.estimated_saving_share === 'number') ev.push(`saving ${fmtPct(100 * o.estimated_saving_share)}`);
      if (typeof o.estimated_saving_cores === 'number') ev.push(`≈ ${o.estimated_saving_cores.toFixed(3)} cores`);
    }
    let extra = '';
    if (f.opportunity && f.opportunity.description) extra += `<p>${esc(f.opportunity.description)}</p>`;
    if (Array.isArray(f.root_causes) && f.root_causes.length) {
      extra += '<div class="ev">root causes: ' + f.root_causes.slice(0, 3).map((r) =>
        `${r.pr ? 'PR #' + esc(r.pr) : esc((r.commit || '').slice(0, 10))} ${esc(r.title || '')} (${esc(r.author || '')}, confidence ${((r.confidence || 0) * 100).toFixed(0)}%)`).join('; ') + '</div>';
    }
    if (Array.isArray(f.representative_stacks) && f.representative_stacks.length) {
      extra += '<details><summary>representative stacks</summary>' + f.representative_stacks.slice(0, 5).map((s) =>
        `<pre>${esc((s.frames || []).join('\n'))}\n(${fmtPct(100 * (s.share || 0))})</pre>`).join('') + '</details>';
    }
    const pr = prBody(f);
    if (pr) extra += `<div class="pr"><b>Proposed change${pr.title ? ': ' + esc(pr.title) : ''}</b>${pr.url ? ` <a href="${esc(pr.url)}" target="_blank" rel="noopener">open</a>` : ''}${markdown(pr.body || '')}</div>`;
    return `<div class="finding ${esc(f.kind || '')}" data-id="${esc(f.id || '')}"><h4>${f.function ? wbr(f.function) : '(no function)'}</h4>` +
      `<div class="ev">${esc(f.service || '')} · ${ev.join(' · ')}</div>${extra}` +
      `<div class="actions"><a data-diff="${i}">open flame diff</a>${f.function ? `<a data-series-i="${i}">gCPU over time</a>` : ''}</div></div>`;
  }
  $('findings-list').addEventListener('click', (e) => {
    const m = e.target.closest('button[data-more]');
    if (m) {
      const k = m.dataset.more;
      if (k === 'opportunity' && oppsTotal !== null) { moreOpportunities(); return; }
      findingsPage[k] = (findingsPage[k] || FINDINGS_PAGE) + FINDINGS_PAGE; renderFindings(); return;
    }
    const d = e.target.closest('a[data-diff]');
    if (d) { update(findingDiff(findingsShown[+d.dataset.diff])); syncForm(); return; }
    const s = e.target.closest('a[data-series-i]');
    if (s) {
      const f = findingsShown[+s.dataset.seriesI];
      const p = { view: 'series', fn: f.function, service: f.service || state.service };
      if (f.window_start && f.window_end) { p.from = f.window_start; p.to = f.window_end; }
      update(p); syncForm();
    }
  });
  $('fkind').addEventListener('change', () => update({ kind: $('fkind').value }));

  // ---------- selection form ----------
  async function loadServices() {
    const sel = $('service');
    try {
      const q = new URLSearchParams({ from: state.from, to: state.to });
      const svcs = list(await api('services', q), 'services');
      const cur = state.service || '';
      const names = svcs.includes(cur) || !cur ? svcs : [cur].concat(svcs);
      sel.innerHTML = '<option value="">(all)</option>' + names.map((s) => `<option>${esc(s)}</option>`).join('');
      sel.value = cur;
      if (!cur && svcs.length === 1) { sel.value = svcs[0]; update({ service: svcs[0] }, true); }
    } catch (e) {
      // The view's own query usually fails the same way; keep its message if it came first.
      if (document.body.dataset.status !== 'error') setStatus('error', e.message);
    }
  }
  async function loadLabels() {
    try {
      const keys = list(await api('labels', selParams(state)), 'keys', 'labels');
      $('fkey').innerHTML = '<option value="">+ label…</option>' + keys.filter((k) => k !== 'service').map((k) => `<option>${esc(k)}</option>`).join('');
    } catch (e) { /* the selection's own query reports errors */ }
    try {
      const q = selParams(Object.assign({}, state, { f: [] }));
      const vals = list(await api('label/version/values', q), 'values');
      const opts = vals.map((v) => `<option>${esc(v)}</option>`).join('');
      $('vbase').innerHTML = opts; $('vcmp').innerHTML = opts;
      if (vals.length > 1) $('vcmp').value = vals[vals.length - 1];
    } catch (e) { /* optional */ }
  }
  $('fkey').addEventListener('change', async () => {
    const key = $('fkey').value, fv = $('fval');
    if (!key) { fv.hidden = true; return; }
    try {
      const vals = list(await api('label/' + encodeURIComponent(key) + '/values', selParams(state)), 'values');
      fv.innerHTML = '<option value="">value…</option>' + vals.map((v) => `<option>${esc(v)}</option>`).join('');
      fv.hidden = false;
    } catch (e) { setStatus('error', e.message); }
  });
  $('fval').addEventListener('change', () => {
    const key = $('fkey').value, v = $('fval').value;
    if (!key || !v) return;
    $('fkey').value = ''; $('fval').hidden = true;
    update({ f: state.f.concat([key + '=' + v]), zoom: '', dzoom: '' });
    syncForm(); loadLabels();
  });
  $('filters').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-k]');
    if (!b) return;
    update({ f: state.f.filter((_, k) => k !== +b.dataset.k), zoom: '', dzoom: '' });
    syncForm(); loadLabels();
  });
  $('selection').addEventListener('submit', (e) => {
    e.preventDefault();
    const svc = $('service').value;
    update({ service: svc, from: $('from').value.trim() || 'now-1h', to: $('to').value.trim() || 'now', zoom: '', dzoom: '' });
    loadServices(); loadLabels();
  });
  $('service').addEventListener('change', () => { update({ service: $('service').value, zoom: '', dzoom: '' }); loadLabels(); });
  $('range').addEventListener('change', () => {
    const r = $('range').value;
    if (!r) return;
    $('range').value = '';
    update({ from: 'now-' + r, to: 'now', zoom: '', dzoom: '' });
    syncForm();
  });
  $('search').addEventListener('input', () => update({ q: $('search').value }, true));
  $('layout').addEventListener('change', () => update({ layout: $('layout').value }, true));
  for (const id of ['icicle', 'diff-icicle']) $(id).addEventListener('change', () => update({ icicle: $(id).checked ? '' : '0' }, true));
  $('diff-reset-zoom').addEventListener('click', () => update({ dzoom: '' }));
  $('reset-zoom').addEventListener('click', () => update({ zoom: '' }));
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape' || e.target.tagName === 'INPUT') return;
    if (state.view === 'flame' && state.zoom) update({ zoom: '' });
    if (state.view === 'diff' && state.dzoom) update({ dzoom: '' });
  });
  document.querySelectorAll('#tabs a').forEach((a) => a.addEventListener('click', (e) => { e.preventDefault(); update({ view: a.dataset.view }); }));

  // syncForm shows the state in the controls; the control being edited keeps its text.
  function syncForm() {
    const set = (id, v) => { const e = $(id); if (e !== document.activeElement && e.value !== v) e.value = v; };
    set('from', state.from); set('to', state.to);
    if ($('service').value !== (state.service || '')) {
      if (state.service && ![...$('service').options].some((o) => o.value === state.service)) $('service').add(new Option(state.service, state.service));
      $('service').value = state.service || '';
    }
    $('filters').innerHTML = state.f.map((f, k) => `<span class="chip">${esc(f)}<button type="button" data-k="${k}" title="remove">×</button></span>`).join('');
    set('search', state.q || '');
    $('icicle').checked = $('diff-icicle').checked = topDown();
    set('bfrom', state.bfrom || ''); set('bto', state.bto || '');
    set('cfrom', state.cfrom || ''); set('cto', state.cto || '');
    $('bfrom').placeholder = $('cfrom').placeholder = state.from; $('bto').placeholder = $('cto').placeholder = state.to;
    set('bf', state.bf.join(', ')); set('cf', state.cf.join(', '));
    $('diff-width').value = state.dw || 'cmp';
    set('diff-search', state.dq || '');
    set('fn', state.fn || '');
    set('sw-fn', state.fn || '');
    $('layout').value = state.layout || '';
    const step = state.step || '';
    if (![...$('step').options].some((o) => o.value === step)) $('step').add(new Option(step, step));
    $('step').value = step;
    $('fkind').value = state.kind || '';
  }

  // ---------- render ----------
  const views = { flame: showFlame, top: showFlame, sandwich: showSandwich, diff: showDiff, series: showSeries, findings: showFindings };
  function showOnly(v) {
    // The Top view is the flame view's table alone.
    const section = v === 'top' ? 'flame' : v;
    const fv = $('view-flame');
    fv.classList.toggle('mode-table', v === 'top');
    fv.classList.toggle('mode-flame', v === 'flame' && state.layout === 'flame');
    document.querySelectorAll('.view').forEach((el) => el.classList.toggle('active', el.id === 'view-' + section));
    document.querySelectorAll('#tabs a').forEach((a) => a.classList.toggle('active', a.dataset.view === v));
  }
  async function render() {
    const v = views[state.view] ? state.view : 'flame';
    showOnly(v);
    document.title = `${state.service || 'all services'} · ${v} · fleetprof`;
    $('download').href = API + 'profile?' + selParams(state, { format: 'pprof' });
    const seq = ++loadSeq;
    setTotals('');
    const slow = setTimeout(() => { if (seq === loadSeq) setStatus('loading', 'Loading…'); }, 0);
    document.body.dataset.status = 'loading';
    try {
      await views[v](seq);
    } catch (e) {
      if (seq === loadSeq) setStatus('error', 'UI error: ' + e.message);
    } finally {
      clearTimeout(slow);
      if (seq === loadSeq && document.body.dataset.status === 'loading') setStatus('', '');
    }
  }

  // ---------- test and debugging hooks ----------
  // Render benchmarks measure from "data received" to "painted": render synchronously,
  // then wait for the next animation frame (the paint).
  function timeToPaint(fn) {
    return new Promise((resolve) => {
      const t0 = performance.now();
      fn();
      requestAnimationFrame(() => setTimeout(() => resolve(performance.now() - t0), 0));
    });
  }
  window.__fleetprof = {
    state: () => JSON.parse(JSON.stringify(state)),
    layout: () => flame.layout(),
    flameLayout: () => flame.layout(),
    diffLayout: () => diffFG.layout(),
    sandwichLayout: () => ({ callers: swCallers.layout(), callees: swCallees.layout() }),
    // redraw times one synchronous canvas redraw of the current data ("flame" or "diff").
    redraw: (which) => {
      const fg = which === 'diff' ? diffFG : flame;
      const t0 = performance.now();
      fg.draw();
      return performance.now() - t0;
    },
    search: () => flame.matches && { pct: flame.matches.pct },
    renderFlame: (tree) => timeToPaint(() => {
      loadSeq++; // drop any answer still in flight
      setStatus('', '');
      showOnly('flame');
      flame.setData(flatten(tree, (n) => n.total, (n) => n.children));
      flame.icicle = topDown();
      flameKey = 'injected';
      flame.draw();
      crumbs($('crumbs'), flame);
    }),
    renderDiff: (d) => timeToPaint(() => {
      loadSeq++;
      showOnly('diff');
      const p = prepareDiff(d, 'cmp');
      diffFG.setData(p.flat); diffScale = p.scale; diffKey = 'injected';
      renderDiff(d);
    }),
  };

  syncForm();
  render();
  loadServices();
  loadLabels();
})();
