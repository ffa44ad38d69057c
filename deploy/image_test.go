package deploy

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/fleetprof/fleetprof/internal/elfdeps"
	"github.com/fleetprof/fleetprof/internal/testenv"
	"github.com/fleetprof/fleetprof/model"
)

// podmanNprocCeiling is the RLIMIT_NPROC podman 4.3 sets on itself before it starts the
// OCI runtime; a container asking for more (podman's default asks for the host's) makes
// crun's setrlimit fail with EPERM where CAP_SYS_RESOURCE is not held, as here.
const podmanNprocCeiling = 32768

// TestImageRunsAsAggregator builds the image the way make image does
// (scripts/build-image.sh, which also podman-loads it), checks its config against the
// Dockerfile and its files, then runs it with podman as the aggregator on published
// ports, with its own command and as the chart runs it (the chart's args, user, mounts
// and read-only root): a pprof imported from the host must come back from query top.
func TestImageRunsAsAggregator(t *testing.T) {
	testenv.Root(t, "podman run with published ports")
	podman := testenv.LookPath(t, "podman", "podman")
	unshare := testenv.LookPath(t, "unshare", "util-linux")
	chdb := os.Getenv("FLEETPROF_CHDB_LIB")
	if chdb == "" {
		chdb = "/usr/local/lib/libchdb.so"
	}
	if _, err := os.Stat(chdb); err != nil {
		testenv.Skip(t, testenv.MissingTool, "libchdb.so (make setup): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	bin := buildFleetprof(t)
	tag := fmt.Sprintf("localhost/fleetprof-imagetest:%d", os.Getpid())
	archive := filepath.Join(t.TempDir(), "image.tar")
	build := exec.CommandContext(ctx, "./scripts/build-image.sh")
	build.Dir = ".."
	build.Env = append(os.Environ(), "IMAGE="+tag, "IMAGE_TAR="+archive, "FLEETPROF_BINARY="+bin, "FLEETPROF_CHDB_LIB="+chdb)
	out, err := build.CombinedOutput()
	t.Cleanup(func() { _ = exec.Command(podman, "rmi", "-f", tag).Run() })
	if err != nil {
		t.Fatalf("build-image.sh: %v\n%s", err, out)
	}
	checkImage(t, archive, tag, bin)

	for _, run := range []imageRun{
		{name: "default command", httpPort: 7070, grpcPort: 7071},
		chartAggregator(t),
	} {
		t.Run(run.name, func(t *testing.T) {
			grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
			exited := runImage(ctx, t, unshare, podman, tag, run, httpAddr, grpcAddr)
			readyCtx, stopWaiting := context.WithCancel(ctx)
			go func() { <-exited; stopWaiting() }() // podman gone: fail now, not at the timeout
			waitReady(readyCtx, t, "http://"+httpAddr+"/readyz")
			stopWaiting()
			importAndQuery(ctx, t, bin, grpcAddr, httpAddr, run.token)
		})
	}
}

// imageRun is one way of running the image: podman run options, the command after the
// image name (empty: the image's own), the ingest token it expects and its ports.
type imageRun struct {
	name               string
	opts, args         []string
	token              string
	httpPort, grpcPort int32
}

// chartAggregator is how the chart (the committed manifests' values: embedded storage,
// token from a Secret) runs the
// aggregator container, as podman options: its args and ports, its user, a read-only
// root with a tmpfs /tmp (and no image volume, as Kubernetes mounts none), the token
// Secret as a file and the data volume as a directory owned by the pod's fsGroup.
func chartAggregator(t *testing.T) imageRun {
	t.Helper()
	_, objs, err := Render("fleetprof", "fleetprof", manifestValues)
	if err != nil {
		t.Fatal(err)
	}
	deps := find[appsv1.Deployment](objs)
	if len(deps) != 1 {
		t.Fatalf("chart renders %d Deployments, want the aggregator's", len(deps))
	}
	pod := deps[0].Spec.Template.Spec
	c := pod.Containers[0]
	run := imageRun{name: "chart args", args: c.Args, token: "s3cret"}
	for _, p := range c.Ports {
		switch p.Name {
		case "http":
			run.httpPort = p.ContainerPort
		case "grpc":
			run.grpcPort = p.ContainerPort
		}
	}
	if sc := pod.SecurityContext; sc != nil && sc.RunAsUser != nil && sc.RunAsGroup != nil {
		run.opts = append(run.opts, "--user", fmt.Sprintf("%d:%d", *sc.RunAsUser, *sc.RunAsGroup))
	}
	if sc := c.SecurityContext; sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		run.opts = append(run.opts, "--read-only", "--read-only-tmpfs=false", "--image-volume", "ignore")
	}
	for _, m := range c.VolumeMounts {
		switch m.Name {
		case "token":
			dir := t.TempDir()
			if err := errors.Join(os.Chmod(dir, 0o755), os.WriteFile(filepath.Join(dir, "token"), []byte(run.token), 0o644)); err != nil {
				t.Fatal(err)
			}
			run.opts = append(run.opts, "-v", dir+":"+m.MountPath+":ro")
		case "tmp":
			run.opts = append(run.opts, "--tmpfs", m.MountPath)
		case "data":
			dir := t.TempDir()
			gid := 0
			if pod.SecurityContext != nil && pod.SecurityContext.FSGroup != nil {
				gid = int(*pod.SecurityContext.FSGroup)
			}
			if err := errors.Join(os.Chown(dir, 0, gid), os.Chmod(dir, 0o770)); err != nil {
				t.Fatal(err)
			}
			run.opts = append(run.opts, "-v", dir+":"+m.MountPath)
		default:
			t.Fatalf("chart mounts volume %q at %s; teach this test what it holds", m.Name, m.MountPath)
		}
	}
	return run
}

// importAndQuery imports cpu.pb.gz from the host and checks query top's answer.
func importAndQuery(ctx context.Context, t *testing.T, bin, grpcAddr, httpAddr, token string) {
	t.Helper()
	dataDir := t.TempDir() // no fleetprof up here: its token must not be picked up
	args := []string{"import", "../aggregator/pprofconv/testdata/cpu.pb.gz", "--service", "imagetest", "--grpc", grpcAddr, "--data", dataDir}
	if token != "" {
		args = append(args, "--token", token)
	}
	if out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, bin, "query", "top", "--http", "http://"+httpAddr, "--service", "imagetest",
		"--from", "2026-11-25T00:00:00Z", "--to", "2026-11-26T00:00:00Z", "--limit", "1", "--json").Output()
	if err != nil {
		t.Fatalf("query top: %v\n%s", err, out)
	}
	var top model.Top
	if err := json.Unmarshal(out, &top); err != nil {
		t.Fatalf("query top output %q: %v", out, err)
	}
	// The profile: 27 samples, sha256.blockSHANI the hottest with 5 (go tool pprof -top).
	if top.Total != 27 || len(top.Functions) != 1 || top.Functions[0].Function != "crypto/internal/fips140/sha256.blockSHANI" || top.Functions[0].Self != 5 {
		t.Errorf("query top from the container = %s, want 27 samples with blockSHANI self 5", out)
	}
}

// checkImage reads the image back from the archive: its config must match the
// Dockerfile's and its files must be the ones the aggregator needs, owned as it runs.
func checkImage(t *testing.T, archive, tag, bin string) {
	t.Helper()
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(archive, &ref)
	if err != nil {
		t.Fatalf("read image: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	docker := dockerfileFinalStage(t)
	dockerJSON := func(list []string) string {
		b, _ := json.Marshal(list)
		return strings.ReplaceAll(string(b), `","`, `", "`)
	}
	for _, tt := range []struct{ instruction, image string }{
		{"USER", cf.Config.User},
		{"WORKDIR", cf.Config.WorkingDir},
		{"VOLUME", strings.Join(slices.Sorted(maps.Keys(cf.Config.Volumes)), " ")},
		{"EXPOSE", strings.ReplaceAll(strings.Join(slices.Sorted(maps.Keys(cf.Config.ExposedPorts)), " "), "/tcp", "")},
		{"ENTRYPOINT", dockerJSON(cf.Config.Entrypoint)},
		{"CMD", dockerJSON(cf.Config.Cmd)},
	} {
		if docker[tt.instruction] != tt.image {
			t.Errorf("image %s = %q, Dockerfile says %q", tt.instruction, tt.image, docker[tt.instruction])
		}
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("image user %q, want the non-root 65532:65532", cf.Config.User)
	}

	files := map[string]*tar.Header{}
	passwd := ""
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read image files: %v", err)
		}
		p := "/" + strings.TrimSuffix(h.Name, "/")
		files[p] = h
		if p == "/etc/passwd" {
			b, _ := io.ReadAll(tr)
			passwd = string(b)
		}
	}
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	interp, err := elfdeps.Interpreter(bin)
	if err != nil || interp == "" {
		t.Fatalf("loader of %s: %q, %v", bin, interp, err)
	}
	for _, tt := range []struct {
		path     string
		mode     int64
		uid      int
		size     int64 // 0: any
		typeflag byte
	}{
		{"/usr/local/bin/fleetprof", 0o755, 0, fi.Size(), tar.TypeReg},
		{"/usr/local/lib/libchdb.so", 0o755, 0, 0, tar.TypeReg},
		{interp, 0o755, 0, 0, tar.TypeReg},
		{"/etc/ssl/certs/ca-certificates.crt", 0o644, 0, 0, tar.TypeReg},
		{"/data", 0o755, 65532, 0, tar.TypeDir},
		{"/tmp", 0o1777, 0, 0, tar.TypeDir},
	} {
		h := files[tt.path]
		switch {
		case h == nil:
			t.Errorf("image has no %s", tt.path)
		case h.Typeflag != tt.typeflag || h.Mode != tt.mode || h.Uid != tt.uid || (tt.size != 0 && h.Size != tt.size):
			t.Errorf("image %s: type %c mode %o uid %d size %d, want type %c mode %o uid %d size %d",
				tt.path, h.Typeflag, h.Mode, h.Uid, h.Size, tt.typeflag, tt.mode, tt.uid, tt.size)
		}
	}
	if !strings.Contains(passwd, ":65532:65532:") {
		t.Errorf("image /etc/passwd has no user 65532:\n%s", passwd)
	}
}

// dockerfileFinalStage returns the final stage's instructions of ../Dockerfile
// (instruction → arguments).
func dockerfileFinalStage(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stage := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		instruction, args, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok || strings.HasPrefix(instruction, "#") {
			continue
		}
		if instruction == "FROM" {
			stage = map[string]string{}
		}
		stage[instruction] = args
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stage
}

// runImage starts `podman run` of tag in the foreground as run says, publishing its
// HTTP and gRPC ports on the given loopback addresses; cleanup stops it with SIGTERM, which
// podman passes to the aggregator, and podman removes the container and its volume.
//
// It runs in a private mount namespace: on a host with cgroup v1 plus a cgroup2 mount
// at /sys/fs/cgroup/unified ("hybrid", as here) crun refuses to start ("cgroups in
// hybrid mode not supported"), so that mount is dropped for podman only. Podman
// commands for the container must then run in the same namespace (its network
// namespace is mounted there), which is why it runs in the foreground. The returned
// channel is closed when podman exits.
func runImage(ctx context.Context, t *testing.T, unshare, podman, tag string, run imageRun, httpAddr, grpcAddr string) <-chan struct{} {
	t.Helper()
	var nofile, nproc unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile); err != nil {
		t.Fatal(err)
	}
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &nproc); err != nil {
		t.Fatal(err)
	}
	// Limits this process holds: podman's defaults ask for more (RLIMIT_NOFILE 1048576),
	// which crun cannot set without CAP_SYS_RESOURCE.
	nprocMax := min(nproc.Max, podmanNprocCeiling)
	args := []string{"--mount", "sh", "-c", `mountpoint -q /sys/fs/cgroup/unified && umount /sys/fs/cgroup/unified; exec "$0" "$@"`,
		podman, "run", "--rm",
		"--ulimit", fmt.Sprintf("nofile=%d:%d", nofile.Cur, nofile.Max),
		"--ulimit", fmt.Sprintf("nproc=%d:%d", min(nproc.Cur, nprocMax), nprocMax),
		"-p", fmt.Sprintf("%s:%d", httpAddr, run.httpPort), "-p", fmt.Sprintf("%s:%d", grpcAddr, run.grpcPort)}
	args = append(append(append(args, run.opts...), tag), run.args...)
	cmd := exec.CommandContext(ctx, unshare, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	log := newLockedBuffer()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		if t.Failed() {
			t.Logf("podman run output:\n%s", log.String())
		}
	})
	return exited
}
