package aggregator

import (
	"context"
	"encoding/json"
	"testing"
	"time"

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
