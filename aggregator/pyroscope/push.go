package pyroscope

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"

	"connectrpc.com/connect"
	"github.com/fleetprof/fleetprof/aggregator/pprofconv"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
	pushv1 "github.com/grafana/pyroscope/api/gen/proto/go/push/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/push/v1/pushv1connect"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"
)

// PushHandler returns the path and handler of push.v1.PusherService over
// Connect, gRPC and gRPC-Web.
func (p *Pusher) PushHandler() (string, http.Handler) {
	return pushv1connect.NewPusherServiceHandler(pushService{p}, connect.WithReadMaxBytes(int(p.cfg.MaxBodyBytes)))
}

type pushService struct{ p *Pusher }

// Push stores each series' raw pprof samples; one bad sample fails the call
// naming its series, after the ones before it were stored (a retry of the call
// stores those once: their ids are the same).
func (s pushService) Push(ctx context.Context, req *connect.Request[pushv1.PushRequest]) (*connect.Response[pushv1.PushResponse], error) {
	now := s.p.cfg.Now()
	for i, series := range req.Msg.GetSeries() {
		labels, key, err := seriesLabels(series.GetLabels())
		if err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("series %d: %w", i, err))
		}
		for j, sm := range series.GetSamples() {
			samples, err := s.p.fromPprof(sm.GetRawProfile(), labels, now)
			if err == nil {
				idPart := sm.GetID()
				if idPart == "" {
					idPart = string(sm.GetRawProfile())
				}
				_, _, err = s.p.ingest(ctx, batchID("push", key, idPart), samples)
			}
			if err != nil {
				return nil, connect.NewError(pushCode(err), fmt.Errorf("series %d (%s) sample %d: %w", i, key, j, err))
			}
		}
	}
	return connect.NewResponse(&pushv1.PushResponse{}), nil
}

func pushCode(err error) connect.Code {
	switch {
	case errors.Is(err, ErrUnsupportedType):
		return connect.CodeUnimplemented
	case errors.Is(err, ErrBadRequest), errors.Is(err, samplebatch.ErrInvalid), errors.Is(err, pprofconv.ErrNoSamples):
		return connect.CodeInvalidArgument
	default:
		return connect.CodeInternal
	}
}

// seriesLabels maps a pushed series' labels and returns them with a canonical key
// (sorted k=v) for the batch id. A __name__ other than process_cpu is rejected.
func seriesLabels(pairs []*typesv1.LabelPair) (samplebatch.Labels, string, error) {
	kv := make([][2]string, 0, len(pairs))
	for _, p := range pairs {
		if p.GetName() == labelName && p.GetValue() != cpuProfileName {
			return samplebatch.Labels{}, "", fmt.Errorf("%w (got __name__=%q)", ErrUnsupportedType, p.GetValue())
		}
		kv = append(kv, [2]string{p.GetName(), p.GetValue()})
	}
	sort.Slice(kv, func(i, j int) bool { return kv[i][0] < kv[j][0] })
	key := ""
	for _, p := range kv {
		key += p[0] + "=" + p[1] + ","
	}
	ls, err := toLabels("", kv)
	return ls, key, err
}
