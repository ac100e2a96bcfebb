package clusters

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"

	"github.com/rehearse-dev/rehearse/workloads"
)

// Kubeconfig is a kubeconfig holding one cluster, one user and one context (name), made from cfg:
// what a host command of a rehearsal gets (see workloads.Kubeconfig).
func Kubeconfig(cfg *rest.Config, name string) ([]byte, error) {
	return workloads.Kubeconfig(cfg, name)
}

// nodeKubectl is where the node image has kubectl: a link to the multi-call binary, which answers as
// kubectl by that name (hence `docker cp -L`).
const nodeKubectl = "/usr/bin/kubectl"

// Kubectl is a directory holding the kubectl of the cluster's node image, for host commands' PATH: the
// offline build compiles kubectl into the node image, so a machine without one still has it. It is
// copied out of the control-plane node once per node image, into cacheRoot/kubectl/<image id>/.
func (c *Cluster) Kubectl(ctx context.Context, cacheRoot string) (string, error) {
	_, id, err := c.NodeImage(ctx)
	if err != nil {
		return "", err
	}
	return cachedTool(KubectlDir(cacheRoot, id), "kubectl", func(dst string) error {
		out, err := exec.CommandContext(ctx, "docker", "cp", "-L", c.Name+"-control-plane:"+nodeKubectl, dst).CombinedOutput()
		if err != nil {
			return fmt.Errorf("docker cp %s-control-plane:%s: %w: %s", c.Name, nodeKubectl, err, strings.TrimSpace(string(out)))
		}
		return nil
	})
}

// KubectlDir is where the kubectl of the node image imageID is kept under cacheRoot.
func KubectlDir(cacheRoot, imageID string) string {
	id := strings.TrimPrefix(imageID, "sha256:")
	if len(id) > 16 {
		id = id[:16]
	}
	if id == "" {
		id = "unknown"
	}
	return filepath.Join(cacheRoot, "kubectl", id)
}

// cachedTool returns dir once it holds an executable name, fetching it there (atomically: a fetch
// that fails or is interrupted leaves nothing that looks cached) when it does not yet.
func cachedTool(dir, name string, fetch func(dst string) error) (string, error) {
	if st, err := os.Stat(filepath.Join(dir, name)); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, ".fetch-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	dst := filepath.Join(tmp, name)
	if err := fetch(dst); err != nil {
		return "", err
	}
	if err := os.Chmod(dst, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(dst, filepath.Join(dir, name)); err != nil {
		return "", err
	}
	return dir, nil
}

// UserlandProxied says whether Docker's userland proxy (docker-proxy) carries any of the cluster's
// published NodePorts on this machine: a second TCP hop for every connection the load makes, which
// now and then loses a SYN (a one-second stall) or resets a connection — a failure of the harness,
// not of the system rehearsed. procRoot is /proc.
func (r PortRange) UserlandProxied(procRoot string) bool {
	dirs, err := os.ReadDir(procRoot)
	if err != nil {
		return false
	}
	for _, d := range dirs {
		if d.Name()[0] < '0' || d.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procRoot, d.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(b), "docker-proxy") {
			continue
		}
		args := strings.Split(string(b), "\x00")
		for i, a := range args {
			if a == "-host-port" && i+1 < len(args) {
				var p int
				if _, err := fmt.Sscan(args[i+1], &p); err == nil && p >= r.First && p < r.First+r.Count {
					return true
				}
			}
		}
	}
	return false
}
