package ship_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/agent/ship"
	"github.com/fleetprof/fleetprof/agent/ship/shiptest"
	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
)

func TestClientStatusRules(t *testing.T) {
	const (
		ack  = ingestv1.WriteResponse_STATUS_ACKED
		rej  = ingestv1.WriteResponse_STATUS_REJECTED
		fail = ingestv1.WriteResponse_STATUS_FAILED
	)
	tests := []struct {
		name    string
		answers []ingestv1.WriteResponse_Status
		wantErr error // nil: delivered; errAny: any error
		stored  int
	}{
		{"acked", nil, nil, 1},
		{"failed then acked", []ingestv1.WriteResponse_Status{fail, fail}, nil, 1},
		{"rejected is not retried", []ingestv1.WriteResponse_Status{rej}, ship.ErrRejected, 0},
		{"gives up", []ingestv1.WriteResponse_Status{fail, fail, fail}, errAny, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			answers := append([]ingestv1.WriteResponse_Status(nil), tt.answers...)
			srv := shiptest.NewServer()
			srv.Respond = func(req *ingestv1.WriteRequest) *ingestv1.WriteResponse {
				mu.Lock()
				defer mu.Unlock()
				if len(answers) == 0 {
					return nil
				}
				a := answers[0]
				answers = answers[1:]
				return &ingestv1.WriteResponse{BatchId: req.GetBatchId(), Status: a, Error: "scripted"}
			}
			addr, err := srv.Serve("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Stop()
			c, err := ship.NewClient(ship.Config{Addr: addr, Clock: shiptest.NewClock(time.Unix(1_700_000_000, 0))}, 3)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Write(context.Background(), "b1", []byte("batch"))
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Write: %v", err)
			case errors.Is(tt.wantErr, errAny) && err == nil,
				tt.wantErr != nil && !errors.Is(tt.wantErr, errAny) && !errors.Is(err, tt.wantErr):
				t.Fatalf("Write error %v, want %v", err, tt.wantErr)
			}
			if got := len(srv.Stored()); got != tt.stored {
				t.Fatalf("%d stored, want %d", got, tt.stored)
			}
		})
	}
}

var errAny = errors.New("any error")
