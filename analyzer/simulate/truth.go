package simulate

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"
)

// TruthSchema is the value of Truth.Schema for this version of the format.
const TruthSchema = "fleetprof.simulate.truth/v1"

// Truth is the ground truth of a simulated fleet: what was injected where and when.
type Truth struct {
	Schema   string        `json:"schema"`
	Seed     int64         `json:"seed"`
	Start    time.Time     `json:"start"`
	Bucket   Duration      `json:"bucket"`
	Buckets  int           `json:"buckets"`
	Services []ServiceInfo `json:"services"`
	// Regressions are the injected regressions; Controls the negative controls (cost
	// shifts, refactors, spikes, seasonal mix, host outages) that must not be reported
	// as regressions; Noise the pull requests that changed code but not cost.
	Regressions []Injection `json:"regressions"`
	Controls    []Injection `json:"controls"`
	Noise       []Change    `json:"noise"`
}

// Duration is a time.Duration that encodes as a Go duration string ("10m0s").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	x, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(x)
	return nil
}

// ServiceInfo describes one service and its releases.
type ServiceInfo struct {
	Name  string `json:"name"`
	Hosts int    `json:"hosts"`
	// Repo is the service's repository directory relative to the WriteRepos directory.
	Repo     string    `json:"repo"`
	Releases []Release `json:"releases"`
}

// Release is one version after v1: its tag in the repository and its rollout.
type Release struct {
	Version string `json:"version"`
	Tag     string `json:"tag"`
	Commit  string `json:"commit,omitempty"`
	// Start is when the first stage (a few hosts) runs it, Full when all hosts do.
	Start time.Time `json:"start"`
	Full  time.Time `json:"full"`
	PRs   []int     `json:"prs"`
}

// Change is the pull request behind an injection.
type Change struct {
	PR     int      `json:"pr"`
	Commit string   `json:"commit,omitempty"`
	Author string   `json:"author"`
	Title  string   `json:"title"`
	Squash bool     `json:"squash"`
	Funcs  []string `json:"functions"`
	Files  []string `json:"files"`
}

// Injection is one injected event.
type Injection struct {
	// Kind is regression, gradual (a regression ramping in over Ramp from Start),
	// cost_shift, refactor, spike, seasonal, trend or host_outage.
	Kind     string `json:"kind"`
	Service  string `json:"service"`
	Function string `json:"function,omitempty"`
	// To is the function a cost shift moved cost to, or a refactor's new name.
	To string `json:"to,omitempty"`
	// Size is the relative change of the function's self cost (0.05 = +5%), the moved
	// fraction of a cost shift, or a spike's multiplier minus one.
	Size float64 `json:"size,omitempty"`
	// Expected shares of the service (base weights, without host effects) before and
	// after, self and inclusive.
	SelfBefore      float64 `json:"self_before,omitempty"`
	SelfAfter       float64 `json:"self_after,omitempty"`
	InclusiveBefore float64 `json:"inclusive_before,omitempty"`
	InclusiveAfter  float64 `json:"inclusive_after,omitempty"`
	// Version is the first version with the change; Start/Full its rollout (spikes and
	// outages: first and last bucket start).
	VersionBefore string    `json:"version_before,omitempty"`
	Version       string    `json:"version,omitempty"`
	Start         time.Time `json:"start"`
	Full          time.Time `json:"full,omitzero"`
	End           time.Time `json:"end,omitzero"`
	Host          string    `json:"host,omitempty"`
	// Ramp is how long a gradual regression or a trend takes to reach Size.
	Ramp   Duration `json:"ramp,omitempty"`
	Change *Change  `json:"change,omitempty"`
}

func (f *Fleet) change(s *service, pr *pullRequest) *Change {
	c := &Change{PR: pr.Number, Commit: pr.Commit, Author: pr.Author.String(), Title: pr.Title, Squash: pr.Squash}
	for _, fn := range pr.Edits {
		fd := s.cat.funcs[fn]
		c.Funcs = append(c.Funcs, fd.goName(fd.name))
		if !slices.Contains(c.Files, fd.file()) {
			c.Files = append(c.Files, fd.file())
		}
	}
	return c
}

// fillTruth (re)computes the truth from the plan; WriteRepos calls it again once
// commits are known.
func (f *Fleet) fillTruth() {
	t := Truth{Schema: TruthSchema, Seed: f.cfg.Seed, Start: f.cfg.Start, Bucket: Duration(f.cfg.Bucket), Buckets: f.nBuckets,
		Regressions: []Injection{}, Controls: []Injection{}, Noise: []Change{}}
	for _, s := range f.services {
		si := ServiceInfo{Name: s.name, Hosts: len(s.hosts), Repo: s.name}
		for k, r := range s.rel {
			r.PRs = s.vers[k+1].prs
			si.Releases = append(si.Releases, r)
		}
		t.Services = append(t.Services, si)
		for k := 1; k < len(s.prs); k++ {
			before, after := s.vers[k-1], s.vers[k]
			rel := s.rel[k-1]
			for _, pr := range s.prs[k] {
				ch := f.change(s, pr)
				if pr.Kind == "noise" {
					t.Noise = append(t.Noise, *ch)
					continue
				}
				fn := pr.Edits[0]
				in := Injection{Kind: pr.Kind, Service: s.name, Function: before.names[fn],
					VersionBefore: before.name, Version: after.name, Start: rel.Start, Full: rel.Full, Change: ch}
				in.SelfBefore, in.InclusiveBefore = s.shares(before, fn)
				in.SelfAfter, in.InclusiveAfter = s.shares(after, fn)
				switch pr.Kind {
				case "regression":
					in.Size = pr.Scale[0] - 1
					if pr.Ramp > 0 {
						in.Kind, in.Ramp, in.End = "gradual", Duration(pr.Ramp), rel.Start.Add(pr.Ramp)
					}
					t.Regressions = append(t.Regressions, in)
					continue
				case "cost_shift":
					in.Size = pr.Shift
					in.To = after.names[pr.Edits[1]]
				case "refactor":
					in.To = after.names[fn]
					in.SelfAfter, in.InclusiveAfter = in.SelfBefore, in.InclusiveBefore
				}
				t.Controls = append(t.Controls, in)
			}
		}
		v1 := s.vers[0]
		for _, e := range s.spikes {
			fn := s.cat.nodes[e.node].fn
			t.Controls = append(t.Controls, Injection{Kind: "spike", Service: s.name, Function: v1.names[fn],
				Size: f.cfg.SpikeSize, Start: f.bucketTime(e.first), End: f.bucketTime(e.last)})
		}
		if s.seasonal >= 0 {
			t.Controls = append(t.Controls, Injection{Kind: "seasonal", Service: s.name,
				Function: v1.names[s.cat.nodes[s.seasonal].fn], Size: f.cfg.SeasonalMix, Start: f.cfg.Start})
		}
		for _, fn := range s.trends {
			ramp := f.cfg.Duration - f.cfg.History
			in := Injection{Kind: "trend", Service: s.name, Function: v1.names[fn], Size: -f.cfg.TrendSize,
				Start: f.cfg.Start.Add(f.cfg.History), End: f.cfg.Start.Add(f.cfg.Duration), Ramp: Duration(ramp)}
			in.SelfBefore, in.InclusiveBefore = s.shares(v1, fn)
			t.Controls = append(t.Controls, in)
		}
		for _, e := range s.outages {
			t.Controls = append(t.Controls, Injection{Kind: "host_outage", Service: s.name, Host: s.hosts[e.host],
				Start: f.bucketTime(e.first), End: f.bucketTime(e.last)})
		}
	}
	f.truth = t
}

// Truth returns the ground truth (commits are set after WriteRepos).
func (f *Fleet) Truth() Truth { return f.truth }

// WriteFile writes t as indented JSON to path.
func (t Truth) WriteFile(path string) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("encode truth: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write truth: %w", err)
	}
	return nil
}

// ReadTruth reads a truth file written by WriteFile.
func ReadTruth(path string) (Truth, error) {
	var t Truth
	b, err := os.ReadFile(path)
	if err != nil {
		return t, fmt.Errorf("read truth: %w", err)
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("decode truth %s: %w", path, err)
	}
	if t.Schema != TruthSchema {
		return t, fmt.Errorf("decode truth %s: schema %q, want %q", path, t.Schema, TruthSchema)
	}
	return t, nil
}
