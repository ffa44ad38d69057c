package labels

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

const (
	cidWeb  = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	cidSide = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	cidNone = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	podUID  = "0c9b8a7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
)

// fakeProc writes a /proc/PID directory with the files the resolver reads, for a
// process started by init.
func fakeProc(t *testing.T, root string, pid int, start uint64, comm, cgroup string, env ...string) {
	t.Helper()
	fakeProcStat(t, root, pid, 1, 4194560, start, comm, cgroup, env...)
}

// fakeProcStat is fakeProc with the parent pid and the stat flags.
func fakeProcStat(t *testing.T, root string, pid, ppid int, flags, start uint64, comm, cgroup string, env ...string) {
	t.Helper()
	dir := filepath.Join(root, fmt.Sprint(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stat := fmt.Sprintf("%d (%s) S %d 1 1 0 -1 %d 100 0 0 0 5 3 0 0 20 0 1 0 %d 1000 100", pid, comm, ppid, flags, start)
	files := map[string]string{
		"stat":    stat,
		"cgroup":  cgroup + "\n",
		"environ": strings.Join(env, "\x00") + "\x00",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func podList() corev1.PodList {
	return corev1.PodList{Items: []corev1.Pod{{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "shop", Name: "web-7d9f", UID: types.UID(podUID),
			Labels: map[string]string{"app.kubernetes.io/name": "web", "app.kubernetes.io/version": "1.4.2", "team": "checkout"},
		},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{
			{Name: "web", ContainerID: "containerd://" + cidWeb},
			{Name: "sidecar", ContainerID: "cri-o://" + cidSide},
		}},
	}}}
}

// kubeServer serves the pod list of node "node-a" like the API server.
func kubeServer(t *testing.T, token string) (*httptest.Server, *int) {
	t.Helper()
	lists := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/pods" {
			http.NotFound(w, r)
			return
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+token {
			http.Error(w, "unauthorized: "+got, http.StatusUnauthorized)
			return
		}
		if sel := r.URL.Query().Get("fieldSelector"); sel != "spec.nodeName=node-a" {
			http.Error(w, "want this node's pods only, got selector "+sel, http.StatusBadRequest)
			return
		}
		lists++
		_ = json.NewEncoder(w).Encode(podList())
	}))
	t.Cleanup(srv.Close)
	return srv, &lists
}

func newKube(t *testing.T, url, token string) *Kube {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := NewKube(KubeConfig{APIServer: url, TokenFile: tokenFile, Node: "node-a", Client: http.DefaultClient})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKubeRefresh(t *testing.T) {
	srv, _ := kubeServer(t, "tok")
	k := newKube(t, srv.URL, "tok")
	if err := k.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id, pod, container string
		ok                 bool
	}{
		{cidWeb, "web-7d9f", "web", true},
		{cidSide, "web-7d9f", "sidecar", true},
		{cidNone, "", "", false},
	}
	for _, tt := range tests {
		c, ok := k.Container(tt.id)
		if ok != tt.ok || ok && (c.Pod.Name != tt.pod || c.Name != tt.container || c.Pod.Namespace != "shop") {
			t.Errorf("Container(%.8s) = %+v, %v; want pod %q container %q", tt.id, c, ok, tt.pod, tt.container)
		}
	}
	if p, ok := k.PodByUID(podUID); !ok || p.Name != "web-7d9f" {
		t.Errorf("PodByUID = %+v, %v", p, ok)
	}

	bad := newKube(t, srv.URL, "wrong")
	err := bad.Refresh(context.Background())
	if err == nil || !strings.Contains(err.Error(), "401") || bad.Err() == nil {
		t.Fatalf("wrong token: %v, want an error naming the 401", err)
	}
}

func TestResolve(t *testing.T) {
	srv, _ := kubeServer(t, "tok")
	k := newKube(t, srv.URL, "tok")
	if err := k.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	uidU := strings.ReplaceAll(podUID, "-", "_")
	v2 := func(id string) string {
		return "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + id + ".scope"
	}
	fakeProc(t, root, 10, 100, "web-server", v2(cidWeb), "PATH=/bin", "FLEETPROF_SERVICE=envweb", "FLEETPROF_VERSION=9.9")
	fakeProc(t, root, 11, 100, "envoy", v2(cidSide))
	fakeProc(t, root, 12, 100, "dockerd-child", "0::/system.slice/docker-"+cidNone+".scope", "FLEETPROF_SERVICE=batch", "MY_SVC=custom")
	fakeProc(t, root, 13, 100, "sshd", "0::/system.slice/ssh.service")

	web := Info{Namespace: "shop", Pod: "web-7d9f", Container: "web", ContainerID: cidWeb, PodUID: podUID, Comm: "web-server"}
	side := Info{Namespace: "shop", Pod: "web-7d9f", Container: "sidecar", ContainerID: cidSide, PodUID: podUID, Comm: "envoy"}
	with := func(i Info, svc, ver string) Info { i.Service, i.Version = svc, ver; return i }
	tests := []struct {
		name string
		cfg  Config
		pid  uint32
		want Info
	}{
		{"pod labels first", Config{}, 10, with(web, "web", "1.4.2")},
		{"sidecar gets the pod's labels", Config{}, 11, with(side, "web", "1.4.2")},
		{"env first", Config{Order: []Rule{RuleEnv, RulePodLabel, RuleComm}}, 10, with(web, "envweb", "9.9")},
		{"custom pod label keys", Config{ServiceLabel: "team", VersionLabel: "none"}, 10, with(web, "checkout", "9.9")},
		{"not a pod: env", Config{}, 12, Info{Service: "batch", Container: cidNone, ContainerID: cidNone, Comm: "dockerd-child"}},
		{"custom env key", Config{ServiceEnv: "MY_SVC"}, 12, Info{Service: "custom", Container: cidNone, ContainerID: cidNone, Comm: "dockerd-child"}},
		{"host process: comm", Config{}, 13, Info{Service: "sshd", Comm: "sshd"}},
		{"comm disabled", Config{Order: []Rule{RulePodLabel, RuleEnv}}, 13, Info{Comm: "sshd"}},
		{"unknown pid", Config{}, 99, Info{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.ProcRoot, cfg.Kube = root, k
			r, err := NewResolver(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Resolve(tt.pid); got != tt.want {
				t.Fatalf("Resolve(%d) =\n%+v, want\n%+v", tt.pid, got, tt.want)
			}
		})
	}
}

func TestResolveCacheAndPidReuse(t *testing.T) {
	root := t.TempDir()
	r, err := NewResolver(Config{ProcRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	fakeProc(t, root, 20, 500, "first", "0::/", "FLEETPROF_SERVICE=one")
	if got := r.Resolve(20).Service; got != "one" {
		t.Fatalf("service %q, want one", got)
	}
	// Same start time: the cache answers even if the environment changed.
	fakeProc(t, root, 20, 500, "first", "0::/", "FLEETPROF_SERVICE=changed")
	if got := r.Resolve(20).Service; got != "one" {
		t.Fatalf("cached service %q, want one", got)
	}
	// Reused pid (new start time): read again.
	fakeProc(t, root, 20, 900, "second", "0::/", "FLEETPROF_SERVICE=two")
	if got := r.Resolve(20).Service; got != "two" {
		t.Fatalf("reused pid service %q, want two", got)
	}
	// Exited: still resolves from the cache until forgotten.
	if err := os.RemoveAll(filepath.Join(root, "20")); err != nil {
		t.Fatal(err)
	}
	if got := r.Resolve(20).Service; got != "two" {
		t.Fatalf("exited process service %q, want two", got)
	}
	r.Forget(20)
	if got := r.Resolve(20); got != (Info{}) {
		t.Fatalf("forgotten process %+v, want empty", got)
	}
}

func TestResolveSelf(t *testing.T) {
	r, err := NewResolver(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("FLEETPROF_SERVICE", "ignored") // environ is the one at exec
	info := r.Resolve(uint32(os.Getpid()))
	if info.Comm == "" || info.Service != info.Comm {
		t.Fatalf("own process %+v: want comm as service", info)
	}
}

func TestParseOrder(t *testing.T) {
	tests := []struct {
		in, err string
		n       int
	}{
		{"pod-label,env,comm", "", 3},
		{" env , comm ", "", 2},
		{"env,bogus", `unknown label rule "bogus"`, 0},
		{"env,env", "listed twice", 0},
	}
	for _, tt := range tests {
		got, err := ParseOrder(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseOrder(%q) error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || len(got) != tt.n {
			t.Errorf("ParseOrder(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestKubeConfigValidate(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := NewKube(KubeConfig{Node: "n"}); err == nil || !strings.Contains(err.Error(), "api server") {
		t.Fatalf("no api server: %v", err)
	}
	if _, err := NewKube(KubeConfig{APIServer: "https://x", Client: http.DefaultClient}); err == nil || !strings.Contains(err.Error(), "node name") {
		t.Fatalf("no node: %v", err)
	}
}

// TestResolveShortLived: under the comm rule, kernel threads are one service and a
// process that exited young counts under its parent (through short-lived parents).
func TestResolveShortLived(t *testing.T) {
	const user = 4194560 // a user process's stat flags
	type fake struct {
		pid, ppid    int
		flags, start uint64 // start in ticks; the clock is at 10000 (uptime 100 s)
		comm, env    string
		gone         bool // exited after the resolver first read it
	}
	procs := []fake{
		{pid: 30, ppid: 1, flags: user, start: 9000, comm: "build.sh"},
		{pid: 31, ppid: 30, flags: user, start: 9950, comm: "sed", gone: true},
		{pid: 32, ppid: 30, flags: user, start: 8000, comm: "indexer", gone: true}, // lived 20 s
		{pid: 33, ppid: 30, flags: user, start: 9990, comm: "grep"},                // still running
		{pid: 34, ppid: 2, flags: 0x00208040, start: 50, comm: "kworker/0:1H"},
		{pid: 36, ppid: 1, flags: user, start: 100, comm: "cron"},
		{pid: 37, ppid: 36, flags: user, start: 9900, comm: "sh", gone: true},
		{pid: 38, ppid: 37, flags: user, start: 9950, comm: "sed", gone: true},
		{pid: 40, ppid: 1, flags: user, start: 9999, comm: "newer"}, // reused the parent's pid
		{pid: 39, ppid: 40, flags: user, start: 9950, comm: "orphan", gone: true},
		{pid: 41, ppid: 1, flags: user, start: 9000, comm: "app", env: "FLEETPROF_SERVICE=billing"},
		{pid: 42, ppid: 41, flags: user, start: 9950, comm: "gzip", gone: true},
		{pid: 43, ppid: 1, flags: user, start: 9950, comm: "daemonized", gone: true},
	}
	tests := []struct {
		name string
		cfg  Config
		pid  uint32
		want string
	}{
		{"script's command", Config{}, 31, "build.sh"},
		{"exited but not young", Config{}, 32, "indexer"},
		{"young but running", Config{}, 33, "grep"},
		{"kernel thread", Config{}, 34, KernelService},
		{"through a short-lived shell", Config{}, 38, "cron"},
		{"parent pid reused", Config{}, 39, "orphan"},
		{"parent's service from env", Config{}, 42, "billing"},
		{"started by init", Config{}, 43, "daemonized"},
		{"shorter threshold", Config{ShortLived: 100 * time.Millisecond}, 31, "sed"},
		{"off: own comm", Config{ShortLived: -1}, 31, "sed"},
		{"off: kernel thread's comm", Config{ShortLived: -1}, 34, "kworker/0:1H"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.WriteFile(filepath.Join(root, "uptime"), []byte("100.00 180.00\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := tt.cfg
			cfg.ProcRoot = root
			r, err := NewResolver(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range procs {
				var env []string
				if p.env != "" {
					env = []string{p.env}
				}
				fakeProcStat(t, root, p.pid, p.ppid, p.flags, p.start, p.comm, "0::/user.slice", env...)
				r.Resolve(uint32(p.pid)) // read while it runs, as the agent does at exec
			}
			for _, p := range procs {
				if p.gone {
					if err := os.RemoveAll(filepath.Join(root, fmt.Sprint(p.pid))); err != nil {
						t.Fatal(err)
					}
				}
			}
			got := r.Resolve(tt.pid)
			if got.Service != tt.want {
				t.Errorf("Resolve(%d).Service = %q, want %q", tt.pid, got.Service, tt.want)
			}
			for _, p := range procs {
				if uint32(p.pid) == tt.pid && got.Comm != p.comm {
					t.Errorf("Resolve(%d).Comm = %q, want its own %q", tt.pid, got.Comm, p.comm)
				}
			}
		})
	}
}

func TestParseStat(t *testing.T) {
	rest := " S 7 1 1 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 4242 1000 100"
	tests := []struct {
		name    string
		in      string
		want    stat
		wantErr bool
	}{
		{"plain", "17 (bash)" + rest, stat{comm: "bash", start: 4242, ppid: 7, flags: 4194560}, false},
		{"comm with spaces and parens", "17 (a) b (c)" + rest, stat{comm: "a) b (c", start: 4242, ppid: 7, flags: 4194560}, false},
		{"no comm", "17 bash S 0", stat{}, true},
		{"short", "17 (bash) S 1 2 3", stat{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseStat = %+v, %v; want %+v, err %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
