package defense

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/detect"
	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/model"
)

func TestMergeStored(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	earlier, now := t0.Add(-time.Hour), t0.Add(3*time.Hour)
	tol := 30 * time.Minute
	// reg is a finding as the detector returns it: ID computed from its fields.
	reg := func(fn string, change time.Duration, version string, self bool) findings.Finding {
		f := findings.Finding{Kind: findings.KindRegression, Service: "api", Function: fn,
			ChangeTime: t0.Add(change), VersionAfter: version, FiltersPassed: []string{findings.FilterSignificance}}
		if self {
			f.FiltersPassed = append(f.FiltersPassed, detect.FilterSelfShare)
		}
		f.ID = findings.ComputeID(&f)
		return f
	}
	// seen is a stored finding first seen at earlier.
	seen := func(f findings.Finding) findings.Finding {
		f.FirstSeen, f.LastSeen = earlier, earlier.Add(10*time.Minute)
		return f
	}
	tests := []struct {
		name   string
		new    []findings.Finding
		stored []findings.Finding
		// want[i] is the index of the stored finding new finding i is merged into, or
		// -1 for a new id.
		want []int
	}{
		{"nothing stored", []findings.Finding{reg("a", 0, "v2", false)}, nil, []int{-1}},
		{"same change", []findings.Finding{reg("a", 0, "v2", false)},
			[]findings.Finding{seen(reg("a", 0, "v2", false))}, []int{0}},
		{"change moved a bucket, version known now", []findings.Finding{reg("a", 5*time.Minute, "v2", false)},
			[]findings.Finding{seen(reg("a", 0, "", false))}, []int{0}},
		{"change moved back within tolerance", []findings.Finding{reg("a", -30*time.Minute, "v2", false)},
			[]findings.Finding{seen(reg("a", 0, "v2", false))}, []int{0}},
		{"change beyond tolerance", []findings.Finding{reg("a", 31*time.Minute, "v2", false)},
			[]findings.Finding{seen(reg("a", 0, "v2", false))}, []int{-1}},
		{"other function", []findings.Finding{reg("b", 0, "v2", false)},
			[]findings.Finding{seen(reg("a", 0, "v2", false))}, []int{-1}},
		{"self share is another finding", []findings.Finding{reg("a", 0, "v2", true)},
			[]findings.Finding{seen(reg("a", 0, "v2", false))}, []int{-1}},
		{"two new, one stored: closest takes it", []findings.Finding{reg("a", 25*time.Minute, "v2", false), reg("a", 5*time.Minute, "v2", false)},
			[]findings.Finding{seen(reg("a", 0, "v2", false))}, []int{-1, 0}},
		{"two new, two stored", []findings.Finding{reg("a", 0, "v2", false), reg("a", 20*time.Minute, "v3", false)},
			[]findings.Finding{seen(reg("a", 25*time.Minute, "", false)), seen(reg("a", -5*time.Minute, "", false))}, []int{1, 0}},
		{"duplicates stored by old runs: closest", []findings.Finding{reg("a", 10*time.Minute, "v2", false)},
			[]findings.Finding{seen(reg("a", 0, "v2", false)), seen(reg("a", 15*time.Minute, "v2", false))}, []int{1}},
		{"self and inclusive at one time", []findings.Finding{reg("a", 0, "v2", true), reg("a", 0, "v2", false)},
			[]findings.Finding{seen(reg("a", 0, "v2", false))}, []int{-1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := append([]findings.Finding(nil), tt.new...)
			MergeStored(fs, tt.stored, tol, now)
			ids := map[string]int{}
			for i, f := range fs {
				if prev, dup := ids[f.ID]; dup {
					t.Errorf("findings %d and %d share id %s", prev, i, f.ID)
				}
				ids[f.ID] = i
				if !f.LastSeen.Equal(now) {
					t.Errorf("finding %d last seen %v, want %v", i, f.LastSeen, now)
				}
				if j := tt.want[i]; j >= 0 {
					if f.ID != tt.stored[j].ID || !f.FirstSeen.Equal(earlier) {
						t.Errorf("finding %d: id %s first seen %v, want stored %d (%s, %v)", i, f.ID, f.FirstSeen, j, tt.stored[j].ID, earlier)
					}
					continue
				}
				if !f.FirstSeen.Equal(now) {
					t.Errorf("new finding %d first seen %v, want %v", i, f.FirstSeen, now)
				}
				for j, s := range tt.stored {
					if f.ID == s.ID {
						t.Errorf("new finding %d took the id of stored %d", i, j)
					}
				}
			}
		})
	}
}

// TestMergeStoredStable: a finding that had to take a derived id keeps it in later runs.
func TestMergeStoredStable(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	incl := findings.Finding{Kind: findings.KindRegression, Service: "api", Function: "a", ChangeTime: t0}
	self := incl
	self.FiltersPassed = []string{detect.FilterSelfShare}
	incl.ID, self.ID = findings.ComputeID(&incl), findings.ComputeID(&self) // the same
	run := func(stored []findings.Finding, now time.Time) []findings.Finding {
		fs := []findings.Finding{self, incl}
		MergeStored(fs, stored, 30*time.Minute, now)
		return fs
	}
	first := run(nil, t0.Add(time.Hour))
	if first[0].ID == first[1].ID {
		t.Fatalf("self and inclusive findings share id %s", first[0].ID)
	}
	second := run(first, t0.Add(70*time.Minute))
	for i := range first {
		if second[i].ID != first[i].ID || !second[i].FirstSeen.Equal(t0.Add(time.Hour)) || !second[i].LastSeen.Equal(t0.Add(70*time.Minute)) {
			t.Errorf("finding %d: second run %s %v..%v, first %s", i, second[i].ID, second[i].FirstSeen, second[i].LastSeen, first[i].ID)
		}
	}
}

func TestDecodeStored(t *testing.T) {
	created := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	body := func(f findings.Finding) json.RawMessage {
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := created.Add(-time.Hour)
	recs := []model.FindingRecord{
		{ID: "old", Created: created, Body: body(findings.Finding{Kind: findings.KindRegression, ID: "old", Function: "a"})},
		{ID: "new", Created: created, Body: body(findings.Finding{Kind: findings.KindRegression, ID: "new", Function: "b", FirstSeen: first})},
		{ID: "opp", Created: created, Body: body(findings.Finding{Kind: findings.KindOpportunity, ID: "opp", Function: "c"})},
		{ID: "bad", Created: created, Body: json.RawMessage(`[1]`)},
	}
	got := decodeStored(recs)
	if len(got) != 2 || got[0].ID != "old" || !got[0].FirstSeen.Equal(created) || got[1].ID != "new" || !got[1].FirstSeen.Equal(first) {
		t.Fatalf("decoded %+v", got)
	}
}

// TestAnalyzeRunsMerge: two runs 10 minutes apart over the same data store one
// finding per regression; the second keeps the first's ids and first_seen.
func TestAnalyzeRunsMerge(t *testing.T) {
	f := smallFleet(t)
	st := newFleetStore(t, f)
	cfg := testConfig(f)
	end := cfg.Now()
	runAt := func(now time.Time) *Report {
		t.Helper()
		c := cfg
		c.Now = func() time.Time { return now }
		rep, err := Analyze(context.Background(), st, c)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	first := runAt(end.Add(-10 * time.Minute))
	second := runAt(end)
	if len(first.Findings) == 0 || len(second.Findings) == 0 {
		t.Fatalf("runs found %d and %d findings", len(first.Findings), len(second.Findings))
	}
	ids := map[string]findings.Finding{}
	for _, fd := range first.Findings {
		ids[fd.ID] = fd
	}
	for _, fd := range second.Findings {
		t.Logf("second run: %s %s at %s, first seen %s", fd.ID, fd.Function, fd.ChangeTime, fd.FirstSeen)
		prev, ok := ids[fd.ID]
		if !ok {
			t.Errorf("second run's finding %s (%s at %s) is new", fd.ID, fd.Function, fd.ChangeTime)
			continue
		}
		if !fd.FirstSeen.Equal(prev.FirstSeen) || !fd.LastSeen.After(prev.LastSeen) {
			t.Errorf("finding %s: seen %v..%v, first run %v..%v", fd.ID, fd.FirstSeen, fd.LastSeen, prev.FirstSeen, prev.LastSeen)
		}
	}
	stored := latestFindings(st.put, model.FindingsQuery{})
	if len(stored) != len(ids) {
		t.Errorf("%d findings stored, want %d", len(stored), len(ids))
	}
}

func TestDropBeforeData(t *testing.T) {
	t0 := time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)
	rows := []model.RollupRow{{Bucket: t0.Add(time.Hour)}, {Bucket: t0}, {Bucket: t0.Add(2 * time.Hour)}}
	fs := []findings.Finding{
		{Function: "before", ChangeTime: t0.Add(-10 * time.Minute)},
		{Function: "at", ChangeTime: t0},
		{Function: "after", ChangeTime: t0.Add(90 * time.Minute)},
	}
	got := dropBeforeData(fs, rows)
	if len(got) != 2 || got[0].Function != "at" || got[1].Function != "after" {
		t.Errorf("kept %+v, want at and after", got)
	}
}
