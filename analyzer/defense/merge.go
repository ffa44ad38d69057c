package defense

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/detect"
	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/model"
)

// storedLimit bounds the stored findings read per service for merging; the query is
// newest first, and only findings of the last analysis window can match.
const storedLimit = 1000

// MergeTolerance is how far apart two runs may place the same regression's change:
// a change point moves by a bucket or two as data arrives, and the detector's
// merge tolerance already counts changes that close as one event.
func MergeTolerance(dc detect.Config) time.Duration {
	return max(dc.MergeTolerance, dc.ExtendedWindow)
}

// sameRegression reports whether a and b are one regression seen by two runs: the
// same kind, function and kind of share, change times within tol, or for ramps
// overlapping ramps (a ramp's ends move as data arrive). Version and measured values
// are not compared (version_after may be empty in one run and set in the next).
func sameRegression(a, b *findings.Finding, tol time.Duration) bool {
	if a.Kind != b.Kind || a.Function != b.Function || isSelf(a) != isSelf(b) {
		return false
	}
	if a.Gradual != nil && b.Gradual != nil {
		return a.Gradual.Start.Before(b.Gradual.End) && b.Gradual.Start.Before(a.Gradual.End)
	}
	if a.ChangeTime.IsZero() || b.ChangeTime.IsZero() {
		return a.ChangeTime.IsZero() == b.ChangeTime.IsZero()
	}
	return absDuration(a.ChangeTime.Sub(b.ChangeTime)) <= tol
}

func isSelf(f *findings.Finding) bool {
	return slices.Contains(f.FiltersPassed, detect.FilterSelfShare)
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// decodeStored returns the regression and gradual findings in recs; bodies that do
// not decode are skipped (they cannot be matched, and their records stay as they are).
func decodeStored(recs []model.FindingRecord) []findings.Finding {
	out := make([]findings.Finding, 0, len(recs))
	for _, r := range recs {
		var f findings.Finding
		if err := json.Unmarshal(r.Body, &f); err != nil || f.Kind != findings.KindRegression && f.Kind != findings.KindGradual {
			continue
		}
		f.ID = r.ID // the record's id is what PutFindings replaces
		if f.FirstSeen.IsZero() {
			// Stored before first_seen existed: its record's time is the best known.
			f.FirstSeen = r.Created.UTC()
		}
		out = append(out, f)
	}
	return out
}

// MergeStored gives each new finding of one service that is the same regression as
// a stored one (sameRegression) the stored ID and FirstSeen, so storing it replaces
// the stored record; others are first seen now. Pairs are matched closest change
// time first, and every stored ID goes to at most one new finding, so two findings
// of one run never share an ID; a new finding whose own ID is taken (by a stored,
// different regression or another new finding) gets a derived one, which later
// runs then match. The analyzer loop stores findings this way; the staged-rollout
// evaluation (analyzer/evaluate) replays it over periodic runs.
func MergeStored(fs []findings.Finding, stored []findings.Finding, tol time.Duration, now time.Time) {
	type pair struct {
		i, j int
		d    time.Duration
	}
	var pairs []pair
	for i := range fs {
		for j := range stored {
			if sameRegression(&fs[i], &stored[j], tol) {
				pairs = append(pairs, pair{i, j, absDuration(fs[i].ChangeTime.Sub(stored[j].ChangeTime))})
			}
		}
	}
	sort.SliceStable(pairs, func(a, b int) bool {
		if pairs[a].d != pairs[b].d {
			return pairs[a].d < pairs[b].d
		}
		// Equal distance: the stored finding seen most recently, then the older id.
		sa, sb := &stored[pairs[a].j], &stored[pairs[b].j]
		if !sa.LastSeen.Equal(sb.LastSeen) {
			return sa.LastSeen.After(sb.LastSeen)
		}
		return sa.ID < sb.ID
	})
	matched := make([]int, len(fs))
	for i := range matched {
		matched[i] = -1
	}
	claimed := make([]bool, len(stored))
	used := map[string]bool{}
	for _, p := range pairs {
		if matched[p.i] >= 0 || claimed[p.j] {
			continue
		}
		matched[p.i], claimed[p.j] = p.j, true
		used[stored[p.j].ID] = true
	}
	// A stored ID not claimed in this run still names another regression.
	for j := range stored {
		if !claimed[j] {
			used[stored[j].ID] = true
		}
	}
	for i := range fs {
		f := &fs[i]
		f.LastSeen = now
		if j := matched[i]; j >= 0 {
			f.ID, f.FirstSeen = stored[j].ID, stored[j].FirstSeen
			continue
		}
		f.FirstSeen = now
		if f.ID == "" {
			f.ID = findings.ComputeID(f)
		}
		for n, base := 1, f.ID; used[f.ID]; n++ {
			f.ID = derivedID(base, n)
		}
		used[f.ID] = true
	}
}

// derivedID is a stable replacement for an id already taken.
func derivedID(id string, n int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d", id, n))
	return hex.EncodeToString(h[:])[:16]
}
