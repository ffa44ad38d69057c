package aggregator

import (
	"context"
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/queryclient"
	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// backend is a Store the end-to-end tests run against. Real stores are shared by
// the whole test process (chDB allows one engine per process), so tests keep their
// data apart by service name and batch id (see uniqueService).
type backend struct {
	name string
	open func(t testing.TB) Store
}

// backends lists the stores to test; storage-backed ones are appended by init()s.
var backends = []backend{{"fake", func(testing.TB) Store { return newMemStore() }}}

var nonWord = regexp.MustCompile(`[^A-Za-z0-9]+`)

// uniqueService names a service after the test and the time, so reruns against a
// persistent store and parallel tests never see each other's rows.
func uniqueService(t testing.TB) string {
	return strings.ToLower(nonWord.ReplaceAllString(t.Name(), "-")) + "-" + time.Now().Format("150405.000000000")
}

type testServer struct {
	srv      *Server
	grpcAddr string
	httpURL  string
	client   *queryclient.Client
	conn     *grpc.ClientConn
	cancel   context.CancelFunc
	done     chan error
}

func startServer(t testing.TB, store Store, cfg Config, opts ...Option) *testServer {
	t.Helper()
	srv, err := New(cfg, store, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{srv: srv, grpcAddr: gl.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ctx, gl, hl) }()
	ts.httpURL = "http://" + hl.Addr().String()
	ts.client, err = queryclient.New(ts.httpURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts.conn, err = grpc.NewClient(ts.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ts.conn.Close()
		if err := ts.stop(); err != nil {
			t.Errorf("server stopped with error: %v", err)
		}
	})
	return ts
}

// stop shuts the server down and returns Serve's error (once; later calls return nil).
func (ts *testServer) stop() error {
	ts.cancel()
	err, ok := <-ts.done
	if ok {
		close(ts.done)
	}
	return err
}

func withToken(ctx context.Context, token string) context.Context {
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// write sends reqs on one stream in lock step and returns the responses.
func write(ctx context.Context, conn *grpc.ClientConn, token string, reqs ...*ingestv1.WriteRequest) ([]*ingestv1.WriteResponse, error) {
	stream, err := ingestv1.NewIngestServiceClient(conn).Write(withToken(ctx, token))
	if err != nil {
		return nil, err
	}
	var out []*ingestv1.WriteResponse
	for _, r := range reqs {
		if err := stream.Send(r); err != nil {
			_, rerr := stream.Recv() // the real error is on Recv
			return out, errors.Join(err, rerr)
		}
		resp, err := stream.Recv()
		if err != nil {
			return out, err
		}
		out = append(out, resp)
	}
	if err := stream.CloseSend(); err != nil {
		return out, err
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		return out, err
	}
	return out, nil
}

func encode(t testing.TB, samples []samplebatch.Sample) []byte {
	t.Helper()
	data, err := samplebatch.Encode(samples)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// dataset is a known batch: root-first stacks with counts, on two hosts.
func dataset(service string, ts time.Time) []samplebatch.Sample {
	l := func(host, version string) samplebatch.Labels {
		return samplebatch.Labels{Service: service, Version: version, Host: host, PID: 42, Comm: "app",
			Extra: []samplebatch.Label{{Key: "region", Value: "eu-1"}}}
	}
	mk := func(lab samplebatch.Labels, v int64, frames ...string) samplebatch.Sample {
		return samplebatch.Sample{TS: ts.Unix(), Labels: lab, Frames: frames, Value: v, PeriodNS: 10_101_010}
	}
	return []samplebatch.Sample{
		mk(l("h1", "v1"), 5, "main", "a", "b"),
		mk(l("h2", "v1"), 3, "main", "a"),
		mk(l("h1", "v2"), 2, "main", "c"),
		mk(l("h2", "v2"), 4, "main", "r", "r"), // recursion: r counted once in inclusive
	}
}
