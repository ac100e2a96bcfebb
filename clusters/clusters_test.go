package clusters

import (
	"strings"
	"testing"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"

	"github.com/rehearse-dev/rehearse/clusters/nodeimage"
)

func TestConfigPublishesNodePortsOnLoopback(t *testing.T) {
	ports := PortRange{First: 31000, Count: 5}
	cfg := Config("x", 2, ports, true, nodeimage.Image)
	if len(cfg.Nodes) != 3 {
		t.Fatalf("%d nodes, want 3", len(cfg.Nodes))
	}
	if cfg.Nodes[0].Role != v1alpha4.ControlPlaneRole || cfg.Nodes[1].Role != v1alpha4.WorkerRole || cfg.Nodes[2].Role != v1alpha4.WorkerRole {
		t.Errorf("roles %s %s %s", cfg.Nodes[0].Role, cfg.Nodes[1].Role, cfg.Nodes[2].Role)
	}
	m := cfg.Nodes[0].ExtraPortMappings
	if len(m) != 5 {
		t.Fatalf("%d port mappings, want 5", len(m))
	}
	for i, pm := range m {
		want := int32(31000 + i)
		if pm.ContainerPort != want || pm.HostPort != want || pm.ListenAddress != "127.0.0.1" {
			t.Errorf("mapping %d = %+v, want %d->%d on 127.0.0.1", i, pm, want, want)
		}
	}
	for _, n := range cfg.Nodes[1:] {
		if len(n.ExtraPortMappings) != 0 {
			t.Errorf("worker publishes ports: %+v", n.ExtraPortMappings)
		}
	}
	patches := strings.Join(cfg.KubeadmConfigPatches, "\n---\n")
	if !strings.Contains(patches, `service-node-port-range: "31000-31004"`) {
		t.Errorf("apiserver NodePort range not patched:\n%s", patches)
	}
	if !strings.Contains(patches, "failCgroupV1: false") {
		t.Errorf("cgroup v1 host without failCgroupV1: false:\n%s", patches)
	}
	// kubeadm would otherwise start a CoreDNS tag the node image does not hold, and no node can pull.
	if !strings.Contains(patches, "dns:\n  imageTag: "+nodeimage.CoreDNSVersion+"\n") {
		t.Errorf("rehearse's node image without kubeadm's CoreDNS tag patched:\n%s", patches)
	}
}

func TestConfigOnCgroupV2LeavesKubeletDefault(t *testing.T) {
	cfg := Config("x", 0, NodePorts, false, "kindest/node:v1.34.0")
	if len(cfg.Nodes) != 1 {
		t.Fatalf("%d nodes, want 1", len(cfg.Nodes))
	}
	for _, p := range cfg.KubeadmConfigPatches {
		if strings.Contains(p, "failCgroupV1") {
			t.Errorf("cgroup v2 host gets a cgroup v1 patch: %s", p)
		}
		if strings.Contains(p, "imageTag") {
			t.Errorf("a published node image gets rehearse's CoreDNS tag: %s", p)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	got, err := ParsePortRange("30000-30049")
	if err != nil || got != (PortRange{First: 30000, Count: 50}) || got.String() != "30000-30049" {
		t.Errorf("ParsePortRange = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "30000", "30049-30000", "a-b", "30000-"} {
		if _, err := ParsePortRange(bad); err == nil {
			t.Errorf("ParsePortRange(%q) accepted", bad)
		}
	}
}

// A pool's workers come first (stable names), labelled and tainted as they join; a cluster with a
// pool enables the admission plugins that read a namespace's node selector and tolerations, and one
// without keeps kubeadm's default.
func TestConfigWithAPool(t *testing.T) {
	cfg := Config("x", 2, NodePorts, false, nodeimage.Image, Pool{Name: "faults", Workers: 2})
	if len(cfg.Nodes) != 5 {
		t.Fatalf("%d nodes, want 1 + 2 + 2", len(cfg.Nodes))
	}
	for i, n := range cfg.Nodes[1:] {
		pooled := i < 2
		if got := n.Labels[PoolKey] == "faults"; got != pooled {
			t.Errorf("worker %d: labels %v, want in the pool %v", i+1, n.Labels, pooled)
		}
		taint := strings.Join(n.KubeadmConfigPatches, "\n")
		if got := strings.Contains(taint, "taints:\n  - {key: rehearse.dev/pool, value: faults, effect: NoSchedule}"); got != pooled {
			t.Errorf("worker %d: patches %q, want tainted %v", i+1, taint, pooled)
		}
	}
	if !strings.Contains(strings.Join(cfg.KubeadmConfigPatches, "\n"), "enable-admission-plugins: NodeRestriction,PodNodeSelector,PodTolerationRestriction") {
		t.Errorf("admission plugins not enabled: %v", cfg.KubeadmConfigPatches)
	}
	if strings.Contains(strings.Join(Config("x", 2, NodePorts, false, nodeimage.Image).KubeadmConfigPatches, "\n"), "enable-admission-plugins") {
		t.Error("a cluster without pools changes the admission plugins")
	}
	a := PoolAnnotations("faults")
	if a["scheduler.alpha.kubernetes.io/node-selector"] != "rehearse.dev/pool=faults" ||
		a["scheduler.alpha.kubernetes.io/defaultTolerations"] != `[{"key":"rehearse.dev/pool","operator":"Equal","value":"faults","effect":"NoSchedule"}]` {
		t.Errorf("annotations %v", a)
	}
}
