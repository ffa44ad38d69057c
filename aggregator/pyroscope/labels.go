package pyroscope

import (
	"fmt"
	"strings"

	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// Pyroscope label names with a meaning of their own.
const (
	labelServiceName = "service_name"
	labelName        = "__name__"
	// cpuProfileName is the __name__ of the one profile fleetprof stores.
	cpuProfileName = "process_cpu"
)

// legacyKinds are the ".kind" suffixes older agents append to the application
// name; only cpu (and itimer, a CPU timer) is stored.
var legacyKinds = []string{"cpu", "itimer", "alloc_objects", "alloc_space", "inuse_objects", "inuse_space", "goroutines", "mutex_count", "mutex_duration", "block_count", "block_duration"}

// ParseAppName reads "app{k=v,k2=v2}" into labels, and returns the legacy
// ".kind" suffix if the name had one.
func ParseAppName(name string) (samplebatch.Labels, string, error) {
	app, tags := name, ""
	if i := strings.IndexByte(name, '{'); i >= 0 {
		if !strings.HasSuffix(name, "}") {
			return samplebatch.Labels{}, "", fmt.Errorf("%q: tags must end with }", name)
		}
		app, tags = name[:i], name[i+1:len(name)-1]
	}
	kind := ""
	for _, k := range legacyKinds {
		if base, ok := strings.CutSuffix(app, "."+k); ok {
			app, kind = base, k
			break
		}
	}
	var pairs [][2]string
	if strings.TrimSpace(tags) != "" {
		for _, kv := range strings.Split(tags, ",") {
			k, v, ok := strings.Cut(kv, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				return samplebatch.Labels{}, "", fmt.Errorf("tag %q: want key=value", kv)
			}
			pairs = append(pairs, [2]string{k, strings.TrimSpace(v)})
		}
	}
	ls, err := toLabels(app, pairs)
	return ls, kind, err
}

// toLabels maps a service name and Pyroscope labels onto fleetprof's labels.
func toLabels(service string, pairs [][2]string) (samplebatch.Labels, error) {
	ls := samplebatch.Labels{Service: service}
	for _, kv := range pairs {
		k, v := kv[0], kv[1]
		switch {
		case strings.HasPrefix(k, "__"):
			// __session_id__, __name__, __delta__ ...: Pyroscope's own, not the profile's.
		case k == labelServiceName, k == "service":
			ls.Service = v
		case k == "version", k == "service_version":
			ls.Version = v
		case k == "hostname":
			ls.Host = v
		default:
			if err := ls.Set(k, v); err != nil {
				return ls, err
			}
		}
	}
	if ls.Service == "" {
		return ls, fmt.Errorf("no application name (service_name)")
	}
	return ls, nil
}
