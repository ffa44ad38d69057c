package rootcause

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/simulate"
	"github.com/fleetprof/fleetprof/internal/testenv"
)

// simFleet generates a fleet with regressions and its repositories.
func simFleet(t *testing.T) (*simulate.Fleet, simulate.Truth, string) {
	t.Helper()
	testenv.LookPath(t, "git", "git")
	cfg := simulate.DefaultConfig()
	cfg.Seed = 7
	cfg.Hosts = 20
	cfg.Functions = 40
	cfg.RandomRegressions = 6
	cfg.RandomMinSize, cfg.RandomMaxSize = 0.1, 0.5
	f, err := simulate.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := f.WriteRepos(dir); err != nil {
		t.Fatal(err)
	}
	return f, f.Truth(), dir
}

func TestSimulatedRepoChanges(t *testing.T) {
	_, tr, dir := simFleet(t)
	ctx := context.Background()
	want := map[int]simulate.Change{}
	for _, in := range append(tr.Regressions, tr.Controls...) {
		if in.Change != nil {
			want[in.Change.PR] = *in.Change
		}
	}
	for _, c := range tr.Noise {
		want[c.PR] = c
	}
	seen := 0
	for _, svc := range tr.Services {
		repo := Repo{Dir: filepath.Join(dir, svc.Repo)}
		prev := "v1"
		for _, rel := range svc.Releases {
			chs, err := repo.Changes(ctx, prev, rel.Tag)
			if err != nil {
				t.Fatal(err)
			}
			prev = rel.Tag
			var prs []int
			for _, c := range chs {
				prs = append(prs, c.PR)
				w, ok := want[c.PR]
				if !ok {
					t.Errorf("%s %s: unexpected PR %d %q", svc.Name, rel.Version, c.PR, c.Title)
					continue
				}
				seen++
				if c.Author != w.Author || c.Title != w.Title || c.Commit != w.Commit || c.Merge == w.Squash {
					t.Errorf("PR %d: got %s %q %s merge=%v, want %s %q %s squash=%v",
						c.PR, c.Author, c.Title, c.Commit, c.Merge, w.Author, w.Title, w.Commit, w.Squash)
				}
				for _, fn := range w.Funcs {
					if !slices.Contains(c.Functions, fn) {
						t.Errorf("PR %d: touched functions %q lack %s", c.PR, c.Functions, fn)
					}
				}
				for _, f := range w.Files {
					if !slices.Contains(c.Files, f) {
						t.Errorf("PR %d: files %q lack %s", c.PR, c.Files, f)
					}
				}
			}
			slices.Sort(prs)
			wantPRs := slices.Sorted(slices.Values(rel.PRs))
			if !slices.Equal(prs, wantPRs) {
				t.Errorf("%s %s: PRs %v, want %v", svc.Name, rel.Version, prs, wantPRs)
			}
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of %d pull requests", seen, len(want))
	}
}

// versionStacks sums each service's stacks per version over the whole run.
func versionStacks(f *simulate.Fleet) map[string]map[string]map[string]*StackDelta {
	out := map[string]map[string]map[string]*StackDelta{}
	for i := range f.Buckets() {
		f.Bucket(i).Each(func(s simulate.StackSample) {
			bv := out[s.Service]
			if bv == nil {
				bv = map[string]map[string]*StackDelta{}
				out[s.Service] = bv
			}
			m := bv[s.Version]
			if m == nil {
				m = map[string]*StackDelta{}
				bv[s.Version] = m
			}
			k := strings.Join(s.Frames, "\n")
			d := m[k]
			if d == nil {
				d = &StackDelta{Frames: s.Frames}
				m[k] = d
			}
			d.After += float64(s.Count) // per-version totals; split into before/after below
		})
	}
	return out
}

func regressionInput(stacks map[string]map[string]*StackDelta, in simulate.Injection) Regression {
	reg := Regression{Function: in.Function, ChangeTime: in.Start.Add(30 * time.Minute)}
	merged := map[string]*StackDelta{}
	get := func(d *StackDelta) *StackDelta {
		k := strings.Join(d.Frames, "\n")
		m := merged[k]
		if m == nil {
			m = &StackDelta{Frames: d.Frames}
			merged[k] = m
		}
		return m
	}
	for _, d := range stacks[in.VersionBefore] {
		get(d).Before += d.After
	}
	for _, d := range stacks[in.Version] {
		get(d).After += d.After
	}
	for _, k := range slices.Sorted(maps.Keys(merged)) {
		reg.Stacks = append(reg.Stacks, *merged[k])
	}
	return reg
}

func TestRootCauseOnSimulatedRegressions(t *testing.T) {
	f, tr, dir := simFleet(t)
	ctx := context.Background()
	stacks := versionStacks(f)
	deployAt := map[string]map[string]time.Time{}
	for _, svc := range tr.Services {
		deployAt[svc.Name] = map[string]time.Time{"v1": tr.Start.Add(-24 * time.Hour)}
		for _, r := range svc.Releases {
			deployAt[svc.Name][r.Version] = r.Start
		}
	}
	hits := 0
	for _, in := range tr.Regressions {
		repo := Repo{Dir: filepath.Join(dir, in.Service)}
		cands, err := repo.Candidates(ctx, []Deploy{
			{Version: in.VersionBefore, At: deployAt[in.Service][in.VersionBefore]},
			{Version: in.Version, At: in.Start},
		})
		if err != nil {
			t.Fatal(err)
		}
		reg := regressionInput(stacks[in.Service], in)
		res, err := Rank(reg, cands, DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, c := range res.Top {
			found = found || c.PR == in.Change.PR
		}
		if found && !res.None {
			hits++
		} else {
			t.Errorf("%s (+%.0f%%, PR %d): not in top-3 (none=%v): %+v", in.Function, 100*in.Size, in.Change.PR, res.None, res.Top)
		}
		// A change that touched nothing on the regressed function's stacks alone is
		// not named.
		onStacks := map[string]bool{}
		for _, s := range reg.Stacks {
			if slices.Contains(s.Frames, in.Function) {
				for _, fr := range s.Frames {
					onStacks[fr] = true
				}
			}
		}
		for _, c := range cands {
			if c.PR == in.Change.PR || slices.ContainsFunc(c.Functions, func(fn string) bool { return onStacks[fn] }) {
				continue
			}
			res, err := Rank(reg, []Candidate{c}, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			if !res.None {
				t.Errorf("%s: unrelated PR %d %q named with score %.2f confidence %.2f",
					in.Function, c.PR, c.Title, res.Top[0].Score, res.Top[0].Confidence)
			}
		}
	}
	if hits != len(tr.Regressions) || hits == 0 {
		t.Errorf("root cause in top-3 for %d of %d regressions", hits, len(tr.Regressions))
	}
}
