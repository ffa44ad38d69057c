package detect

import (
	"slices"
	"sort"

	"github.com/fleetprof/fleetprof/analyzer/findings"
)

// at least MinVersionGroups host groups each, compare the host groups running the new
// version with those running the old one (Welch test over group shares pooled in the
// shared buckets), which cancels diurnal and traffic effects and counts host effects
// as noise.
func versionCandidate(svc *Service, sr *Series, cfg Config, w windows) (*candidate, *Dropped) {
	if len(sr.VersionInclusive) < 2 || len(sr.CellInclusive) == 0 {
		return nil, nil
	}
	type ver struct {
		name  string
		first int
	}
	var vs []ver
	for _, v := range sortedKeys(sr.VersionInclusive) {
		if t, ok := w.starts[v]; ok {
			vs = append(vs, ver{v, t})
		}
	}
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].first < vs[j].first })
	cells := sortedCells(svc.CellTotal)
	groupsOf := func(v string, t int) int {
		n := 0
		for _, c := range cells {
			if c.Version == v && svc.CellTotal[c][t] > 0 {
				n++
			}
		}
		return n
	}
	var best *candidate
	for k := 1; k < len(vs); k++ {
		a, b := vs[k-1].name, vs[k].name
		var overlap []int
		for t := range w.n {
			if groupsOf(a, t) >= cfg.MinVersionGroups && groupsOf(b, t) >= cfg.MinVersionGroups {
				overlap = append(overlap, t)
			}
		}
		if len(overlap) < cfg.MinOverlapBuckets || overlap[len(overlap)-1] < w.winLo {
			continue
		}
		ia, ta := poolCells(svc, sr.CellInclusive, cells, a, overlap)
		ib, tb := poolCells(svc, sr.CellInclusive, cells, b, overlap)
		before, after, diff, z := groupTest(ia, ta, ib, tb)
		// With history, the host groups' spread before the rollout (many windows)
		// measures host effects far better than the few groups in the rollout.
		if len(sr.GroupInclusive) > 1 {
			var gi, gt [][]float64
			for _, g := range sortedKeys(sr.GroupInclusive) {
				gi, gt = append(gi, sr.GroupInclusive[g]), append(gt, svc.GroupTotal[g])
			}
			L := len(overlap)
			if kappa, nw := hostVariance(gi, gt, vs[k].first, L); nw >= cfg.Tuning.MinHostVarianceWindows {
				before, after, diff, z = cellTest(ia, ta, ib, tb, kappa, L)
			}
		}
		p := twoSidedP(z)
		if z == 0 || p >= w.pairedAlpha {
			continue // no evidence of a change: not a dropped candidate
		}
		if best != nil && p >= best.p {
			continue
		}
		start := overlap[0]
		for t := range w.n {
			if svc.VersionTotal[a][t] > 0 && svc.VersionTotal[b][t] > 0 {
				start = t // the rollout's first bucket
				break
			}
		}
		best = &candidate{
			fn: sr.Function, domain: findings.DomainOf(sr.Function),
			change: start, lo: overlap[0], hi: overlap[len(overlap)-1] + 1,
			before: before, after: after, abs: diff, p: p, vBefore: a, vAfter: b, overlap: overlap,
			filters: []string{findings.FilterVersionPair, findings.FilterSignificance},
		}
		// The pooled shares differ slightly from the mean group difference; report
		// shares consistent with it.
		best.after.P = before.P + diff
		if before.P > 0 {
			best.rel = diff / before.P
		}
	}
	return best, nil
}

// poolCells sums counts (a function's per-cell counts) and the service's cell totals
// over the buckets of overlap, per host group running version v; groups without
// samples there are left out.
func poolCells(svc *Service, counts map[Cell][]float64, cells []Cell, v string, overlap []int) (inc, tot []float64) {
	for _, c := range cells {
		if c.Version != v {
			continue
		}
		var si, st float64
		for _, t := range overlap {
			si += counts[c][t]
			st += svc.CellTotal[c][t]
		}
		if st > 0 {
			inc, tot = append(inc, si), append(tot, st)
		}
	}
	return inc, tot
}

// versionStarts maps each version of the service to its first bucket with samples
// (its rollout start; 0 for the version already running); versions without
// samples are left out.
func versionStarts(svc *Service) map[string]int {
	out := map[string]int{}
	for v, tot := range svc.VersionTotal {
		if t := slices.IndexFunc(tot, func(x float64) bool { return x > 0 }); t >= 0 {
			out[v] = t
		}
	}
	return out
}

// dominantVersion is the version with most samples in [lo, hi), "" if none.
func dominantVersion(svc *Service, lo, hi int) string {
	best, bestN := "", 0.0
	for _, v := range sortedKeys(svc.VersionTotal) {
		n := 0.0
		for _, x := range svc.VersionTotal[v][lo:hi] {
			n += x
		}
		if n > bestN {
			best, bestN = v, n
		}
	}
	return best
}
