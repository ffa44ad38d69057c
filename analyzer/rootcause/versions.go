package rootcause

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// Deploy is one version of a service and when it reached production.
type Deploy struct {
	Version string
	// Ref is the git revision of the version (tag or commit); "" means Version itself
	// (versions tagged "vX", or versions that are commit hashes).
	Ref string
	At  time.Time
}

// Candidates lists the changes between consecutive deploys (oldest first), each
// stamped with the deploy time of the first version that contained it. Give the last
// good version first and the versions up to (and including) the bad one after it.
func (r Repo) Candidates(ctx context.Context, deploys []Deploy) ([]Candidate, error) {
	if len(deploys) < 2 {
		return nil, fmt.Errorf("candidates: need at least two versions, got %d", len(deploys))
	}
	var out []Candidate
	for i := 1; i < len(deploys); i++ {
		from, to := deploys[i-1].ref(), deploys[i].ref()
		chs, err := r.Changes(ctx, from, to)
		if err != nil {
			return nil, fmt.Errorf("candidates %s..%s: %w", deploys[i-1].Version, deploys[i].Version, err)
		}
		for _, c := range chs {
			out = append(out, Candidate{Change: c, DeployedAt: deploys[i].At})
		}
	}
	return out, nil
}

func (d Deploy) ref() string {
	if d.Ref != "" {
		return d.Ref
	}
	return d.Version
}

// LoadVersionMap reads a version → commit mapping: a JSON object
// {"v1.2.3": "<commit>", …} or lines "VERSION COMMIT" ('#' starts a comment).
func LoadVersionMap(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read version map: %w", err)
	}
	return ParseVersionMap(b)
}

// ParseVersionMap parses the contents of a version map file (see LoadVersionMap).
func ParseVersionMap(b []byte) (map[string]string, error) {
	m := map[string]string{}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		if err := json.Unmarshal(t, &m); err != nil {
			return nil, fmt.Errorf("parse version map: %w", err)
		}
		return m, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		l, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(l)
		switch len(f) {
		case 0:
			continue
		case 2:
			m[f[0]] = f[1]
		default:
			return nil, fmt.Errorf("parse version map: line %d: want \"VERSION COMMIT\", got %q", n, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse version map: %w", err)
	}
	return m, nil
}
