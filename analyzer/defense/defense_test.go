package defense

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/simulate"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
)

// fleetStore is the hand-written fake Store: it answers from a simulated fleet.
type fleetStore struct {
	fleet   *simulate.Fleet
	rollup  []model.RollupRow
	samples []stackSample
	mu      sync.Mutex
	put     []model.FindingRecord
	failPut error
}

type stackSample struct {
	ts      time.Time
	version string
	frames  []string
	count   int64
}

func newFleetStore(t testing.TB, f *simulate.Fleet) *fleetStore {
	s := &fleetStore{fleet: f}
	for i := range f.Buckets() {
		b := f.Bucket(i)
		s.rollup = append(s.rollup, b.Rollup()...)
		b.Each(func(x simulate.StackSample) {
			s.samples = append(s.samples, stackSample{b.Start, x.Version, x.Frames, x.Count})
		})
	}
	return s
}

func (s *fleetStore) Services(ctx context.Context, from, to time.Time) ([]string, error) {
	return s.fleet.Services(), nil
}

func (s *fleetStore) Rollup(ctx context.Context, q model.RollupQuery) ([]model.RollupRow, error) {
	var out []model.RollupRow
	for _, r := range s.rollup {
		if r.Service == q.Service && !r.Bucket.Before(q.From) && r.Bucket.Before(q.To) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *fleetStore) Versions(ctx context.Context, service string, from, to time.Time) ([]model.VersionSpan, error) {
	m := map[string]*model.VersionSpan{}
	for _, x := range s.samples {
		if x.ts.Before(from) || !x.ts.Before(to) {
			continue
		}
		v := m[x.version]
		if v == nil {
			v = &model.VersionSpan{Version: x.version, FirstSeen: x.ts, LastSeen: x.ts}
			m[x.version] = v
		}
		v.LastSeen = x.ts
		v.Samples += x.count
	}
	var out []model.VersionSpan
	for _, v := range m {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FirstSeen.Before(out[j].FirstSeen) })
	return out, nil
}

func (s *fleetStore) Profile(ctx context.Context, sel model.Selection) (*model.Profile, error) {
	agg := map[string]*model.StackCount{}
	p := &model.Profile{PeriodNS: int64(1e9 / s.fleet.Config().SampleHz)}
	for _, x := range s.samples {
		if x.ts.Before(sel.From) || !x.ts.Before(sel.To) {
			continue
		}
		k := strings.Join(x.frames, "\x00")
		if agg[k] == nil {
			agg[k] = &model.StackCount{Frames: x.frames}
		}
		agg[k].Value += x.count
		p.Total += x.count
	}
	for _, v := range agg {
		p.Stacks = append(p.Stacks, *v)
	}
	sort.Slice(p.Stacks, func(i, j int) bool { return p.Stacks[i].Value > p.Stacks[j].Value })
	return p, nil
}

func (s *fleetStore) PutFindings(ctx context.Context, recs []model.FindingRecord) error {
	if s.failPut != nil {
		return s.failPut
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put = append(s.put, recs...)
	return nil
}

// Findings answers from the records put so far: the latest put of each id, newest
// first, like the real store.
func (s *fleetStore) Findings(ctx context.Context, q model.FindingsQuery) ([]model.FindingRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return latestFindings(s.put, q), nil
}

// latestFindings is storage.Store.Findings over a list of puts.
func latestFindings(put []model.FindingRecord, q model.FindingsQuery) []model.FindingRecord {
	latest := map[string]model.FindingRecord{}
	for _, r := range put {
		latest[r.ID] = r
	}
	var out []model.FindingRecord
	for _, r := range latest {
		if (q.Service == "" || r.Service == q.Service) && (q.Kind == "" || r.Kind == q.Kind) &&
			(q.From.IsZero() || !r.Created.Before(q.From)) && (q.To.IsZero() || r.Created.Before(q.To)) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	if limit := cmp.Or(q.Limit, 100); len(out) > limit {
		out = out[:limit]
	}
	return out
}

// smallFleet is one service on 12 hosts for a day, one release at noon with one
// regression (self cost ×2 of a random function), noise PRs as root-cause distractors.
func smallFleet(t testing.TB) *simulate.Fleet {
	c := simulate.DefaultConfig()
	c.Services, c.Hosts, c.Functions = 1, 12, 20
	c.Releases, c.RandomRegressions, c.RandomMinSize, c.RandomMaxSize = 1, 1, 1, 1
	c.Seed = 3
	c.CostShifts, c.Refactors, c.Spikes, c.HostFailures, c.SeasonalMix = 0, 0, 0, 0, 0
	f, err := simulate.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func testConfig(f *simulate.Fleet) Config {
	sc := f.Config()
	cfg := DefaultConfig()
	end := sc.Start.Add(sc.Duration)
	cfg.Now = func() time.Time { return end }
	cfg.Window, cfg.History = 12*time.Hour, 11*time.Hour
	return cfg
}

func TestAnalyzeFake(t *testing.T) {
	f := smallFleet(t)
	st := newFleetStore(t, f)
	cfg := testConfig(f)
	rep, err := Analyze(context.Background(), st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := f.Truth()
	in := tr.Regressions[0]
	t.Logf("injected %s %.4g→%.4g at %s; %d series", in.Function, in.InclusiveBefore, in.InclusiveAfter, in.Start, rep.Series)
	var hit *findings.Finding
	for i, fd := range rep.Findings {
		t.Logf("finding %s %+.2f%% at %s %s→%s", fd.Function, 100*fd.RelativeChange, fd.ChangeTime, fd.VersionBefore, fd.VersionAfter)
		if err := fd.Validate(); err != nil {
			t.Errorf("invalid finding: %v", err)
		}
		if fd.Function == in.Function || slices.Contains(fd.DedupGroup, in.Function) {
			hit = &rep.Findings[i]
		}
	}
	if hit == nil {
		t.Fatalf("injected regression of %s not found", in.Function)
	}
	if len(hit.RepresentativeStacks) == 0 || !slices.Contains(hit.RepresentativeStacks[0].Frames, hit.Function) {
		t.Errorf("representative stacks %v", hit.RepresentativeStacks)
	}
	if len(st.put) != len(rep.Findings) {
		t.Fatalf("stored %d findings, want %d", len(st.put), len(rep.Findings))
	}
	var back findings.Finding
	if err := json.Unmarshal(st.put[0].Body, &back); err != nil || back.ID != st.put[0].ID || st.put[0].Kind != "regression" {
		t.Errorf("stored record %+v: %v", st.put[0], err)
	}
}

func TestAnalyzeRootCause(t *testing.T) {
	testenv.LookPath(t, "git", "git")
	f := smallFleet(t)
	dir := t.TempDir()
	if err := f.WriteRepos(dir); err != nil {
		t.Fatal(err)
	}
	st := newFleetStore(t, f)
	cfg := testConfig(f)
	tr := f.Truth()
	cfg.Repos = map[string]string{tr.Services[0].Name: dir + "/" + tr.Services[0].Repo}
	rep, err := Analyze(context.Background(), st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) > 0 {
		t.Errorf("root cause errors: %v", rep.Errors)
	}
	checkRootCause(t, rep.Findings, tr.Regressions[0])
}

func checkRootCause(t *testing.T, fs []findings.Finding, in simulate.Injection) {
	t.Helper()
	for _, fd := range fs {
		if fd.Function != in.Function && !slices.Contains(fd.DedupGroup, in.Function) {
			continue
		}
		var prs []int
		for _, rc := range fd.RootCauses {
			prs = append(prs, rc.PR)
		}
		t.Logf("%s root causes %v, injected PR %d", fd.Function, prs, in.Change.PR)
		if !slices.Contains(prs, in.Change.PR) {
			t.Errorf("injected PR #%d not in top-3 %v", in.Change.PR, prs)
		}
		return
	}
	t.Errorf("injected regression of %s not found", in.Function)
}

func TestAnalyzeStoreError(t *testing.T) {
	f := smallFleet(t)
	st := newFleetStore(t, f)
	st.failPut = errors.New("disk full")
	if _, err := Analyze(context.Background(), st, testConfig(f)); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("error %v, want the store's", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"default", func(*Config) {}, true},
		{"no window", func(c *Config) { c.Window = 0 }, false},
		{"negative history", func(c *Config) { c.History = -time.Hour }, false},
		{"tiny step", func(c *Config) { c.Step = time.Millisecond }, false},
		{"bad share", func(c *Config) { c.MinShare = 2 }, false},
		{"bad repo", func(c *Config) { c.Repos = map[string]string{"svc": ""} }, false},
		{"bad detect", func(c *Config) { c.Detect.Alpha = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
