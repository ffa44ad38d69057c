package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"sigs.k8s.io/yaml"
)

// ChartDir is the chart's directory in this repository.
func ChartDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "helm", "fleetprof")
}

// Object is one rendered Kubernetes object, decoded into its k8s.io/api type.
type Object struct {
	Kind, Name string
	Source     string // template file
	Value      any    // *appsv1.DaemonSet, *corev1.Service, ...
}

// newObject maps the kinds the chart may render to their API types; any other kind is
// an error, so a typo in a template cannot slip through.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + "/" + kind {
	case "apps/v1/DaemonSet":
		return &appsv1.DaemonSet{}, nil
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, nil
	case "v1/Service":
		return &corev1.Service{}, nil
	case "v1/Secret":
		return &corev1.Secret{}, nil
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "v1/PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, nil
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "rbac.authorization.k8s.io/v1/ClusterRole":
		return &rbacv1.ClusterRole{}, nil
	case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}, nil
	case "scheduling.k8s.io/v1/PriorityClass":
		return &schedulingv1.PriorityClass{}, nil
	}
	return nil, fmt.Errorf("unexpected kind %s %s", apiVersion, kind)
}

// Render renders the chart with values (merged over values.yaml) like `helm template`
// and returns the manifest text and the strictly decoded objects, in a stable order.
func Render(release, namespace string, values map[string]any) (string, []Object, error) {
	chrt, err := loader.Load(ChartDir())
	if err != nil {
		return "", nil, fmt.Errorf("load chart: %w", err)
	}
	opts := chartutil.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true}
	vals, err := chartutil.ToRenderValues(chrt, values, opts, chartutil.DefaultCapabilities)
	if err != nil {
		return "", nil, fmt.Errorf("chart values: %w", err)
	}
	files, err := engine.Render(chrt, vals)
	if err != nil {
		return "", nil, fmt.Errorf("render chart: %w", err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var out strings.Builder
	var objs []Object
	for _, n := range names {
		if !strings.HasSuffix(n, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(files[n], "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			obj, err := decodeStrict(doc)
			if err != nil {
				return "", nil, fmt.Errorf("%s: %w", n, err)
			}
			obj.Source = strings.TrimPrefix(n, "fleetprof/")
			objs = append(objs, obj)
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", obj.Source, strings.TrimSpace(doc))
		}
	}
	return out.String(), objs, nil
}

func decodeStrict(doc string) (Object, error) {
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		return Object{}, fmt.Errorf("yaml: %w", err)
	}
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(js, &meta); err != nil {
		return Object{}, fmt.Errorf("object header: %w", err)
	}
	v, err := newObject(meta.APIVersion, meta.Kind)
	if err != nil {
		return Object{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Object{}, fmt.Errorf("%s %s: %w", meta.Kind, meta.Metadata.Name, err)
	}
	return Object{Kind: meta.Kind, Name: meta.Metadata.Name, Value: v}, nil
}

// Lint runs Helm's chart linter with values and returns its error and warning messages.
func Lint(values map[string]any) []string {
	var msgs []string
	for _, m := range lint.All(ChartDir(), values, "fleetprof", false).Messages {
		if m.Severity >= support.WarningSev {
			msgs = append(msgs, m.Error())
		}
	}
	return msgs
}
