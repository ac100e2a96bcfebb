//go:build e2e

package e2e

import (
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/clusters/nodeimage"
)

// The cluster the suite runs on is made of the multi-call binary: the node's kubelet, kubeadm and
// kubectl, and every component image, are one binary by another name. Each program must keep exactly
// its own command line: one binary holds every program's package-level flags (cAdvisor's from the
// kubelet, CoreDNS's, component-base's --version), and kubeadm, kube-proxy and CoreDNS read those
// sets whole. Read from the images the node runs (their binaries are the node's).
func TestMultiCallKeepsEachProgramsFlags(t *testing.T) {
	t.Parallel()
	help := func(program string, args ...string) string {
		t.Helper()
		out, _ := exec.Command("docker", append([]string{"run", "--rm", "--entrypoint", "/usr/local/bin/" + program,
			nodeimage.KubeImage}, args...)...).CombinedOutput()
		return string(out)
	}
	cadvisor := "--housekeeping-interval"
	for _, p := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubeadm", "kubectl", "etcd"} {
		h := help(p, "--help")
		if !strings.Contains(h, "Usage:") && !strings.Contains(h, "Usage: ") && !strings.Contains(h, "usage:") {
			t.Errorf("%s --help printed no usage:\n%.400s", p, h)
		}
		if strings.Contains(h, cadvisor) || strings.Contains(h, "--plugins") {
			t.Errorf("%s --help lists another program's flags (cAdvisor's or CoreDNS's):\n%.2000s", p, h)
		}
	}
	// kube-proxy adds the standard flag set for cAdvisor's two id files, and only those.
	if h := help("kube-proxy", "--help"); !strings.Contains(h, "--boot-id-file") || !strings.Contains(h, "--machine-id-file") {
		t.Errorf("kube-proxy lost --boot-id-file or --machine-id-file:\n%.3000s", h)
	}
	// kubeadm has no --version flag (it has a version command), and -v, --vmodule, --rootfs globally.
	kubeadm := help("kubeadm", "--help")
	global := kubeadm[strings.Index(kubeadm, "Flags:"):]
	names := regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([\w-]+)`).FindAllStringSubmatch(global, -1)
	var got []string
	for _, n := range names {
		got = append(got, n[1])
	}
	if want := []string{"help", "rootfs", "v", "vmodule"}; !slices.Equal(got, want) {
		t.Errorf("kubeadm's global flags are %v, want %v", got, want)
	}
	// CoreDNS parses the standard flag set: its own seven flags, nothing else.
	var coredns []string
	for _, m := range regexp.MustCompile(`(?m)^  -([\w.]+)`).FindAllStringSubmatch(help("coredns", "-h"), -1) {
		coredns = append(coredns, m[1])
	}
	if want := []string{"conf", "dns.port", "p", "pidfile", "plugins", "quiet", "version"}; !slices.Equal(coredns, want) {
		t.Errorf("coredns -h lists %v, want %v", coredns, want)
	}
	if v := help("kubectl", "version", "--client"); !strings.Contains(v, "Client Version: "+nodeimage.KubernetesVersion) {
		t.Errorf("kubectl version --client: %s", v)
	}
	// By its own name it says what it can be, and fails.
	out, err := exec.Command("docker", "run", "--rm", "--entrypoint", "/usr/local/bin/kube", nodeimage.KubeImage).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "run as one of kube-apiserver") {
		t.Errorf("kube by its own name: %v %s", err, out)
	}
}
