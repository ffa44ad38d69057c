package labels

import (
	"bufio"
	"io"
	"regexp"
	"strings"
)

// Cgroup is what a process's cgroup path says about its container.
type Cgroup struct {
	// ContainerID is the runtime's 64-hex container id, "" outside a container.
	ContainerID string
	// PodUID is the Kubernetes pod UID (with dashes), "" outside Kubernetes.
	PodUID string
}

var (
	// A path component naming a container: bare (cgroup v1 cgroupfs driver)
	// or as a systemd scope of containerd, Docker, CRI-O or Podman. Conmon
	// scopes (crio-conmon-<id>) are the runtime monitor, not the container.
	containerRe = regexp.MustCompile(`^(?:(?:cri-containerd|docker|crio|libpod)-)?([0-9a-f]{64})(?:\.scope)?$`)
	// pod<uid> (cgroupfs driver) or ...-pod<uid_with_underscores>.slice (systemd driver).
	podRe = regexp.MustCompile(`pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$`)
)

// ParseCgroup reads /proc/PID/cgroup content (v1 "ID:controllers:path" lines
// or the v2 "0::path" line) and returns the first container found.
func ParseCgroup(r io.Reader) (Cgroup, error) {
	sc := bufio.NewScanner(r)
	var best Cgroup
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		cg := parsePath(parts[2])
		if cg.ContainerID != "" {
			return cg, nil
		}
		if best.PodUID == "" {
			best = cg
		}
	}
	if err := sc.Err(); err != nil {
		return Cgroup{}, err
	}
	return best, nil
}

func parsePath(path string) Cgroup {
	var cg Cgroup
	for _, comp := range strings.Split(path, "/") {
		if m := podRe.FindStringSubmatch(comp); m != nil {
			cg.PodUID = strings.ReplaceAll(m[1], "_", "-")
		}
		if m := containerRe.FindStringSubmatch(comp); m != nil {
			cg.ContainerID = m[1]
		}
	}
	return cg
}
