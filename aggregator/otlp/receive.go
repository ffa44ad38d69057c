package otlp

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/pprofconv"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
	"go.opentelemetry.io/collector/pdata/pprofile"
	"go.opentelemetry.io/collector/pdata/pprofile/pprofileotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	// OTLP exporters compress with gzip by default; the gRPC server needs the codec.
	_ "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// HTTPPath is where OTLP/HTTP exporters send profiles (the OTLP specification's
// path for the development profiles signal).
const HTTPPath = "/v1development/profiles"

// IngestFunc stores rows under a batch id through the aggregator's ingest path.
// It reports duplicate for an id already stored, and an error wrapping
// samplebatch.ErrInvalid for rows the limits reject.
type IngestFunc func(ctx context.Context, batchID string, samples []samplebatch.Sample) (rows int, duplicate bool, err error)

// Config configures the receiver.
type Config struct {
	// MaxBodyBytes bounds one OTLP/HTTP request body, after decompression;
	// default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Now stamps profiles that carry no time; default time.Now.
	Now func() time.Time
}

// DefaultMaxBodyBytes is the default bound of one request, the Arrow path's
// default message size.
const DefaultMaxBodyBytes = 16 << 20

func (c Config) withDefaults() Config {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Receiver serves ProfilesService/Export over gRPC and OTLP/HTTP.
type Receiver struct {
	cfg    Config
	ingest IngestFunc
}

// NewReceiver returns a receiver writing through ingest.
func NewReceiver(cfg Config, ingest IngestFunc) *Receiver {
	return &Receiver{cfg: cfg.withDefaults(), ingest: ingest}
}

// RegisterGRPC registers ProfilesService on s (whose interceptors do the auth).
func (r *Receiver) RegisterGRPC(s *grpc.Server) {
	pprofileotlp.RegisterGRPCServer(s, &grpcService{r: r})
}

type grpcService struct {
	pprofileotlp.UnimplementedGRPCServer
	r *Receiver
}

// Export stores a request's CPU profiles.
func (g *grpcService) Export(ctx context.Context, req pprofileotlp.ExportRequest) (pprofileotlp.ExportResponse, error) {
	resp, err := g.r.export(ctx, req.Profiles())
	if err != nil {
		return pprofileotlp.NewExportResponse(), status.Error(grpcCode(err), err.Error())
	}
	return resp, nil
}

// errNothingStored marks a request whose every profile was rejected.
var errNothingStored = errors.New("no profile stored")

// export converts and stores one request. Profiles of other types are
// reported as a partial success; a request with nothing but those fails.
func (r *Receiver) export(ctx context.Context, pd pprofile.Profiles) (pprofileotlp.ExportResponse, error) {
	resp := pprofileotlp.NewExportResponse()
	res, err := Convert(pd, Options{Now: r.cfg.Now})
	if err != nil {
		return resp, err
	}
	if len(res.Rejected) > 0 && len(res.Rejected) == res.Profiles {
		return resp, fmt.Errorf("%w: %s", errNothingStored, strings.Join(res.Rejected, "; "))
	}
	if len(res.Samples) > 0 {
		id, err := BatchID(pd)
		if err != nil {
			return resp, err
		}
		if _, _, err := r.ingest(ctx, id, res.Samples); err != nil {
			return resp, fmt.Errorf("store profiles: %w", err)
		}
	}
	if len(res.Rejected) > 0 {
		resp.PartialSuccess().SetRejectedProfiles(int64(len(res.Rejected)))
		resp.PartialSuccess().SetErrorMessage(strings.Join(res.Rejected, "; "))
	}
	return resp, nil
}

// badInput tells the sender's mistakes (not worth a retry) from storage failures.
func badInput(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, errNothingStored) ||
		errors.Is(err, samplebatch.ErrInvalid) || errors.Is(err, pprofconv.ErrNotCPU) || errors.Is(err, errBadRequest)
}

// grpcCode follows OTLP: bad input is not retryable, a storage failure is.
func grpcCode(err error) codes.Code {
	if badInput(err) {
		return codes.InvalidArgument
	}
	return codes.Unavailable
}

// errBadRequest marks an OTLP/HTTP request that is not a readable export.
var errBadRequest = errors.New("bad OTLP/HTTP request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// Encodings of OTLP/HTTP bodies.
const (
	contentProtobuf = "application/x-protobuf"
	contentJSON     = "application/json"
)

// ServeHTTP answers POST HTTPPath: an ExportProfilesServiceRequest in protobuf
// or JSON, optionally gzip-compressed. Errors carry a google.rpc.Status in the
// request's encoding, as OTLP/HTTP specifies.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "OTLP profiles: use POST", http.StatusMethodNotAllowed)
		return
	}
	ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if ct != contentProtobuf && ct != contentJSON {
		writeStatus(w, contentProtobuf, http.StatusUnsupportedMediaType,
			badRequest("content type %q: send %s or %s", req.Header.Get("Content-Type"), contentProtobuf, contentJSON))
		return
	}
	resp, err := r.serveHTTP(req, ct)
	if err != nil {
		code := http.StatusServiceUnavailable
		if badInput(err) {
			code = http.StatusBadRequest
		}
		writeStatus(w, ct, code, err)
		return
	}
	var body []byte
	if ct == contentJSON {
		body, err = resp.MarshalJSON()
	} else {
		body, err = resp.MarshalProto()
	}
	if err != nil {
		writeStatus(w, ct, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", ct)
	_, _ = w.Write(body) //nolint:gosec // G705: a protobuf or JSON response under its own content type, never HTML
}

func (r *Receiver) serveHTTP(req *http.Request, ct string) (pprofileotlp.ExportResponse, error) {
	if err := pprofileotlp.ValidateDevelopmentVersion(req.Header.Values(pprofileotlp.DevelopmentVersionHeader)); err != nil {
		return pprofileotlp.ExportResponse{}, badRequest("%s: %v", pprofileotlp.DevelopmentVersionHeader, err)
	}
	body, err := r.readBody(req)
	if err != nil {
		return pprofileotlp.ExportResponse{}, err
	}
	pd, err := Decode(body, ct == contentJSON)
	if err != nil {
		return pprofileotlp.ExportResponse{}, err
	}
	return r.export(req.Context(), pd)
}

// Decode reads an ExportProfilesServiceRequest (protobuf, or OTLP JSON).
func Decode(body []byte, json bool) (pprofile.Profiles, error) {
	req := pprofileotlp.NewExportRequest()
	var err error
	if json {
		err = req.UnmarshalJSON(body)
	} else {
		err = req.UnmarshalProto(body)
	}
	if err != nil {
		return pprofile.Profiles{}, badRequest("decode ExportProfilesServiceRequest: %v", err)
	}
	return req.Profiles(), nil
}

// readBody reads the body, decompressed, up to MaxBodyBytes.
func (r *Receiver) readBody(req *http.Request) ([]byte, error) {
	// Both the wire bytes and what they decompress to are bounded.
	wire := http.MaxBytesReader(nil, req.Body, r.cfg.MaxBodyBytes)
	var src io.Reader = wire
	switch enc := req.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(wire)
		if err != nil {
			return nil, badRequest("gzip body: %v", err)
		}
		defer zr.Close()
		src = zr
	default:
		return nil, badRequest("content encoding %q: send gzip or none", enc)
	}
	body, err := io.ReadAll(io.LimitReader(src, r.cfg.MaxBodyBytes+1))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, badRequest("body over %d bytes", mbe.Limit)
	case err != nil:
		return nil, badRequest("read body: %v", err)
	case int64(len(body)) > r.cfg.MaxBodyBytes:
		return nil, badRequest("body over %d bytes", r.cfg.MaxBodyBytes)
	}
	return body, nil
}

// writeStatus answers an error with a google.rpc.Status naming it.
func writeStatus(w http.ResponseWriter, ct string, code int, err error) {
	st := status.New(grpcCode(err), err.Error()).Proto()
	var body []byte
	if ct == contentJSON {
		body, _ = protojson.Marshal(st)
	} else {
		body, _ = proto.Marshal(st)
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
