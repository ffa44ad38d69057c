package aggregator

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// memStore is the hand-written fake of Store: rows in memory, queries computed in Go.
type memStore struct {
	mu      sync.Mutex
	rows    []memRow
	batches map[string]bool
	// gate, when set, is received from before each Ingest stores (shutdown tests).
	gate    chan struct{}
	entered chan string
	failErr error
	lastSel model.Selection
	// discard keeps only batch ids (benchmarks measure the server, not the fake).
	discard  bool
	findings []model.FindingRecord
}

type memRow struct {
	row    samplebatch.Row
	frames []string
}

func newMemStore() *memStore { return &memStore{batches: map[string]bool{}} }

func (m *memStore) Ingest(ctx context.Context, id string, b *samplebatch.Batch) (int, bool, error) {
	if m.entered != nil {
		m.entered <- id
	}
	if m.gate != nil {
		select {
		case <-m.gate:
		case <-ctx.Done():
			return 0, false, ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failErr != nil {
		return 0, false, m.failErr
	}
	if m.batches[id] {
		return 0, true, nil
	}
	for _, r := range b.Rows {
		if !m.discard {
			m.rows = append(m.rows, memRow{r, b.Stacks[r.StackID]})
		}
	}
	m.batches[id] = true
	return len(b.Rows), false, nil
}

func labelValue(l samplebatch.Labels, key string) (string, bool) {
	switch key {
	case "service":
		return l.Service, true
	case "version":
		return l.Version, true
	case "host":
		return l.Host, true
	case "namespace":
		return l.Namespace, true
	case "pod":
		return l.Pod, true
	case "container":
		return l.Container, true
	case "comm":
		return l.Comm, true
	case "pid":
		return strconv.Itoa(int(l.PID)), true
	}
	for _, kv := range l.Extra {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

func (m *memStore) match(sel model.Selection) []memRow {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastSel = sel
	var out []memRow
	for _, r := range m.rows {
		ts := time.Unix(r.row.TS, 0)
		if ts.Before(sel.From) || !ts.Before(sel.To) {
			continue
		}
		if sel.Service != "" && r.row.Labels.Service != sel.Service {
			continue
		}
		byKey := map[string][]string{}
		for _, f := range sel.Filters {
			byKey[f.Key] = append(byKey[f.Key], f.Value)
		}
		ok := true
		for k, vals := range byKey {
			v, has := labelValue(r.row.Labels, k)
			any := false
			for _, want := range vals {
				any = any || (has && v == want)
			}
			ok = ok && any
		}
		if ok {
			out = append(out, r)
		}
	}
	return out
}

func (m *memStore) Services(_ context.Context, from, to time.Time) ([]string, error) {
	set := map[string]bool{}
	for _, r := range m.match(model.Selection{From: from, To: to}) {
		set[r.row.Labels.Service] = true
	}
	return sortedKeys(set), nil
}

func (m *memStore) LabelKeys(_ context.Context, sel model.Selection) ([]string, error) {
	set := map[string]bool{"service": true, "version": true, "host": true}
	for _, r := range m.match(sel) {
		for _, kv := range r.row.Labels.Extra {
			set[kv.Key] = true
		}
	}
	return sortedKeys(set), nil
}

func (m *memStore) LabelValues(_ context.Context, sel model.Selection, key string) ([]string, error) {
	set := map[string]bool{}
	for _, r := range m.match(sel) {
		if v, ok := labelValue(r.row.Labels, key); ok {
			set[v] = true
		}
	}
	return sortedKeys(set), nil
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (m *memStore) Profile(_ context.Context, sel model.Selection) (*model.Profile, error) {
	m.mu.Lock()
	err := m.failErr
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	byStack := map[string]*model.StackCount{}
	var keys []string
	p := &model.Profile{}
	for _, r := range m.match(sel) {
		k := strconv.FormatUint(r.row.StackID, 16)
		sc, ok := byStack[k]
		if !ok {
			sc = &model.StackCount{Frames: r.frames}
			byStack[k] = sc
			keys = append(keys, k)
		}
		sc.Value += r.row.Value
		p.Total += r.row.Value
		p.PeriodNS = r.row.PeriodNS
	}
	sort.Strings(keys)
	p.Stacks = []model.StackCount{}
	for _, k := range keys {
		p.Stacks = append(p.Stacks, *byStack[k])
	}
	return p, nil
}

func (m *memStore) Top(ctx context.Context, sel model.Selection, limit int) (*model.Top, error) {
	p, err := m.Profile(ctx, sel)
	if err != nil {
		return nil, err
	}
	self, incl := map[string]int64{}, map[string]int64{}
	for _, s := range p.Stacks {
		self[s.Frames[len(s.Frames)-1]] += s.Value
		seen := map[string]bool{}
		for _, f := range s.Frames {
			if !seen[f] {
				seen[f] = true
				incl[f] += s.Value
			}
		}
	}
	t := &model.Top{Total: p.Total, Functions: []model.FunctionStat{}}
	for f, v := range incl {
		t.Functions = append(t.Functions, model.FunctionStat{Function: f, Self: self[f], Inclusive: v,
			SelfPct: pct(self[f], p.Total), InclusivePct: pct(v, p.Total)})
	}
	sort.Slice(t.Functions, func(i, j int) bool {
		a, b := t.Functions[i], t.Functions[j]
		if a.Self != b.Self {
			return a.Self > b.Self
		}
		return a.Function < b.Function
	})
	if len(t.Functions) > limit {
		t.Functions = t.Functions[:limit]
	}
	return t, nil
}

func pct(v, total int64) float64 {
	if total == 0 {
		return 0
	}
	return float64(v) / float64(total) * 100
}

func (m *memStore) Flame(ctx context.Context, sel model.Selection) (*model.FlameNode, error) {
	p, err := m.Profile(ctx, sel)
	if err != nil {
		return nil, err
	}
	root := &model.FlameNode{Name: "root"}
	for _, s := range p.Stacks {
		n := root
		n.Total += s.Value
		for _, f := range s.Frames {
			var c *model.FlameNode
			for _, ch := range n.Children {
				if ch.Name == f {
					c = ch
				}
			}
			if c == nil {
				c = &model.FlameNode{Name: f}
				n.Children = append(n.Children, c)
			}
			c.Total += s.Value
			n = c
		}
		n.Self += s.Value
	}
	return root, nil
}

func (m *memStore) Diff(ctx context.Context, base, cmp model.Selection, movers int) (*model.Diff, error) {
	bt, err := m.Top(ctx, base, 1<<30)
	if err != nil {
		return nil, err
	}
	ct, err := m.Top(ctx, cmp, 1<<30)
	if err != nil {
		return nil, err
	}
	d := &model.Diff{BaseTotal: bt.Total, CmpTotal: ct.Total, Root: &model.DiffNode{Name: "root", Base: bt.Total, Cmp: ct.Total}}
	fs := map[string]*model.Mover{}
	get := func(f string) *model.Mover {
		if fs[f] == nil {
			fs[f] = &model.Mover{Function: f}
		}
		return fs[f]
	}
	for _, f := range bt.Functions {
		mv := get(f.Function)
		mv.BaseSelfPct, mv.BaseInclusivePct = f.SelfPct, f.InclusivePct
	}
	for _, f := range ct.Functions {
		mv := get(f.Function)
		mv.CmpSelfPct, mv.CmpInclusivePct = f.SelfPct, f.InclusivePct
	}
	for _, mv := range fs {
		mv.DeltaInclusivePct = mv.CmpInclusivePct - mv.BaseInclusivePct
		d.Movers = append(d.Movers, *mv)
	}
	sort.Slice(d.Movers, func(i, j int) bool {
		a, b := d.Movers[i], d.Movers[j]
		if abs(a.DeltaInclusivePct) != abs(b.DeltaInclusivePct) {
			return abs(a.DeltaInclusivePct) > abs(b.DeltaInclusivePct)
		}
		return a.Function < b.Function
	})
	if len(d.Movers) > movers {
		d.Movers = d.Movers[:movers]
	}
	return d, nil
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func (m *memStore) setFail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failErr = err
}

func (m *memStore) Ping(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failErr != nil {
		return errors.New("fake store down")
	}
	return nil
}

func (m *memStore) FunctionSeries(_ context.Context, sel model.Selection, function string, step time.Duration) ([]model.SeriesPoint, error) {
	byStep := map[int64]*model.SeriesPoint{}
	for _, r := range m.match(sel) {
		t := time.Unix(r.row.TS, 0).Truncate(step)
		p := byStep[t.Unix()]
		if p == nil {
			p = &model.SeriesPoint{Time: t}
			byStep[t.Unix()] = p
		}
		p.Total += r.row.Value
		for _, f := range r.frames {
			if f == function {
				p.Inclusive += r.row.Value
				break
			}
		}
	}
	out := []model.SeriesPoint{}
	for _, p := range byStep {
		p.Share = float64(p.Inclusive) / float64(p.Total)
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

func (m *memStore) Versions(_ context.Context, service string, from, to time.Time) ([]model.VersionSpan, error) {
	byV := map[string]*model.VersionSpan{}
	for _, r := range m.match(model.Selection{Service: service, From: from, To: to}) {
		t := time.Unix(r.row.TS, 0)
		v := byV[r.row.Labels.Version]
		if v == nil {
			v = &model.VersionSpan{Version: r.row.Labels.Version, FirstSeen: t, LastSeen: t}
			byV[r.row.Labels.Version] = v
		}
		if t.Before(v.FirstSeen) {
			v.FirstSeen = t
		}
		if t.After(v.LastSeen) {
			v.LastSeen = t
		}
		v.Samples += r.row.Value
	}
	out := []model.VersionSpan{}
	for _, v := range byV {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].FirstSeen.Before(out[j].FirstSeen) || out[i].FirstSeen.Equal(out[j].FirstSeen) && out[i].Version < out[j].Version
	})
	return out, nil
}

func (m *memStore) Findings(_ context.Context, q model.FindingsQuery) ([]model.FindingRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []model.FindingRecord{}
	for _, f := range m.findings {
		if (q.Kind == "" || f.Kind == q.Kind) && (q.Service == "" || f.Service == q.Service) {
			out = append(out, f)
		}
	}
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}
