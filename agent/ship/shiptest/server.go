package shiptest

import (
	"net"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
)

// Batch is one stored batch.
type Batch struct {
	ID   string
	Data []byte
	// Auth is the authorization metadata of the stream that sent it.
	Auth string
}

// Server is an ingest server storing batches in memory, answering DUPLICATE
// for a batch id it already stored.
type Server struct {
	// Respond, when set, decides the answer to a request before storing:
	// return nil to store normally. Set it before Serve.
	Respond func(req *ingestv1.WriteRequest) *ingestv1.WriteResponse
	// Rows, when set, counts the rows of a batch (the answer's rows field).
	Rows func(data []byte) (int64, error)
	// Options are passed to grpc.NewServer (e.g. a small MaxRecvMsgSize).
	Options []grpc.ServerOption

	ingestv1.UnimplementedIngestServiceServer

	mu       sync.Mutex
	stored   []Batch
	seen     map[string]int // batch id -> times received
	changed  chan struct{}
	grpc     *grpc.Server
	listener net.Listener
}

// NewServer returns a server that is not yet listening.
func NewServer() *Server {
	return &Server{seen: map[string]int{}, changed: make(chan struct{})}
}

// Serve listens on addr ("127.0.0.1:0" for any port) and serves until Stop.
// It returns the address listened on.
func (s *Server) Serve(addr string) (string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	g := grpc.NewServer(s.Options...)
	ingestv1.RegisterIngestServiceServer(g, s)
	s.mu.Lock()
	s.grpc, s.listener = g, l
	s.mu.Unlock()
	go func() { _ = g.Serve(l) }()
	return l.Addr().String(), nil
}

// Stop stops serving, closing open streams. Stored batches are kept, so a
// later Serve continues like a restarted aggregator.
func (s *Server) Stop() {
	s.mu.Lock()
	g := s.grpc
	s.grpc = nil
	s.mu.Unlock()
	if g != nil {
		g.Stop()
	}
}

// Write implements the ingest service.
func (s *Server) Write(stream grpc.BidiStreamingServer[ingestv1.WriteRequest, ingestv1.WriteResponse]) error {
	var auth string
	if md, ok := metadata.FromIncomingContext(stream.Context()); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			auth = v[0]
		}
	}
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil
		}
		resp := s.handle(req, auth)
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func (s *Server) handle(req *ingestv1.WriteRequest, auth string) *ingestv1.WriteResponse {
	if s.Respond != nil {
		if r := s.Respond(req); r != nil {
			r.BatchId = req.GetBatchId()
			return r
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notify()
	id := req.GetBatchId()
	s.seen[id]++
	if s.seen[id] > 1 {
		return &ingestv1.WriteResponse{BatchId: id, Status: ingestv1.WriteResponse_STATUS_DUPLICATE}
	}
	var rows int64
	if s.Rows != nil {
		n, err := s.Rows(req.GetArrowIpc())
		if err != nil {
			s.seen[id]--
			return &ingestv1.WriteResponse{BatchId: id, Status: ingestv1.WriteResponse_STATUS_REJECTED, Error: err.Error()}
		}
		rows = n
	}
	s.stored = append(s.stored, Batch{ID: id, Data: slices.Clone(req.GetArrowIpc()), Auth: auth})
	return &ingestv1.WriteResponse{BatchId: id, Status: ingestv1.WriteResponse_STATUS_ACKED, Rows: rows}
}

// notify wakes WaitFor callers; s.mu is held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Stored returns the batches stored, in arrival order.
func (s *Server) Stored() []Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.stored)
}

// Received returns how many times each batch id was received (stored or
// answered as duplicate).
func (s *Server) Received() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.seen))
	for k, v := range s.seen {
		out[k] = v
	}
	return out
}

// WaitFor waits until cond (called with the stored batches) is true or
// timeout passes, and reports whether it became true.
func (s *Server) WaitFor(timeout time.Duration, cond func(stored []Batch) bool) bool {
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		ok := cond(s.stored)
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}
