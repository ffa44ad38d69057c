package main

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/fleetprof/fleetprof/internal/elfdeps"
)

// The image's user: the distroless "nonroot" ids, which the chart's securityContext uses.
const (
	uid = 65532
	gid = 65532
)

// Where the image puts things; the chDB loader looks for /usr/local/lib/libchdb.so.
const (
	binaryPath = "/usr/local/bin/fleetprof"
	chdbPath   = "/usr/local/lib/libchdb.so"
	caPath     = "/etc/ssl/certs/ca-certificates.crt"
)

// The entrypoint is the binary and the default command the aggregator with embedded
// storage on the /data volume, listening on all interfaces: the chart's args
// ("aggregator ...", "agent ...") replace the command. The Dockerfile's ENTRYPOINT and
// CMD are the same lists (deploy/image_test.go checks).
var (
	entrypoint     = []string{binaryPath}
	defaultCommand = []string{"aggregator", "--grpc", "0.0.0.0:7071", "--http", "0.0.0.0:7070", "--storage", "embedded:/data"}
)

func main() {
	binary := flag.String("binary", "bin/fleetprof", "the fleetprof binary (built with cgo)")
	chdb := flag.String("chdb", chdbPath, "libchdb.so for embedded mode")
	ca := flag.String("ca", caPath, "CA certificate bundle")
	tag := flag.String("tag", "ghcr.io/fleetprof/fleetprof:0.1.0", "image reference written into the tarball")
	out := flag.String("out", "bin/fleetprof-image.tar", "docker-archive tarball to write")
	flag.Parse()
	if err := build(*binary, *chdb, *ca, *tag, *out, epoch()); err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

// epoch is the time stamped on files and the config: SOURCE_DATE_EPOCH when set, else
// the Unix epoch, so the same inputs give the same image digest.
func epoch() time.Time {
	if s, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		return time.Unix(s, 0).UTC()
	}
	return time.Unix(0, 0).UTC()
}

// entry is one file or directory of a layer: data from a host file (src) or inline.
type entry struct {
	path     string
	mode     int64
	uid, gid int
	dir      bool
	src      string
	data     []byte
}

func build(binary, chdb, ca, tag, out string, at time.Time) error {
	ref, err := name.ParseReference(tag)
	if err != nil {
		return fmt.Errorf("image tag %q: %w", tag, err)
	}
	libs, err := elfdeps.Closure([]string{binary, chdb}, libraryDirs())
	if err != nil {
		return fmt.Errorf("shared libraries: %w", err)
	}
	delete(libs, chdbPath) // its own layer
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".imagebuild-")
	if err != nil {
		return fmt.Errorf("scratch directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	// Three layers, least to most often changed, so a new binary pushes only its own.
	base := baseEntries(ca)
	for _, imagePath := range sortedKeys(libs) {
		base = append(base, entry{path: imagePath, mode: 0o755, src: libs[imagePath]})
	}
	groups := [][]entry{
		base,
		{{path: chdbPath, mode: 0o755, src: chdb}},
		{{path: binaryPath, mode: 0o755, src: binary}},
	}
	img := empty.Image
	for i, g := range groups {
		l, err := writeLayer(filepath.Join(tmp, fmt.Sprintf("layer%d.tar.gz", i)), g, at)
		if err != nil {
			return err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return fmt.Errorf("append layer: %w", err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: at}
	cf.Config = v1.Config{
		Entrypoint:   entrypoint,
		Cmd:          defaultCommand,
		User:         fmt.Sprintf("%d:%d", uid, gid),
		WorkingDir:   "/data",
		Env:          []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/data"},
		ExposedPorts: map[string]struct{}{"7070/tcp": {}, "7071/tcp": {}},
		Volumes:      map[string]struct{}{"/data": {}},
		Labels:       map[string]string{"org.opencontainers.image.source": "https://github.com/fleetprof/fleetprof"},
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return fmt.Errorf("set config: %w", err)
	}
	if err := tarball.WriteToFile(out, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}

// baseEntries are the directories and small files every image needs.
func baseEntries(ca string) []entry {
	dirs := []string{"etc", "etc/ssl", "etc/ssl/certs", "lib", "lib64", "usr", "usr/bin", "usr/lib", "usr/local", "usr/local/bin", "usr/local/lib", "bin"}
	if t := multiarch(); t != "" {
		dirs = append(dirs, "lib/"+t, "usr/lib/"+t)
	}
	var es []entry
	for _, d := range dirs {
		es = append(es, entry{path: "/" + d, mode: 0o755, dir: true})
	}
	return append(es,
		entry{path: "/tmp", mode: 0o1777, dir: true},
		entry{path: "/data", mode: 0o755, dir: true, uid: uid, gid: gid},
		entry{path: "/etc/passwd", mode: 0o644, data: fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\nfleetprof:x:%d:%d:fleetprof:/data:/sbin/nologin\n", uid, gid)},
		entry{path: "/etc/group", mode: 0o644, data: fmt.Appendf(nil, "root:x:0:\nfleetprof:x:%d:\n", gid)},
		entry{path: "/etc/nsswitch.conf", mode: 0o644, data: []byte("passwd: files\ngroup: files\nhosts: files dns\n")},
		entry{path: caPath, mode: 0o644, src: ca},
	)
}

// writeLayer writes es as a gzip'd tar at file and returns it as a layer; compressing
// once to disk (fastest level: libchdb.so is over 500 MB) keeps make image quick.
func writeLayer(file string, es []entry, at time.Time) (v1.Layer, error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("create layer: %w", err)
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	tw := tar.NewWriter(zw)
	for _, e := range es {
		if err := writeEntry(tw, e, at); err != nil {
			return nil, err
		}
	}
	if err := errors.Join(tw.Close(), zw.Close(), f.Close()); err != nil {
		return nil, fmt.Errorf("finish layer: %w", err)
	}
	l, err := tarball.LayerFromFile(file)
	if err != nil {
		return nil, fmt.Errorf("read layer back: %w", err)
	}
	return l, nil
}

func writeEntry(tw *tar.Writer, e entry, at time.Time) error {
	h := &tar.Header{Name: e.path[1:], Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: at, Format: tar.FormatPAX}
	if e.dir {
		h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		return tw.WriteHeader(h)
	}
	h.Typeflag = tar.TypeReg
	if e.src == "" {
		h.Size = int64(len(e.data))
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", e.path, err)
		}
		_, err := tw.Write(e.data)
		return err
	}
	src, err := os.Open(e.src)
	if err != nil {
		return fmt.Errorf("open %s: %w", e.src, err)
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", e.src, err)
	}
	h.Size = st.Size()
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("%s: %w", e.path, err)
	}
	if _, err := io.Copy(tw, src); err != nil {
		return fmt.Errorf("copy %s: %w", e.src, err)
	}
	return nil
}

// multiarch is Debian's library directory triplet for this architecture.
func multiarch() string {
	return map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}[runtime.GOARCH]
}

// libraryDirs are where the dynamic loader looks on Debian, in its order.
func libraryDirs() []string {
	t := multiarch()
	return []string{"/lib/" + t, "/usr/lib/" + t, "/lib64", "/lib", "/usr/lib", "/usr/local/lib"}
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
