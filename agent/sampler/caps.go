package sampler

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Capability is a Linux capability number (CAP_*, linux/capability.h).
type Capability uint

// The capabilities the agent cares about.
const (
	CapSysPtrace   Capability = 19
	CapSysAdmin    Capability = 21
	CapSysResource Capability = 24
	CapPerfmon     Capability = 38
	CapBPF         Capability = 39
)

var capNames = map[Capability]string{
	CapSysPtrace:   "CAP_SYS_PTRACE",
	CapSysAdmin:    "CAP_SYS_ADMIN",
	CapSysResource: "CAP_SYS_RESOURCE",
	CapPerfmon:     "CAP_PERFMON",
	CapBPF:         "CAP_BPF",
}

func (c Capability) String() string {
	if n, ok := capNames[c]; ok {
		return n
	}
	return "CAP_" + strconv.Itoa(int(c))
}

// CapSet is a capability bit set as in /proc/PID/status (bit n = capability n).
type CapSet uint64

// Has reports whether c is in the set.
func (s CapSet) Has(c Capability) bool { return c < 64 && s&(1<<c) != 0 }

// ParseCapEff returns the effective set from the text of /proc/PID/status.
func ParseCapEff(status []byte) (CapSet, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "CapEff:")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return 0, fmt.Errorf("parse CapEff %q: %w", strings.TrimSpace(v), err)
		}
		return CapSet(n), nil
	}
	return 0, errors.New("no CapEff line in status")
}

// Host is what the capability decision depends on besides the set itself.
type Host struct {
	// Kernel version (major, minor).
	KernelMajor, KernelMinor int
	// MemlockUnlimited: RLIMIT_MEMLOCK is already infinite, so it need not
	// be raised even on kernels that charge BPF memory to it.
	MemlockUnlimited bool
}

// atLeast reports whether the kernel is major.minor or newer.
func (h Host) atLeast(major, minor int) bool {
	return h.KernelMajor > major || h.KernelMajor == major && h.KernelMinor >= minor
}

// Requirement is one capability the agent wants and what for.
type Requirement struct {
	Cap Capability
	// Why names the operation that needs it.
	Why string
	// Required: without it the agent cannot sample at all. Otherwise it
	// runs degraded (Why says what is lost).
	Required bool
}

func (r Requirement) String() string {
	return fmt.Sprintf("missing capability %v (needed for %s)", r.Cap, r.Why)
}

// CheckCapabilities returns the requirements eff does not meet on host,
// required ones first.
//
// Decisions: CAP_BPF (bpf() maps and programs) and CAP_PERFMON
// (perf_event_open on every CPU, and perf_event BPF programs) are required;
// CAP_SYS_ADMIN stands in for both, and is the only option before Linux 5.8.
// CAP_SYS_RESOURCE is required only before Linux 5.11, where BPF memory is
// charged to RLIMIT_MEMLOCK instead of the memory cgroup, and only if that
// limit is not already unlimited. CAP_SYS_PTRACE is not required: without
// it /proc/PID/maps, /proc/PID/root and environ of processes of other users
// cannot be read, so their frames are "[unknown]" and their labels fall
// back to comm, but sampling itself works.
func CheckCapabilities(eff CapSet, host Host) []Requirement {
	var missing []Requirement
	admin := eff.Has(CapSysAdmin)
	if !host.atLeast(5, 8) {
		if !admin {
			missing = append(missing, Requirement{CapSysAdmin, "bpf() and perf_event_open before Linux 5.8, which has no CAP_BPF", true})
		}
	} else {
		if !eff.Has(CapBPF) && !admin {
			missing = append(missing, Requirement{CapBPF, "loading the sampling program and creating its maps", true})
		}
		if !eff.Has(CapPerfmon) && !admin {
			missing = append(missing, Requirement{CapPerfmon, "perf_event_open on every CPU", true})
		}
	}
	if !host.atLeast(5, 11) && !host.MemlockUnlimited && !eff.Has(CapSysResource) {
		missing = append(missing, Requirement{CapSysResource, "raising RLIMIT_MEMLOCK for BPF maps before Linux 5.11", true})
	}
	if !eff.Has(CapSysPtrace) {
		missing = append(missing, Requirement{CapSysPtrace, "reading maps, binaries and environment of other users' processes; their frames stay unknown", false})
	}
	return missing
}

// MissingCapabilityError names the required capabilities the process lacks.
type MissingCapabilityError struct{ Missing []Requirement }

func (e *MissingCapabilityError) Error() string {
	msgs := make([]string, len(e.Missing))
	for i, r := range e.Missing {
		msgs[i] = r.String()
	}
	return strings.Join(msgs, "; ") + "; run as root or grant it (see deploy/OPS.md)"
}

// CapabilityError returns a *MissingCapabilityError naming every required
// capability in missing, or nil if none is required.
func CapabilityError(missing []Requirement) error {
	var req []Requirement
	for _, r := range missing {
		if r.Required {
			req = append(req, r)
		}
	}
	if len(req) == 0 {
		return nil
	}
	return &MissingCapabilityError{Missing: req}
}

// CurrentHost describes the running kernel and this process's memlock limit.
func CurrentHost() (Host, error) {
	var h Host
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return h, fmt.Errorf("uname: %w", err)
	}
	rel := unix.ByteSliceToString(u.Release[:])
	if _, err := fmt.Sscanf(rel, "%d.%d", &h.KernelMajor, &h.KernelMinor); err != nil {
		return h, fmt.Errorf("parse kernel release %q: %w", rel, err)
	}
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim) == nil {
		h.MemlockUnlimited = lim.Cur == unix.RLIM_INFINITY
	}
	return h, nil
}

// CheckOwnCapabilities checks this process's effective capabilities
// (/proc/self/status) on this host.
func CheckOwnCapabilities() ([]Requirement, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, fmt.Errorf("read capabilities: %w", err)
	}
	eff, err := ParseCapEff(b)
	if err != nil {
		return nil, fmt.Errorf("read capabilities: %w", err)
	}
	h, err := CurrentHost()
	if err != nil {
		return nil, err
	}
	return CheckCapabilities(eff, h), nil
}
