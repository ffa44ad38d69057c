package labels

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Rule is a source of service and version names.
type Rule string

// Rules, applied in Config.Order: the first that yields a non-empty value
// wins, separately for service and version.
const (
	RulePodLabel Rule = "pod-label" // pod labels Config.ServiceLabel / VersionLabel
	RuleEnv      Rule = "env"       // process environment Config.ServiceEnv / VersionEnv
	RuleComm     Rule = "comm"      // executable name (service only)
)

// Defaults of Config.
const (
	DefaultServiceLabel = "app.kubernetes.io/name"
	DefaultVersionLabel = "app.kubernetes.io/version"
	DefaultServiceEnv   = "FLEETPROF_SERVICE"
	DefaultVersionEnv   = "FLEETPROF_VERSION"
	maxEnvironBytes     = 1 << 20
)

// DefaultOrder is pod labels, then environment, then executable name.
var DefaultOrder = []Rule{RulePodLabel, RuleEnv, RuleComm}

// Config configures a Resolver. Zero fields mean the defaults.
type Config struct {
	ProcRoot                   string // default "/proc"
	Order                      []Rule
	ServiceLabel, VersionLabel string
	ServiceEnv, VersionEnv     string
	// Kube, when set, adds namespace, pod and container names and pod labels.
	Kube *Kube
}

func (c Config) withDefaults() Config {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&c.ProcRoot, "/proc")
	def(&c.ServiceLabel, DefaultServiceLabel)
	def(&c.VersionLabel, DefaultVersionLabel)
	def(&c.ServiceEnv, DefaultServiceEnv)
	def(&c.VersionEnv, DefaultVersionEnv)
	if len(c.Order) == 0 {
		c.Order = DefaultOrder
	}
	return c
}

// Validate reports the first invalid field (after defaults).
func (c Config) Validate() error {
	seen := map[Rule]bool{}
	for _, r := range c.Order {
		switch r {
		case RulePodLabel, RuleEnv, RuleComm:
		default:
			return fmt.Errorf("unknown label rule %q (want %s, %s or %s)", r, RulePodLabel, RuleEnv, RuleComm)
		}
		if seen[r] {
			return fmt.Errorf("label rule %q listed twice", r)
		}
		seen[r] = true
	}
	return nil
}

// ParseOrder parses a comma-separated rule list ("pod-label,env,comm").
func ParseOrder(s string) ([]Rule, error) {
	var out []Rule
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, Rule(f))
		}
	}
	c := Config{Order: out}
	return out, c.Validate()
}

// Info labels one process.
type Info struct {
	Service, Version string
	// Namespace, Pod and Container (the container's name) are set when the
	// process runs in a pod listed by Kube.
	Namespace, Pod, Container string
	ContainerID, PodUID       string
	Comm                      string // /proc/PID/comm of the process
}

// proc is what was read from /proc for one process.
type proc struct {
	start               uint64
	cgroup              Cgroup
	comm                string
	envService, envVers string
}

// Resolver labels processes. It is safe for concurrent use.
type Resolver struct {
	cfg Config

	mu    sync.Mutex
	procs map[uint32]*proc
}

// NewResolver returns a Resolver for cfg with defaults filled in.
func NewResolver(cfg Config) (*Resolver, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid label config: %w", err)
	}
	return &Resolver{cfg: cfg, procs: map[uint32]*proc{}}, nil
}

// Resolve labels process pid. A process that is gone resolves from the cache
// (when it was seen alive) or gets only what the caller knows (empty Info:
// callers fill in comm from the sample).
func (r *Resolver) Resolve(pid uint32) Info {
	p := r.proc(pid)
	if p == nil {
		return Info{}
	}
	info := Info{ContainerID: p.cgroup.ContainerID, PodUID: p.cgroup.PodUID, Comm: p.comm}
	var podLabels map[string]string
	if k := r.cfg.Kube; k != nil {
		var pod *Pod
		if info.ContainerID != "" {
			if c, ok := k.Container(info.ContainerID); ok {
				pod, info.Container = c.Pod, c.Name
			}
		}
		if pod == nil && info.PodUID != "" {
			pod, _ = k.PodByUID(info.PodUID)
		}
		if pod != nil {
			info.Namespace, info.Pod, podLabels = pod.Namespace, pod.Name, pod.Labels
		}
	}
	if info.Container == "" {
		info.Container = info.ContainerID
	}
	for _, rule := range r.cfg.Order {
		var svc, ver string
		switch rule {
		case RulePodLabel:
			svc, ver = podLabels[r.cfg.ServiceLabel], podLabels[r.cfg.VersionLabel]
		case RuleEnv:
			svc, ver = p.envService, p.envVers
		case RuleComm:
			svc = p.comm
		}
		if info.Service == "" {
			info.Service = svc
		}
		if info.Version == "" {
			info.Version = ver
		}
	}
	return info
}

// Forget drops the cache entry of an exited process.
func (r *Resolver) Forget(pid uint32) {
	r.mu.Lock()
	delete(r.procs, pid)
	r.mu.Unlock()
}

// proc returns the cached entry of pid if its start time still matches, or
// reads /proc again. Nil when the process is gone and was never cached.
func (r *Resolver) proc(pid uint32) *proc {
	dir := filepath.Join(r.cfg.ProcRoot, strconv.FormatUint(uint64(pid), 10))
	start, err := readStart(dir)
	r.mu.Lock()
	cached := r.procs[pid]
	r.mu.Unlock()
	if err != nil {
		return cached // gone: the cache is all there is
	}
	if cached != nil && cached.start == start {
		return cached
	}
	p := &proc{start: start}
	if b, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
		p.comm = strings.TrimSpace(string(b))
	}
	if f, err := os.Open(filepath.Join(dir, "cgroup")); err == nil {
		p.cgroup, _ = ParseCgroup(f)
		f.Close()
	}
	if env, err := readEnviron(filepath.Join(dir, "environ"), r.cfg.ServiceEnv, r.cfg.VersionEnv); err == nil {
		p.envService, p.envVers = env[0], env[1]
	}
	r.mu.Lock()
	r.procs[pid] = p
	r.mu.Unlock()
	return p
}

// readStart returns field 22 of /proc/PID/stat (start time in clock ticks),
// which tells a reused pid from the process cached under it.
func readStart(dir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return 0, err
	}
	return parseStart(b)
}

func parseStart(b []byte) (uint64, error) {
	// comm (field 2) may contain spaces and parentheses: split after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("stat: no ')' after comm")
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 {
		return 0, fmt.Errorf("stat: %d fields after comm, want at least 20", len(fields))
	}
	v, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat: start time: %w", err)
	}
	return v, nil
}

// readEnviron returns the values of keys in a NUL-separated environ file.
func readEnviron(path string, keys ...string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxEnvironBytes))
	if err != nil {
		return nil, err
	}
	out := make([]string, len(keys))
	for _, kv := range bytes.Split(b, []byte{0}) {
		for i, k := range keys {
			if len(kv) > len(k) && kv[len(k)] == '=' && string(kv[:len(k)]) == k {
				out[i] = string(kv[len(k)+1:])
			}
		}
	}
	return out, nil
}
