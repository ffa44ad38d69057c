package aggregator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/queryclient"
	"github.com/fleetprof/fleetprof/model"
)

func TestOpportunitiesAPI(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			st := be.open(t)
			ts := startServer(t, st, Config{})
			svc := uniqueService(t)
			latest := time.Now().Add(-time.Minute).Truncate(time.Second).UTC()
			older := latest.Add(-10 * time.Minute)
			opp := func(id string, created time.Time, cores, share float64) model.FindingRecord {
				body := fmt.Sprintf(`{"kind":"opportunity","id":%q,"opportunity":{"pattern":"p","estimated_saving_share":%g,"estimated_saving_cores":%g,"confidence":0.5}}`, id, share, cores)
				return model.FindingRecord{ID: svc + "-" + id, Kind: "opportunity", Service: svc, Created: created, Body: json.RawMessage(body)}
			}
			recs := []model.FindingRecord{
				opp("stale", older, 9, 0.9), // superseded by the latest run
				opp("small", latest, 0.1, 0.01),
				opp("big", latest, 2, 0.02),
				opp("mid-a", latest, 0.5, 0.05),
				opp("mid-b", latest, 0.5, 0.06), // same cores: larger share first
				{ID: svc + "-reg", Kind: "regression", Service: svc, Created: latest, Body: json.RawMessage(`{"function":"r"}`)},
			}
			if err := st.(findingsWriter).PutFindings(context.Background(), recs); err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				name   string
				params url.Values
				want   []string
				total  int
				status int
			}{
				{"ranked", url.Values{"service": {svc}}, []string{"big", "mid-b", "mid-a", "small"}, 4, 0},
				{"limit", url.Values{"service": {svc}, "limit": {"2"}}, []string{"big", "mid-b"}, 4, 0},
				{"second page", url.Values{"service": {svc}, "limit": {"2"}, "offset": {"2"}}, []string{"mid-a", "small"}, 4, 0},
				{"last partial page", url.Values{"service": {svc}, "limit": {"3"}, "offset": {"3"}}, []string{"small"}, 4, 0},
				{"past the end", url.Values{"service": {svc}, "offset": {"4"}}, []string{}, 4, 0},
				{"other service", url.Values{"service": {svc + "-none"}}, []string{}, 0, 0},
				{"bad limit", url.Values{"service": {svc}, "limit": {"-1"}}, nil, 0, 400},
				{"bad offset", url.Values{"service": {svc}, "offset": {"-1"}}, nil, 0, 400},
				{"bad from", url.Values{"service": {svc}, "from": {"yesterday-ish"}}, nil, 0, 400},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var out struct {
						Findings []model.FindingRecord `json:"findings"`
						Total    int                   `json:"total"`
					}
					err := ts.client.Get(context.Background(), "opportunities", tt.params, &out)
					if tt.status != 0 {
						var ae *queryclient.APIError
						if !errors.As(err, &ae) || ae.StatusCode != tt.status {
							t.Fatalf("error %v, want status %d", err, tt.status)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					got := []string{}
					for _, r := range out.Findings {
						if r.Kind != "opportunity" || len(r.Body) == 0 {
							t.Errorf("record %+v", r)
						}
						got = append(got, r.ID[len(svc)+1:])
					}
					if !slices.Equal(got, tt.want) {
						t.Errorf("opportunities %v, want %v", got, tt.want)
					}
					if out.Total != tt.total {
						t.Errorf("total %d, want %d", out.Total, tt.total)
					}
				})
			}
		})
	}
}
