package labels

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rule is a source of service and version names.
type Rule string

// Rules, applied in Config.Order: the first that yields a non-empty value
// wins, separately for service and version.
const (
	RulePodLabel Rule = "pod-label" // pod labels Config.ServiceLabel / VersionLabel
	RuleEnv      Rule = "env"       // process environment Config.ServiceEnv / VersionEnv
	RuleComm     Rule = "comm"      // executable name (service only; see Config.ShortLived)
)

// KernelService is the service of kernel threads (kworker/*, ksoftirqd/*, …) under
// the comm rule: one bucket, their names stay in the comm label.
const KernelService = "kernel"

// Defaults of Config.
const (
	DefaultServiceLabel = "app.kubernetes.io/name"
	DefaultVersionLabel = "app.kubernetes.io/version"
	DefaultServiceEnv   = "FLEETPROF_SERVICE"
	DefaultVersionEnv   = "FLEETPROF_VERSION"
	maxEnvironBytes     = 1 << 20
	// DefaultShortLived is the default Config.ShortLived: a few agent flushes, so a
	// command a script runs counts under the script, not as a service of its own.
	DefaultShortLived = 10 * time.Second
	// maxParentHops bounds the walk up the parents of short-lived processes.
	maxParentHops = 16
	// userHZ is the unit of /proc/PID/stat times (USER_HZ, 100 on Linux).
	userHZ = 100
	// pfKthread is the PF_KTHREAD bit of /proc/PID/stat's flags.
	pfKthread = 0x00200000
	// maxCgroups bounds the cache of parsed cgroup files (one entry per
	// distinct cgroup, i.e. per container or service, not per process).
	maxCgroups = 4096
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
	// ShortLived: under the comm rule, a process that has exited when it is
	// resolved and had started less than this long before counts under its
	// parent's service (sed run by a script is the script's), and kernel threads
	// count as KernelService. Its own name stays in Info.Comm. Default
	// DefaultShortLived; negative turns both off (every comm is a service).
	ShortLived time.Duration
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
	if c.ShortLived == 0 {
		c.ShortLived = DefaultShortLived
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
	ppid                uint32
	kthread             bool
	cgroup              Cgroup
	comm                string
	envService, envVers string
}

// Resolver labels processes. It is safe for concurrent use.
type Resolver struct {
	cfg Config

	mu    sync.Mutex
	procs map[uint32]*proc
	// cgroups caches ParseCgroup by the cgroup file's content: the
	// processes of one container share it, and its regular expressions
	// were a measurable share of the work per exec'd process.
	cgroups map[string]Cgroup
	useEnv  bool // Config.Order has RuleEnv: read environ
}

// NewResolver returns a Resolver for cfg with defaults filled in.
func NewResolver(cfg Config) (*Resolver, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid label config: %w", err)
	}
	return &Resolver{cfg: cfg, procs: map[uint32]*proc{}, cgroups: map[string]Cgroup{}, useEnv: slices.Contains(cfg.Order, RuleEnv)}, nil
}

// Resolve labels process pid. A process that is gone resolves from the cache
// (when it was seen alive) or gets only what the caller knows (empty Info:
// callers fill in comm from the sample).
func (r *Resolver) Resolve(pid uint32) Info {
	return r.resolve(pid, 0)
}

func (r *Resolver) resolve(pid uint32, hops int) Info {
	p, alive := r.proc(pid)
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
			svc = r.commService(p, alive, hops)
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

// commService is the comm rule's service of p: KernelService for a kernel thread,
// its parent's service when it is short-lived (exited, started less than
// Config.ShortLived ago, its parent alive then or cached), else its comm.
func (r *Resolver) commService(p *proc, alive bool, hops int) string {
	if r.cfg.ShortLived < 0 {
		return p.comm
	}
	if p.kthread {
		return KernelService
	}
	if alive || p.ppid <= 1 || hops >= maxParentHops {
		return p.comm
	}
	now, err := r.uptimeTicks()
	if err != nil || now < p.start || time.Duration(now-p.start)*time.Second/userHZ >= r.cfg.ShortLived {
		return p.comm
	}
	parent, _ := r.proc(p.ppid)
	if parent == nil || parent.start > p.start { // gone uncached, or a reused pid
		return p.comm
	}
	if svc := r.resolve(p.ppid, hops+1).Service; svc != "" {
		return svc
	}
	return p.comm
}

// uptimeTicks is the time since boot in /proc/PID/stat's unit.
func (r *Resolver) uptimeTicks() (uint64, error) {
	b, err := os.ReadFile(filepath.Join(r.cfg.ProcRoot, "uptime"))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, errors.New("uptime: empty")
	}
	sec, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, fmt.Errorf("uptime: %w", err)
	}
	return uint64(sec * userHZ), nil
}

// Forget drops the cache entry of an exited process.
func (r *Resolver) Forget(pid uint32) {
	r.mu.Lock()
	delete(r.procs, pid)
	r.mu.Unlock()
}

// proc returns the cached entry of pid if its start time still matches, or
// reads /proc again, and whether the process is still running. Nil when the
// process is gone and was never cached.
func (r *Resolver) proc(pid uint32) (*proc, bool) {
	dir := filepath.Join(r.cfg.ProcRoot, strconv.FormatUint(uint64(pid), 10))
	st, err := readStat(dir)
	r.mu.Lock()
	cached := r.procs[pid]
	r.mu.Unlock()
	if err != nil {
		return cached, false // gone: the cache is all there is
	}
	if cached != nil && cached.start == st.start {
		return cached, true
	}
	// comm is stat's second field (the same task name as the comm file).
	p := &proc{start: st.start, ppid: st.ppid, kthread: st.flags&pfKthread != 0, comm: st.comm}
	if b, err := os.ReadFile(filepath.Join(dir, "cgroup")); err == nil {
		p.cgroup = r.parseCgroup(b)
	}
	if r.useEnv {
		if env, err := readEnviron(filepath.Join(dir, "environ"), r.cfg.ServiceEnv, r.cfg.VersionEnv); err == nil {
			p.envService, p.envVers = env[0], env[1]
		}
	}
	r.mu.Lock()
	r.procs[pid] = p
	r.mu.Unlock()
	return p, true
}

// parseCgroup returns ParseCgroup of a cgroup file's content, cached.
func (r *Resolver) parseCgroup(b []byte) Cgroup {
	r.mu.Lock()
	cg, ok := r.cgroups[string(b)]
	r.mu.Unlock()
	if ok {
		return cg
	}
	cg, err := ParseCgroup(bytes.NewReader(b))
	if err != nil {
		return Cgroup{}
	}
	r.mu.Lock()
	if len(r.cgroups) >= maxCgroups {
		clear(r.cgroups)
	}
	r.cgroups[string(b)] = cg
	r.mu.Unlock()
	return cg
}

// stat is what the resolver reads from /proc/PID/stat: the comm (field 2),
// the start time (field 22, clock ticks after boot; it tells a reused pid
// from the process cached under it), the parent pid (field 4) and the flags
// (field 9).
type stat struct {
	comm  string
	start uint64
	ppid  uint32
	flags uint64
}

func readStat(dir string) (stat, error) {
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return stat{}, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (stat, error) {
	// comm (field 2) may contain spaces and parentheses: split after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	j := bytes.IndexByte(b, '(')
	if i < 0 || j < 0 || j > i {
		return stat{}, errors.New("stat: no '(comm)'")
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state), so field N is fields[N-3].
	if len(fields) < 20 {
		return stat{}, fmt.Errorf("stat: %d fields after comm, want at least 20", len(fields))
	}
	st := stat{comm: string(b[j+1 : i])}
	var err error
	if st.start, err = strconv.ParseUint(fields[19], 10, 64); err != nil {
		return stat{}, fmt.Errorf("stat: start time: %w", err)
	}
	ppid, err := strconv.ParseUint(fields[1], 10, 32)
	if err != nil {
		return stat{}, fmt.Errorf("stat: ppid: %w", err)
	}
	st.ppid = uint32(ppid)
	if st.flags, err = strconv.ParseUint(fields[6], 10, 64); err != nil {
		return stat{}, fmt.Errorf("stat: flags: %w", err)
	}
	return st, nil
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
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		for i, k := range keys {
			if len(kv) > len(k) && kv[len(k)] == '=' && string(kv[:len(k)]) == k {
				out[i] = string(kv[len(k)+1:])
			}
		}
	}
	return out, nil
}
