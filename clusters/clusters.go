// Package clusters owns the Kubernetes clusters rehearsals run on: kind clusters created and deleted
// through kind's Go library (node image: kind's published one, or rehearse's offline build from
// clusters/nodeimage), readiness of every node and system add-on, and loading locally built image
// archives into every node without a registry; and the image IDs behind them (the node image, local
// images), which a run's replay bundle records.
package clusters

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/kind/pkg/apis/config/defaults"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
	"sigs.k8s.io/kind/pkg/log"

	"github.com/rehearse-dev/rehearse/clusters/nodeimage"
)

// DefaultName is the cluster name when none is given.
const DefaultName = "rehearse"

// NodePorts is the default NodePort range of rehearse clusters. Every port of a cluster's range is
// published on 127.0.0.1 of the host by its control-plane node, at the same number, so a NodePort
// Service answers on 127.0.0.1:<nodePort>. Ranges are kept small because each published port costs the
// engine a proxy and NAT rules; clusters that coexist need ranges that do not overlap.
var NodePorts = PortRange{First: 30000, Count: 50}

// PortRange is a contiguous range of ports.
type PortRange struct{ First, Count int }

// Last is the last port of the range.
func (r PortRange) Last() int { return r.First + r.Count - 1 }

func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last()) }

// ImageChoice says which node image to use.
type ImageChoice int

const (
	// ImageAuto uses an explicitly given image; else kind's published image when it is present
	// locally; else rehearse's offline build when it is present; else kind's published image (pulled).
	ImageAuto ImageChoice = iota
	// ImageOffline uses rehearse's offline build, and fails when it has not been built.
	ImageOffline
)

// CreateOptions configure Create.
type CreateOptions struct {
	Name    string
	Workers int
	// Image overrides the node image.
	Image  string
	Choice ImageChoice
	// Kubeconfig is the file to merge the new context (kind-<name>) into; "" means kind's default
	// ($KUBECONFIG or ~/.kube/config).
	Kubeconfig string
	// Wait bounds how long to wait for every node and add-on to be ready.
	Wait time.Duration
	// Logger receives kind's progress; nil keeps quiet.
	Logger log.Logger
	// NodePorts is the cluster's NodePort range; zero means NodePorts.
	NodePorts PortRange
	// Retain keeps the nodes of a cluster that failed to become ready, for debugging.
	Retain bool
	// Pools are workers set apart, besides Workers (see Pool).
	Pools []Pool
}

// PoolKey labels and taints the workers of a Pool: rehearse.dev/pool=<name>, NoSchedule.
const PoolKey = "rehearse.dev/pool"

// A Pool is workers set apart: labelled and tainted PoolKey=Name:NoSchedule when they join (before
// any add-on could land there), so that only pods that tolerate the taint run on them. A cluster
// with pools enables the PodNodeSelector and PodTolerationRestriction admission plugins: a
// rehearsal whose namespace carries PoolAnnotations (workload.namespace) runs all its pods there,
// and nothing else does — a node-level fault on them touches no other rehearsal on the cluster.
type Pool struct {
	Name    string
	Workers int
}

// PoolAnnotations are the namespace annotations that put every pod of the namespace on pool's
// workers: a node selector (PodNodeSelector) and a toleration of their taint
// (PodTolerationRestriction).
func PoolAnnotations(pool string) map[string]string {
	return map[string]string{
		"scheduler.alpha.kubernetes.io/node-selector":      PoolKey + "=" + pool,
		"scheduler.alpha.kubernetes.io/defaultTolerations": fmt.Sprintf(`[{"key":%q,"operator":"Equal","value":%q,"effect":"NoSchedule"}]`, PoolKey, pool),
	}
}

// Cluster is a created (or found) kind cluster.
type Cluster struct {
	Name       string
	Context    string
	Kubeconfig string
	Image      string
	NodePorts  PortRange
	provider   *cluster.Provider
}

func provider(logger log.Logger) *cluster.Provider {
	if logger == nil {
		logger = log.NoopLogger{}
	}
	return cluster.NewProvider(cluster.ProviderWithDocker(), cluster.ProviderWithLogger(logger))
}

// Context is the kubeconfig context kind gives a cluster.
func Context(name string) string { return "kind-" + name }

// ResolveImage picks the node image for opts.
func ResolveImage(ctx context.Context, opts CreateOptions) (string, error) {
	if opts.Image != "" {
		return opts.Image, nil
	}
	local := localImageID(ctx, nodeimage.Image) != ""
	if opts.Choice == ImageOffline {
		if !local {
			return "", fmt.Errorf("offline node image %s is not built: run `rehearse images build` first", nodeimage.Image)
		}
		return nodeimage.Image, nil
	}
	published := defaults.Image
	if localImageID(ctx, published) != "" {
		return published, nil
	}
	if local {
		return nodeimage.Image, nil
	}
	return published, nil
}

// cgroupV1 reports whether the docker engine's host runs cgroup v1.
func cgroupV1(ctx context.Context) (bool, error) {
	out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.CgroupVersion}}").Output()
	if err != nil {
		return false, fmt.Errorf("docker info: %w (is a docker engine running? `make docker` sets one up)", err)
	}
	return strings.TrimSpace(string(out)) == "1", nil
}

// Config builds the kind configuration: one control-plane node publishing the NodePort range on
// 127.0.0.1, and workers, on the node image image.
func Config(name string, workers int, ports PortRange, v1 bool, image string, pools ...Pool) *v1alpha4.Cluster {
	cp := v1alpha4.Node{Role: v1alpha4.ControlPlaneRole}
	for p := ports.First; p <= ports.Last(); p++ {
		cp.ExtraPortMappings = append(cp.ExtraPortMappings, v1alpha4.PortMapping{
			ContainerPort: int32(p), HostPort: int32(p), ListenAddress: "127.0.0.1", Protocol: v1alpha4.PortMappingProtocolTCP,
		})
	}
	cfg := &v1alpha4.Cluster{
		TypeMeta: v1alpha4.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"},
		Name:     name,
		Nodes:    []v1alpha4.Node{cp},
		KubeadmConfigPatches: []string{
			"kind: ClusterConfiguration\napiServer:\n  extraArgs:\n    service-node-port-range: \"" + ports.String() + "\"\n",
		},
	}
	if image == nodeimage.Image {
		// rehearse's node image holds a newer CoreDNS than the one kubeadm names (see nodeimage).
		cfg.KubeadmConfigPatches = append(cfg.KubeadmConfigPatches,
			"kind: ClusterConfiguration\ndns:\n  imageTag: "+nodeimage.CoreDNSVersion+"\n")
	}
	if v1 {
		// Kubernetes 1.34 still runs on cgroup v1 when told so explicitly (the default flips in 1.35).
		cfg.KubeadmConfigPatches = append(cfg.KubeadmConfigPatches, "kind: KubeletConfiguration\nfailCgroupV1: false\n")
	}
	// Pools' workers first: kind names workers in order (<name>-worker, -worker2, ...), so a pool's
	// names do not move with the number of other workers.
	for _, p := range pools {
		for i := 0; i < p.Workers; i++ {
			cfg.Nodes = append(cfg.Nodes, v1alpha4.Node{
				Role: v1alpha4.WorkerRole, Labels: map[string]string{PoolKey: p.Name},
				KubeadmConfigPatches: []string{fmt.Sprintf("kind: JoinConfiguration\nnodeRegistration:\n  taints:\n  - {key: %s, value: %s, effect: NoSchedule}\n", PoolKey, p.Name)},
			})
		}
	}
	if len(pools) > 0 {
		cfg.KubeadmConfigPatches = append(cfg.KubeadmConfigPatches,
			"kind: ClusterConfiguration\napiServer:\n  extraArgs:\n    enable-admission-plugins: NodeRestriction,PodNodeSelector,PodTolerationRestriction\n")
	}
	for i := 0; i < workers; i++ {
		cfg.Nodes = append(cfg.Nodes, v1alpha4.Node{Role: v1alpha4.WorkerRole})
	}
	v1alpha4.SetDefaultsCluster(cfg)
	return cfg
}

// Create creates a kind cluster and waits until every node is Ready and the system add-ons (DNS, pod
// network, storage) are available. On failure nothing of the cluster is left behind.
func Create(ctx context.Context, opts CreateOptions) (*Cluster, error) {
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if opts.Workers < 0 {
		return nil, fmt.Errorf("workers must be 0 or more, got %d", opts.Workers)
	}
	for _, p := range opts.Pools {
		if errs := validation.IsValidLabelValue(p.Name); p.Name == "" || len(errs) > 0 || p.Workers < 1 {
			return nil, fmt.Errorf("pool %q of %d workers: want a name that is a label value and 1 worker or more %v", p.Name, p.Workers, errs)
		}
	}
	if opts.Wait == 0 {
		opts.Wait = 5 * time.Minute
	}
	if opts.NodePorts == (PortRange{}) {
		opts.NodePorts = NodePorts
	}
	if opts.NodePorts.First < 1024 || opts.NodePorts.Count < 1 || opts.NodePorts.Last() > 65535 {
		return nil, fmt.Errorf("NodePort range %s is not within 1024-65535", opts.NodePorts)
	}
	image, err := ResolveImage(ctx, opts)
	if err != nil {
		return nil, err
	}
	v1, err := cgroupV1(ctx)
	if err != nil {
		return nil, err
	}
	p := provider(opts.Logger)
	existing, err := p.List()
	if err != nil {
		return nil, err
	}
	for _, n := range existing {
		if n == opts.Name {
			return nil, fmt.Errorf("cluster %q already exists (delete it with `rehearse cluster delete --name %s`)", opts.Name, opts.Name)
		}
	}
	c := &Cluster{Name: opts.Name, Context: Context(opts.Name), Kubeconfig: opts.Kubeconfig, Image: image, NodePorts: opts.NodePorts, provider: p}
	created := make(chan error, 1)
	go func() {
		created <- p.Create(opts.Name,
			cluster.CreateWithV1Alpha4Config(Config(opts.Name, opts.Workers, opts.NodePorts, v1, image, opts.Pools...)),
			cluster.CreateWithNodeImage(image),
			cluster.CreateWithKubeconfigPath(opts.Kubeconfig),
			cluster.CreateWithDisplayUsage(false),
			cluster.CreateWithDisplaySalutation(false),
		)
	}()
	select {
	case err = <-created:
	case <-ctx.Done():
		// kind's Create cannot be interrupted; wait for it, then remove what it made.
		if opts.Logger != nil {
			opts.Logger.Warn("interrupted: waiting for kind to finish creating, then deleting the cluster")
		}
		<-created
		err = ctx.Err()
	}
	if err == nil {
		err = c.WaitReady(ctx, opts.Wait, opts.Workers+1)
	}
	if err != nil && opts.Retain {
		return nil, fmt.Errorf("create cluster %q (image %s): %w (nodes retained for debugging)", opts.Name, image, err)
	}
	if err != nil {
		cleanupErr := c.Delete(context.WithoutCancel(ctx))
		return nil, errors.Join(fmt.Errorf("create cluster %q (image %s): %w", opts.Name, image, err), cleanupErr)
	}
	return c, nil
}

// NodePortsOrDefault is the cluster's NodePort range; for a cluster found rather than created here, the
// default range (what `rehearse cluster create` uses unless told otherwise).
func (c *Cluster) NodePortsOrDefault() PortRange {
	if c.NodePorts == (PortRange{}) {
		return NodePorts
	}
	return c.NodePorts
}

// Get returns a handle to an existing kind cluster.
func Get(name, kubeconfig string) (*Cluster, error) {
	p := provider(nil)
	names, err := p.List()
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if n == name {
			return &Cluster{Name: name, Context: Context(name), Kubeconfig: kubeconfig, provider: p,
				NodePorts: publishedNodePorts(name)}, nil
		}
	}
	return nil, fmt.Errorf("no kind cluster named %q", name)
}

// publishedNodePorts reads back the NodePort range a cluster's control-plane node publishes on
// 127.0.0.1 (zero when it cannot tell).
func publishedNodePorts(name string) PortRange {
	out, err := exec.Command("docker", "inspect", "--format",
		"{{range $p, $b := .HostConfig.PortBindings}}{{$p}} {{end}}", name+"-control-plane").Output()
	if err != nil {
		return PortRange{}
	}
	first, last := 0, 0
	for _, f := range strings.Fields(string(out)) {
		port, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSuffix(f, "/tcp"), "/TCP"))
		if err != nil || port == 6443 {
			continue
		}
		if first == 0 || port < first {
			first = port
		}
		last = max(last, port)
	}
	if first == 0 {
		return PortRange{}
	}
	return PortRange{First: first, Count: last - first + 1}
}

// List names the kind clusters on this docker engine.
func List() ([]string, error) { return provider(nil).List() }

// Delete removes the cluster's nodes (and their volumes) and its kubeconfig context; the shared
// "kind" docker network goes too once no container uses it.
func (c *Cluster) Delete(ctx context.Context) error {
	err := c.provider.Delete(c.Name, c.Kubeconfig)
	return errors.Join(err, removeIdleKindNetwork(ctx))
}

// Delete removes the named cluster; deleting a cluster that does not exist is not an error.
func Delete(ctx context.Context, name, kubeconfig string) error {
	c := &Cluster{Name: name, Kubeconfig: kubeconfig, provider: provider(nil)}
	return c.Delete(ctx)
}

// removeIdleKindNetwork removes the "kind" network once no container is attached to it. Docker may
// list a just-removed node's endpoint for a moment (CI: the network was left once after the e2e
// cluster's delete, nothing attached to it a moment later), so a network still in use is asked
// again for a few seconds before it is left to the clusters that use it.
func removeIdleKindNetwork(ctx context.Context) error {
	var last error
	for try := range 10 {
		if try > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
		out, err := exec.CommandContext(ctx, "docker", "network", "inspect", "kind", "--format", "{{len .Containers}}").Output()
		if err != nil {
			return nil // no such network
		}
		if n, _ := strconv.Atoi(strings.TrimSpace(string(out))); n > 0 {
			if others, err := List(); err != nil || len(others) > 0 {
				return nil // another cluster uses it
			}
			last = nil
			continue
		}
		out, err = exec.CommandContext(ctx, "docker", "network", "rm", "kind").CombinedOutput()
		if err == nil {
			return nil
		}
		last = fmt.Errorf("docker network rm kind: %w: %s", err, out)
		if strings.Contains(string(out), "active endpoints") {
			// No container is attached, yet the daemon holds an endpoint: one of a container it
			// removed (seen once in ten CI runs, after node containers were killed and started
			// again). Only a restart of dockerd lets it go.
			last = fmt.Errorf("%w (no container is attached: the docker daemon kept an endpoint of a removed container; restarting dockerd removes it)", last)
		}
	}
	return last
}

// Nodes names the cluster's node containers.
func (c *Cluster) Nodes() ([]string, error) {
	ns, err := c.provider.ListNodes(c.Name)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ns))
	for i, n := range ns {
		names[i] = n.String()
	}
	return names, nil
}

// loadedMarker is where a node records the docker image ID of each image rehearse loaded into it
// (or its node image was built with).
func loadedMarker(ref string) string { return nodeimage.LoadedMarker(ref) }

// LocalImageID is the ID of the image the local docker engine has under ref ("" when it has none):
// what loading ref into a kind cluster loads.
func LocalImageID(ctx context.Context, ref string) string { return localImageID(ctx, ref) }

// NodeImage is the image the cluster's control-plane node container was created from: the reference
// it was given and the ID of the image it runs (which stays that image's even when the tag has moved
// since).
func (c *Cluster) NodeImage(ctx context.Context) (ref, id string, err error) {
	out, err := exec.CommandContext(ctx, "docker", "inspect", "--type", "container", "--format", "{{.Config.Image}} {{.Image}}", c.Name+"-control-plane").Output()
	if err != nil {
		return "", "", fmt.Errorf("docker inspect %s-control-plane: %w", c.Name, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return "", "", fmt.Errorf("docker inspect %s-control-plane: unexpected %q", c.Name, out)
	}
	return f[0], f[1], nil
}

func localImageID(ctx context.Context, ref string) string {
	out, err := exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", ref).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func (c *Cluster) missingImages(ctx context.Context, refs []string) []string {
	ns, err := c.runningNodes(ctx)
	if err != nil || len(ns) == 0 {
		return refs
	}
	var missing []string
	for _, ref := range refs {
		want := localImageID(ctx, ref)
		for _, n := range ns {
			var out bytes.Buffer
			err := n.Command("cat", loadedMarker(ref)).SetStdout(&out).Run()
			if want == "" || err != nil || strings.TrimSpace(out.String()) != want {
				missing = append(missing, ref)
				break
			}
		}
	}
	return missing
}

// markLoaded marks, in each node of ns, that it holds refs as they are now in Docker.
func markLoaded(ctx context.Context, ns []nodes.Node, refs []string) {
	for _, ref := range refs {
		id := localImageID(ctx, ref)
		for _, n := range ns {
			_ = n.Command("sh", "-c", fmt.Sprintf("mkdir -p /kind/rehearse-loaded && echo %s > %s", id, loadedMarker(ref))).Run()
		}
	}
}

// runningNodes are the cluster's nodes whose containers run. A stopped one is a node-loss in
// progress (Repair started every node no live run holds before this run loaded anything): its
// containerd cannot take an image, and it is left out — it gets what it misses at the next load,
// once it runs again (it is not marked as holding it).
func (c *Cluster) runningNodes(ctx context.Context) ([]nodes.Node, error) {
	ns, err := c.provider.ListNodes(c.Name)
	if err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, "docker", "ps", "--filter", "label=io.x-k8s.kind.cluster="+c.Name, "--format", "{{.Names}}").Output()
	if err != nil {
		return nil, fmt.Errorf("docker ps: %w", err)
	}
	running := map[string]bool{}
	for _, name := range strings.Fields(string(out)) {
		running[name] = true
	}
	var up []nodes.Node
	for _, n := range ns {
		if running[n.String()] {
			up = append(up, n)
		}
	}
	return up, nil
}

// LoadImageArchive imports an image archive (`docker save` output) into the containerd of every
// running node (see runningNodes), with kind's own loading: no registry is involved.
func (c *Cluster) LoadImageArchive(path string) error {
	_, err := c.loadArchive(context.Background(), path)
	return err
}

// loadArchive loads path into the running nodes and says which took it. A node whose container
// stopped while it loaded (a node-loss beside this run) is left out as a stopped one is.
func (c *Cluster) loadArchive(ctx context.Context, path string) ([]nodes.Node, error) {
	ns, err := c.runningNodes(ctx)
	if err != nil {
		return nil, err
	}
	if len(ns) == 0 {
		return nil, fmt.Errorf("cluster %q has no running node", c.Name)
	}
	var loaded []nodes.Node
	for _, n := range ns {
		f, err := os.Open(path)
		if err != nil {
			return loaded, err
		}
		err = nodeutils.LoadImageArchive(n, f)
		f.Close()
		if err != nil {
			if up, uerr := c.runningNodes(ctx); uerr == nil && !slices.ContainsFunc(up, func(u nodes.Node) bool { return u.String() == n.String() }) {
				continue
			}
			return loaded, fmt.Errorf("load %s into node %s: %w", path, n.String(), err)
		}
		loaded = append(loaded, n)
	}
	return loaded, nil
}

// LoadImages saves local docker images into an archive and loads it into every running node;
// images every running node already holds (same image ID) are skipped.
func (c *Cluster) LoadImages(ctx context.Context, refs ...string) error {
	refs = c.missingImages(ctx, refs)
	if len(refs) == 0 {
		return nil
	}
	f, err := os.CreateTemp("", "rehearse-images-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	f.Close()
	args := append([]string{"save", "-o", f.Name()}, refs...)
	if out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("docker save %s: %w: %s", strings.Join(refs, " "), err, out)
	}
	loaded, err := c.loadArchive(ctx, f.Name())
	if err != nil {
		return err
	}
	markLoaded(ctx, loaded, refs)
	return nil
}

// ParsePortRange parses "FIRST-LAST".
func ParsePortRange(s string) (PortRange, error) {
	a, b, ok := strings.Cut(s, "-")
	first, err1 := strconv.Atoi(strings.TrimSpace(a))
	last, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || last < first {
		return PortRange{}, fmt.Errorf("port range %q: want FIRST-LAST, e.g. %s", s, NodePorts)
	}
	return PortRange{First: first, Count: last - first + 1}, nil
}
