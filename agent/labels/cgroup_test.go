package labels

import (
	"strings"
	"testing"
)

func TestParseCgroup(t *testing.T) {
	const (
		id  = "2f3e1b7c9a8d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f"
		uid = "0c9b8a7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
	)
	uidU := strings.ReplaceAll(uid, "-", "_")
	tests := []struct {
		name, in string
		want     Cgroup
	}{
		{"v1 kubepods burstable", "12:pids:/kubepods/burstable/pod" + uid + "/" + id + "\n11:cpuset:/kubepods/burstable/pod" + uid + "/" + id,
			Cgroup{id, uid}},
		{"v1 kubepods guaranteed", "4:memory:/kubepods/pod" + uid + "/" + id, Cgroup{id, uid}},
		{"v1 docker", "12:pids:/docker/" + id + "\n1:name=systemd:/docker/" + id, Cgroup{ContainerID: id}},
		{"v1 host process", "12:pids:/user.slice/user-1000.slice/session-2.scope\n0::/user.slice", Cgroup{}},
		{"v2 containerd systemd driver",
			"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + id + ".scope",
			Cgroup{id, uid}},
		{"v2 besteffort crio",
			"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/crio-" + id + ".scope",
			Cgroup{id, uid}},
		{"v2 guaranteed pod", "0::/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + id + ".scope", Cgroup{id, uid}},
		{"v2 crio conmon is not the container",
			"0::/kubepods.slice/kubepods-pod" + uidU + ".slice/crio-conmon-" + id + ".scope", Cgroup{PodUID: uid}},
		{"v2 docker", "0::/system.slice/docker-" + id + ".scope", Cgroup{ContainerID: id}},
		{"v2 podman", "0::/machine.slice/libpod-" + id + ".scope/container", Cgroup{ContainerID: id}},
		{"v2 cgroupfs kind node", "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + id + ".scope", Cgroup{id, uid}},
		{"v2 systemd service", "0::/system.slice/containerd.service", Cgroup{}},
		{"v2 user session", "0::/user.slice/user-0.slice/session-1.scope", Cgroup{}},
		{"root", "0::/", Cgroup{}},
		{"empty", "", Cgroup{}},
		{"garbage", "not a cgroup line", Cgroup{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCgroup(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("ParseCgroup = %+v, want %+v", got, tt.want)
			}
		})
	}
}
