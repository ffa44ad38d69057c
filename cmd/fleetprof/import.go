package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/agent/ship"
	"github.com/fleetprof/fleetprof/aggregator/pprofconv"
	ingestv1 "github.com/fleetprof/fleetprof/proto/fleetprof/ingest/v1"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

func init() {
	register("import", "ingest pprof files (e.g. from net/http/pprof) into an aggregator", runImport)
}

// importBatchRows keeps each batch well under the aggregator's size limits.
const importBatchRows = 50_000

// stringList is a repeatable / comma-separated flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

func runImport(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	service := fs.String("service", "", "service name (required)")
	version := fs.String("version", "", "version label")
	var labels stringList
	fs.Var(&labels, "labels", "more labels k=v,k2=v2 (host, namespace, pod, container, comm, pid or any extra key); repeatable")
	addr := fs.String("grpc", "127.0.0.1:7071", "aggregator gRPC address (default: the fleetprof up running with --data, else this)")
	token := fs.String("token", "", "bearer token")
	tokenFile := fs.String("token-file", "", "file holding the bearer token (default: the token of a fleetprof up running with --data)")
	dataDir := fs.String("data", defaultDataDir, "data directory of a local fleetprof up, whose token is used when --grpc is its address")
	useTLS := fs.Bool("tls", false, "connect with TLS (system roots)")
	bucket := fs.Duration("bucket", time.Minute, "time bucket samples are aligned to")
	sampleType := fs.String("sample-type", "", "import this sample type of a non-CPU profile, as TYPE/UNIT (alloc_space/bytes, inuse_space/bytes, goroutine/count, contentions/count, delay/nanoseconds); stored under that profile type, queried with fleetprof query --profile-type")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: fleetprof import FILE... --service NAME [flags]")
		fs.PrintDefaults()
	}
	var files []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) == 0 {
		return usageError{errors.New("no pprof FILE given")}
	}
	if *service == "" {
		return usageError{errors.New("--service is required")}
	}
	opt := pprofconv.ImportOptions{Bucket: *bucket, SampleType: *sampleType}
	if err := samplebatch.CheckProfileType(opt.ProfileType()); err != nil {
		return usageError{fmt.Errorf("--sample-type: %w", err)}
	}
	lab, err := importLabels(*service, *version, labels)
	if err != nil {
		return usageError{err}
	}
	opt.Labels = lab
	*addr = localGRPC(*addr, flagSet(fs, "grpc"), *dataDir)
	tok, err := resolveToken(*token, *tokenFile, *dataDir, *addr)
	if err != nil {
		return err
	}

	// Convert every file before sending anything, so a bad file imports nothing.
	type job struct {
		file    string
		id      string
		batches [][]byte
	}
	var jobs []job
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		samples, err := pprofconv.Parse(data, opt)
		if errors.Is(err, pprofconv.ErrNotCPU) {
			return fmt.Errorf("%s: %w; pass --sample-type TYPE/UNIT to import one of them under its own profile type", f, err)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		j := job{file: f, id: importBatchID(samples, lab, opt.ProfileType())}
		for len(samples) > 0 {
			n := min(len(samples), importBatchRows)
			enc, err := samplebatch.EncodeProfile(opt.ProfileType(), samples[:n])
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			j.batches = append(j.batches, enc)
			samples = samples[n:]
		}
		jobs = append(jobs, j)
	}

	client, err := ship.NewClient(ship.Config{Addr: *addr, Token: tok, TLS: ship.TLSConfig{Enabled: *useTLS}}, 0)
	if err != nil {
		return err
	}
	defer client.Close()
	for _, j := range jobs {
		var rows int64
		dup := 0
		for i, b := range j.batches {
			id := j.id
			if len(j.batches) > 1 {
				id += "/" + strconv.Itoa(i)
			}
			resp, err := client.Write(ctx, id, b)
			if err != nil {
				return fmt.Errorf("%s: %w", j.file, err)
			}
			if resp.GetStatus() == ingestv1.WriteResponse_STATUS_DUPLICATE {
				dup++
			}
			rows += resp.GetRows()
		}
		if dup == len(j.batches) {
			fmt.Fprintf(stdout, "%s: duplicate (already imported)\n", j.file)
		} else {
			fmt.Fprintf(stdout, "%s: %d rows stored\n", j.file, rows)
		}
	}
	return nil
}

// importLabels builds the row labels from --service, --version and --labels.
func importLabels(service, version string, kvs []string) (samplebatch.Labels, error) {
	l := samplebatch.Labels{Service: service, Version: version}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return l, fmt.Errorf("--labels %q: want key=value", kv)
		}
		if k == samplebatch.ColService || k == samplebatch.ColVersion {
			return l, fmt.Errorf("--labels %q: use --%s", kv, k)
		}
		if err := l.Set(k, v); err != nil {
			return l, fmt.Errorf("--labels %q: %w", kv, err)
		}
	}
	sort.Slice(l.Extra, func(i, j int) bool { return l.Extra[i].Key < l.Extra[j].Key })
	return l, nil
}

// importBatchID is stable for the same file, labels and profile type, so a re-import
// is a duplicate.
func importBatchID(samples []samplebatch.Sample, l samplebatch.Labels, profileType string) string {
	h := sha256.New()
	// CPU imports hash as before profile types existed: their ids stay the same.
	if profileType != samplebatch.ProfileCPU {
		fmt.Fprintf(h, "profile_type=%q\x00", profileType)
	}
	// The id hashes what is stored, not the file's bytes, so a gzipped and a raw copy
	// of one profile (or a re-encoded one) import once.
	for _, smp := range samples {
		fmt.Fprintf(h, "%d\x00%d\x00%d\x00%q\x00", smp.TS, smp.Value, smp.PeriodNS, smp.Frames)
		for _, e := range smp.Labels.Extra {
			fmt.Fprintf(h, "%q=%q\x00", e.Key, e.Value)
		}
	}
	fmt.Fprintf(h, "\x00%q\x00%q\x00%q\x00%q\x00%q\x00%q\x00%q\x00%d", l.Service, l.Version, l.Host, l.Namespace, l.Pod, l.Container, l.Comm, l.PID)
	for _, e := range l.Extra {
		fmt.Fprintf(h, "\x00%q=%q", e.Key, e.Value)
	}
	return "import-" + hex.EncodeToString(h.Sum(nil))
}
