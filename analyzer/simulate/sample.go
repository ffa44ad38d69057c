package simulate

import (
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// Bucket is the drawn samples of one time bucket: per service, per host, a count per
// call-tree node (that is, per stack).
type Bucket struct {
	Index int
	Start time.Time
	f     *Fleet
	hosts [][]hostCounts
}

type hostCounts struct {
	version int
	counts  []int64 // per node; nil when the host sent nothing
}

// StackSample is one stack's samples on one host in one bucket.
type StackSample struct {
	Service, Version, Host string
	HostGroup              int
	Frames                 []string // root first; shared, do not modify
	Count                  int64
}

// Bucket draws bucket i (0 <= i < Buckets()). The result depends only on the Config
// and i, so buckets may be drawn in any order or concurrently.
func (f *Fleet) Bucket(i int) *Bucket {
	cfg := f.cfg
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(i)+1<<32))
	b := &Bucket{Index: i, Start: f.bucketTime(i), f: f}
	days := float64(i) * cfg.Bucket.Hours() / 24
	phase := 2 * math.Pi * math.Mod(days, 1)
	volume := cfg.SampleHz * cfg.CoresPerHost * cfg.Bucket.Seconds() *
		(1 + cfg.Diurnal*math.Sin(phase)) * (1 + cfg.DriftPerDay*days)
	for _, s := range f.services {
		w := make([]float64, len(s.cat.nodes))
		mult := make([]float64, len(s.cat.nodes))
		for n := range mult {
			mult[n] = 1
		}
		for _, e := range s.spikes {
			if e.first <= i && i <= e.last {
				mult[e.node] *= 1 + cfg.SpikeSize
			}
		}
		if s.seasonal >= 0 {
			mult[s.seasonal] *= 1 + cfg.SeasonalMix*math.Sin(phase)
		}
		hs := make([]hostCounts, len(s.hosts))
	hosts:
		for h := range s.hosts {
			vi := s.versionAt(h, i)
			hs[h].version = vi
			for _, e := range s.outages {
				if e.host == h && e.first <= i && i <= e.last {
					continue hosts
				}
			}
			v := s.vers[vi]
			ramps := f.rampFactor(s, vi, i)
			sum := 0.0
			for n := range w {
				w[n] = v.weight[n] * s.effect[h][n] * mult[n]
				if x, ok := ramps[s.cat.nodes[n].fn]; ok {
					w[n] *= x
				}
				sum += w[n]
			}
			hs[h].counts = multinomial(rng, poisson(rng, volume*s.load[h]), w, sum)
		}
		b.hosts = append(b.hosts, hs)
	}
	return b
}

// Each calls fn for every non-zero stack count, in a fixed order.
func (b *Bucket) Each(fn func(StackSample)) {
	groups := b.f.cfg.HostGroups
	for si, s := range b.f.services {
		for h, hc := range b.hosts[si] {
			v := s.vers[hc.version]
			for n, c := range hc.counts {
				if c > 0 {
					fn(StackSample{Service: s.name, Version: v.name, Host: s.hosts[h], HostGroup: h % groups, Frames: v.frames[n], Count: c})
				}
			}
		}
	}
}

// Samples returns the bucket as sample-batch rows (one per host and stack), ready for
// samplebatch.Encode.
func (b *Bucket) Samples() []samplebatch.Sample {
	period := int64(1e9 / b.f.cfg.SampleHz)
	var out []samplebatch.Sample
	b.Each(func(s StackSample) {
		out = append(out, samplebatch.Sample{
			TS: b.Start.Unix(),
			Labels: samplebatch.Labels{Service: s.Service, Version: s.Version, Host: s.Host, Namespace: "prod",
				Pod: s.Host, Container: s.Service, Comm: s.Service, PID: 1},
			Frames: s.Frames, Value: s.Count, PeriodNS: period,
		})
	})
	return out
}

// Rollup returns the bucket as rollup rows per (service, version, host group,
// function) with self and inclusive counts (a function counted once per stack), plus
// the totals row (Function ""), sorted.
func (b *Bucket) Rollup() []model.RollupRow {
	type key struct {
		svc, ver string
		group    int
		fn       string
	}
	acc := map[key]*model.RollupRow{}
	get := func(k key) *model.RollupRow {
		r := acc[k]
		if r == nil {
			r = &model.RollupRow{Service: k.svc, Version: k.ver, HostGroup: uint8(k.group), Bucket: b.Start, Function: k.fn}
			acc[k] = r
		}
		return r
	}
	groups := b.f.cfg.HostGroups
	for si, s := range b.f.services {
		for h, hc := range b.hosts[si] {
			v := s.vers[hc.version]
			for n, c := range hc.counts {
				if c == 0 {
					continue
				}
				k := key{s.name, v.name, h % groups, ""}
				tot := get(k)
				tot.Self += c
				tot.Inclusive += c
				for _, fi := range v.incl[n] {
					k.fn = v.names[fi]
					get(k).Inclusive += c
				}
				k.fn = v.names[s.cat.nodes[n].fn]
				get(k).Self += c
			}
		}
	}
	out := make([]model.RollupRow, 0, len(acc))
	for _, r := range acc {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		a, c := &out[i], &out[j]
		if a.Service != c.Service {
			return a.Service < c.Service
		}
		if a.Version != c.Version {
			return a.Version < c.Version
		}
		if a.HostGroup != c.HostGroup {
			return a.HostGroup < c.HostGroup
		}
		return a.Function < c.Function
	})
	return out
}

// Total is the number of samples in the bucket.
func (b *Bucket) Total() int64 {
	var t int64
	for _, hs := range b.hosts {
		for _, hc := range hs {
			for _, c := range hc.counts {
				t += c
			}
		}
	}
	return t
}

// multinomial draws n samples over weights w (summing to sum) by sequential binomials.
func multinomial(rng *rand.Rand, n int64, w []float64, sum float64) []int64 {
	out := make([]int64, len(w))
	rest := sum
	for i, wi := range w {
		if n == 0 || rest <= 0 {
			break
		}
		x := binomial(rng, n, wi/rest)
		out[i] = x
		n -= x
		rest -= wi
	}
	return out
}

// binomial draws Binomial(n, p): inversion for small means, a rounded normal otherwise
// (the sampling noise the detector must live with is reproduced either way).
func binomial(rng *rand.Rand, n int64, p float64) int64 {
	switch {
	case p <= 0 || n == 0:
		return 0
	case p >= 1:
		return n
	case p > 0.5:
		return n - binomial(rng, n, 1-p)
	}
	mean := float64(n) * p
	if mean < 20 {
		q := 1 - p
		s := p / q
		a := float64(n+1) * s
		r := math.Pow(q, float64(n))
		u := rng.Float64()
		var x int64
		for u > r && x < n {
			u -= r
			x++
			r *= a/float64(x) - s
		}
		return x
	}
	x := int64(math.Round(mean + math.Sqrt(mean*(1-p))*rng.NormFloat64()))
	return max(0, min(n, x))
}

// poisson draws Poisson(lambda): multiplication for small lambda, rounded normal else.
func poisson(rng *rand.Rand, lambda float64) int64 {
	if lambda <= 0 {
		return 0
	}
	if lambda < 30 {
		l, k, p := math.Exp(-lambda), int64(0), 1.0
		for {
			p *= rng.Float64()
			if p <= l {
				return k
			}
			k++
		}
	}
	return max(0, int64(math.Round(lambda+math.Sqrt(lambda)*rng.NormFloat64())))
}
