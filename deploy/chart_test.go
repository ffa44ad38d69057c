package deploy

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

var update = flag.Bool("update", false, "rewrite deploy/manifests from the chart")

// documentedCapabilities is the table in OPS.md; the agent may hold nothing else.
var documentedCapabilities = []corev1.Capability{"BPF", "PERFMON", "SYS_PTRACE", "SYS_RESOURCE"}

// manifestValues renders the committed plain manifests: the token comes from a Secret
// the operator creates, never from a value committed here.
var manifestValues = map[string]any{"auth": map[string]any{"existingSecret": "fleetprof-token"}}

func valueSets() map[string]map[string]any {
	return map[string]map[string]any{
		"embedded": manifestValues,
		"external": {
			"auth":       map[string]any{"token": "t0ken"},
			"clickhouse": map[string]any{"mode": "external", "external": map[string]any{"uri": "clickhouse://ch-0:9000,ch-1:9000/fleetprof?cluster=fleet"}},
			"aggregator": map[string]any{"replicas": 3},
		},
		"tls-no-priorityclass": {
			"auth":     map[string]any{"token": "t0ken", "readToken": "r3ad"},
			"analyzer": map[string]any{"enabled": false},
			"tls":      map[string]any{"enabled": true},
			"agent":    map[string]any{"createPriorityClass": false, "hz": 99},
		},
	}
}

func find[T any](objs []Object) []*T {
	var out []*T
	for _, o := range objs {
		if v, ok := o.Value.(*T); ok {
			out = append(out, v)
		}
	}
	return out
}

func TestChartRendersStrictly(t *testing.T) {
	for name, vals := range valueSets() {
		t.Run(name, func(t *testing.T) {
			if msgs := Lint(vals); len(msgs) > 0 {
				t.Errorf("helm lint: %s", strings.Join(msgs, "\n"))
			}
			_, objs, err := Render("fleetprof", "fleetprof", vals)
			if err != nil {
				t.Fatal(err)
			}
			ds := find[appsv1.DaemonSet](objs)
			deps := find[appsv1.Deployment](objs)
			if len(ds) != 1 || len(deps) != 1 {
				t.Fatalf("got %d DaemonSets and %d Deployments, want 1 and 1", len(ds), len(deps))
			}
			checkAgentPolicy(t, ds[0])
			checkAggregator(t, name, deps[0], objs)
			checkRBAC(t, objs)
		})
	}
}

func checkAgentPolicy(t *testing.T, ds *appsv1.DaemonSet) {
	spec := ds.Spec.Template.Spec
	if !spec.HostPID {
		t.Error("agent: hostPID must be true to see the host's processes")
	}
	if len(spec.Tolerations) == 0 || spec.Tolerations[0].Operator != corev1.TolerationOpExists {
		t.Error("agent: must tolerate every taint by default")
	}
	if spec.PriorityClassName == "" {
		t.Error("agent: priority class not set")
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		if sc == nil {
			t.Fatalf("agent container %s: no securityContext", c.Name)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("agent container %s: privileged", c.Name)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("agent container %s: root filesystem not read-only", c.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("agent container %s: privilege escalation allowed", c.Name)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("agent container %s: capabilities must drop ALL", c.Name)
		} else {
			for _, add := range sc.Capabilities.Add {
				if !slices.Contains(documentedCapabilities, add) {
					t.Errorf("agent container %s: capability %s is not in the documented list %v", c.Name, add, documentedCapabilities)
				}
			}
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("agent container %s: resource requests/limits not set", c.Name)
		}
		if c.LivenessProbe == nil || c.ReadinessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/metrics" {
			t.Errorf("agent container %s: liveness/readiness must probe /metrics", c.Name)
		}
		hasNode := false
		for _, e := range c.Env {
			hasNode = hasNode || (e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName")
		}
		if !hasNode {
			t.Errorf("agent container %s: NODE_NAME not taken from the downward API", c.Name)
		}
	}
}

func checkAggregator(t *testing.T, set string, d *appsv1.Deployment, objs []Object) {
	replicas := *d.Spec.Replicas
	pvcs := find[corev1.PersistentVolumeClaim](objs)
	if set == "external" {
		if replicas < 2 {
			t.Errorf("aggregator: %d replicas with external ClickHouse, want ≥ 2", replicas)
		}
		if len(pvcs) != 0 {
			t.Error("aggregator: stateless with external ClickHouse, but a PVC is rendered")
		}
		if !slices.ContainsFunc(d.Spec.Template.Spec.Containers[0].Args, func(a string) bool { return strings.HasPrefix(a, "--storage=clickhouse://") }) {
			t.Error("aggregator: --storage does not point at the external ClickHouse")
		}
	} else {
		if replicas != 1 || len(pvcs) != 1 {
			t.Errorf("aggregator: embedded storage needs 1 replica and 1 PVC, got %d and %d", replicas, len(pvcs))
		}
	}
	// The analyzer runs in-process unless turned off (values.analyzer).
	args := d.Spec.Template.Spec.Containers[0].Args
	wantAnalyze := "--analyze=true"
	if set == "tls-no-priorityclass" {
		wantAnalyze = "--analyze=false"
	}
	if !slices.Contains(args, wantAnalyze) {
		t.Errorf("aggregator args %q lack %s", args, wantAnalyze)
	}
	if on := slices.Contains(args, "--analyze-interval=10m"); on != (wantAnalyze == "--analyze=true") {
		t.Errorf("aggregator args %q: --analyze-interval=10m present=%v with %s", args, on, wantAnalyze)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if set == "tls-no-priorityclass" {
		for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
				t.Errorf("aggregator: with TLS a probe must use scheme HTTPS: %+v", p)
			}
		}
		if !slices.Contains(c.Args, "--read-token-file=/etc/fleetprof/read-token/read-token") {
			t.Errorf("aggregator: read token set but no --read-token-file in %v", c.Args)
		}
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/etc/fleetprof/read-token" }) {
			t.Error("aggregator: read token secret not mounted")
		}
		var found bool
		for _, sec := range find[corev1.Secret](objs) {
			if _, ok := sec.StringData["read-token"]; ok {
				found = true
			}
		}
		if !found {
			t.Error("aggregator: no Secret holds the read token")
		}
	} else if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--read-token") }) {
		t.Errorf("aggregator: read auth on without a read token: %v", c.Args)
	}
	sc := d.Spec.Template.Spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("aggregator: must run as non-root")
	}
}

func checkRBAC(t *testing.T, objs []Object) {
	for _, r := range find[rbacv1.ClusterRole](objs) {
		for _, rule := range r.Rules {
			if !slices.Equal(rule.Resources, []string{"pods"}) || !slices.Equal(rule.Verbs, []string{"get", "list", "watch"}) {
				t.Errorf("agent RBAC grants more than get/list/watch pods: %+v", rule)
			}
		}
	}
}

func TestChartRejectsBadValues(t *testing.T) {
	tests := []struct {
		name string
		vals map[string]any
		want string
	}{
		{"no token", map[string]any{}, "auth.token"},
		{"bad mode", map[string]any{"auth": map[string]any{"token": "x"}, "clickhouse": map[string]any{"mode": "sqlite"}}, `clickhouse.mode must be "embedded" or "external", not "sqlite"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Render("fleetprof", "fleetprof", tc.vals)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestManifestsMatchChart keeps deploy/manifests/fleetprof.yaml equal to the chart
// rendered with manifestValues; `go test ./deploy -update` rewrites it.
func TestManifestsMatchChart(t *testing.T) {
	text, _, err := Render("fleetprof", "fleetprof", manifestValues)
	if err != nil {
		t.Fatal(err)
	}
	text = "# Rendered from deploy/helm/fleetprof by `go test ./deploy -update`; do not edit.\n" +
		"# Create the token first: kubectl -n fleetprof create secret generic fleetprof-token --from-literal=token=$(openssl rand -hex 32)\n" + text
	path := filepath.Join("manifests", "fleetprof.yaml")
	if *update {
		if err := os.MkdirAll("manifests", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./deploy -update)", err)
	}
	if string(got) != text {
		t.Fatalf("%s does not match the chart; run go test ./deploy -update and commit", path)
	}
}
