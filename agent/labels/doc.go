// Package labels says where a process's samples come from: its container
// (from /proc/PID/cgroup), its Kubernetes namespace, pod and container (from
// the API server, pods on this node only), and the service and version it
// belongs to, chosen by configurable rules (pod labels, the process
// environment, the executable name).
//
// Under the executable-name rule, kernel threads (kworker/*, ksoftirqd/*, …) are
// one service, "kernel", and a short-lived process — one that has exited when its
// samples are labelled and had started less than Config.ShortLived (10 s) before —
// counts under its parent's service, through short-lived parents: the sed a
// script runs is the script's, a cron job's commands are cron's. A process keeps
// its own name in the comm label either way.
//
// Everything read from /proc is cached per pid and start time, so a reused
// pid is read again and a process that already exited still resolves from the
// cache. Kubernetes metadata is looked up on every call (a map lookup) because
// a new pod may be listed only after its first samples.
package labels
