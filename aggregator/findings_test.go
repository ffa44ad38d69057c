package aggregator

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/model"
)

type findingsWriter interface {
	PutFindings(ctx context.Context, recs []model.FindingRecord) error
}

func (m *memStore) PutFindings(_ context.Context, recs []model.FindingRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.findings = append(m.findings, recs...)
	return nil
}

func TestFindingsAPI(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			st := be.open(t)
			ts := startServer(t, st, Config{})
			svc := uniqueService(t)
			created := time.Now().Add(-time.Minute).Truncate(time.Second).UTC()
			recs := []model.FindingRecord{
				{ID: svc + "-1", Kind: "regression", Service: svc, Created: created, Body: json.RawMessage(`{"function":"a"}`)},
				{ID: svc + "-2", Kind: "opportunity", Service: svc, Created: created, Body: json.RawMessage(`{"function":"b"}`)},
			}
			if err := st.(findingsWriter).PutFindings(context.Background(), recs); err != nil {
				t.Fatal(err)
			}
			got, err := ts.client.Findings(context.Background(), model.FindingsQuery{Service: svc, Kind: "regression"})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].ID != svc+"-1" || string(got[0].Body) != `{"function":"a"}` {
				t.Fatalf("findings = %+v, want the regression", got)
			}
		})
	}
}

// TestGradualFindingsAPI: a gradual finding (kind gradual, its ramp part) stored in
// every backend is served by /api/v1/findings?kind=gradual with the ramp intact, and
// not among the step regressions.
func TestGradualFindingsAPI(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			st := be.open(t)
			ts := startServer(t, st, Config{})
			svc := uniqueService(t)
			created := time.Now().Add(-time.Minute).Truncate(time.Second).UTC()
			start := created.Add(-40 * time.Hour)
			g := findings.Finding{Kind: findings.KindGradual, Service: svc, Function: "pkg.Fill",
				Before: findings.Share{Value: 0.01, Lo: 0.0099, Hi: 0.0101}, After: findings.Share{Value: 0.012, Lo: 0.0119, Hi: 0.0121},
				AbsoluteChange: 0.002, RelativeChange: 0.2, PValue: 1e-12, ChangeTime: start,
				Gradual: &findings.Gradual{Start: start, End: start.Add(30 * time.Hour), SlopePerHour: 0.002 / 30,
					CumulativeChange: 0.2, Releases: []string{"v7", "v8"}}}
			g.ID = findings.ComputeID(&g)
			step := findings.Finding{Kind: findings.KindRegression, Service: svc, Function: "pkg.Other", ChangeTime: start}
			step.ID = findings.ComputeID(&step)
			var recs []model.FindingRecord
			for _, f := range []findings.Finding{g, step} {
				body, err := json.Marshal(f)
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, model.FindingRecord{ID: f.ID, Kind: string(f.Kind), Service: svc, Created: created, Body: body})
			}
			if err := st.(findingsWriter).PutFindings(context.Background(), recs); err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				kind string
				want string
			}{{"gradual", g.ID}, {"regression", step.ID}}
			for _, tt := range tests {
				got, err := ts.client.Findings(context.Background(), model.FindingsQuery{Service: svc, Kind: tt.kind})
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 1 || got[0].ID != tt.want || got[0].Kind != tt.kind {
					t.Fatalf("kind %s: findings %+v, want %s", tt.kind, got, tt.want)
				}
				var back findings.Finding
				if err := json.Unmarshal(got[0].Body, &back); err != nil {
					t.Fatal(err)
				}
				if err := back.Validate(); err != nil {
					t.Errorf("kind %s: served finding invalid: %v", tt.kind, err)
				}
				if tt.kind == "gradual" && (back.Gradual == nil || !back.Gradual.End.Equal(g.Gradual.End) ||
					back.Gradual.SlopePerHour != g.Gradual.SlopePerHour || len(back.Gradual.Releases) != 2) {
					t.Errorf("served ramp %+v, want %+v", back.Gradual, g.Gradual)
				}
			}
		})
	}
}
