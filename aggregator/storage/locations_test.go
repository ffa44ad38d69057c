package storage

import (
	"context"
	"reflect"
	"testing"

	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

var (
	stackPy     = []string{"main", "app.outer", "app.inner"}
	stackPyLocs = []string{"", "/srv/app.py:10", "/srv/app.py:14"}
)

// pyBatch is a decoded wire batch with 6 samples of a Python stack (with
// locations unless bare) and 2 of a native one, service "api".
func pyBatch(t *testing.T, bare bool) *samplebatch.Batch {
	t.Helper()
	labels := samplebatch.Labels{Service: "api", Version: "v1", Host: "h1"}
	py := samplebatch.Sample{TS: t0.Unix(), Labels: labels, Frames: stackPy, Value: 6, PeriodNS: 10_101_010}
	if !bare {
		py.Locations = stackPyLocs
	}
	data, err := samplebatch.Encode([]samplebatch.Sample{py, {TS: t0.Unix(), Labels: labels, Frames: stackD, Value: 2, PeriodNS: 10_101_010}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := samplebatch.Decode(data, samplebatch.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// profileLocations reads the stores' stacks through a new Store, so from the
// tables and not the writer's cache: locations per stack, joined.
func profileLocations(t *testing.T, cfg Config) map[string][]string {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.Profile(ctx, all())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, st := range p.Stacks {
		out[st.Frames[len(st.Frames)-1]] = st.Locations
	}
	return out
}

// TestFrameLocations stores a Python stack's locations and reads them back;
// a stack first stored without them (an old agent) gets them when a batch
// brings them, and readers prefer that row.
func TestFrameLocations(t *testing.T) {
	eachBackend(t, Config{}, func(t *testing.T, s *Store) {
		ingest(t, s, "bare", pyBatch(t, true))
		if got := profileLocations(t, s.cfg); got["app.inner"] != nil || got["gc"] != nil {
			t.Fatalf("stored without locations: %v", got)
		}
		ingest(t, s, "located", pyBatch(t, false))
		want := map[string][]string{"app.inner": stackPyLocs, "gc": nil}
		if got := profileLocations(t, s.cfg); !reflect.DeepEqual(got, want) {
			t.Fatalf("locations = %v, want %v", got, want)
		}
		// The writer's own cache answers the same.
		p, err := s.Profile(context.Background(), all())
		if err != nil {
			t.Fatal(err)
		}
		if i := indexOfLeaf(p, "app.inner"); i < 0 || !reflect.DeepEqual(p.Stacks[i].Locations, stackPyLocs) {
			t.Fatalf("cached profile stacks = %+v", p.Stacks)
		}
	})
}

func indexOfLeaf(p *model.Profile, leaf string) int {
	for i, st := range p.Stacks {
		if st.Frames[len(st.Frames)-1] == leaf {
			return i
		}
	}
	return -1
}

// TestUpgradeV3 opens a v3 store (stacks without locations): the column is
// added in place, old stacks have none, new ones are stored with theirs.
func TestUpgradeV3(t *testing.T) {
	eachBackend(t, Config{}, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ingest(t, s, "before", knownBatch())
		db := s.lay.db
		for _, stmt := range append([]string{"ALTER TABLE " + db + ".stacks DROP COLUMN locations"}, schemaVersionStatements(db, 3)...) {
			if err := s.be.Exec(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		s2, err := Open(ctx, s.cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		ingest(t, s2, "after", pyBatch(t, false))
		got := profileLocations(t, s.cfg)
		want := map[string][]string{"parse": nil, "write": nil, "rec": nil, "gc": nil, "app.inner": stackPyLocs}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("after upgrade: locations %v, want %v", got, want)
		}
	})
}
