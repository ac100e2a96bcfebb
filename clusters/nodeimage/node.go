package nodeimage

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/images"
)

const stage1Image = "rehearse.local/kind-node-stage1:" + KubernetesVersion

// nodeStep assembles the node image in two stages: a Dockerfile stage adds Kubernetes binaries and the
// node's files to the Debian base; then the component images are imported into the containerd of a
// container from that stage (without unpacking: the node's containerd unpacks on first use, on its /var
// volume, where overlayfs works) and the container is committed.
func nodeStep(base, kube *images.Step, comps, preload []*images.Step) *images.Step {
	ctxFiles := []images.File{
		{Path: "bin/" + MultiCallName, Mode: 0o755, Step: kube, Name: MultiCallName},
		{Path: "rootfs/kind/version", Mode: 0o644, Data: []byte(KubernetesVersion + "\n")},
		embedded("files/build/setup-node.sh", "setup-node.sh", 0o755),
	}
	for _, f := range nodeFiles() {
		f.Path = "rootfs/" + f.Path
		ctxFiles = append(ctxFiles, f)
	}
	dockerfile := strings.Join([]string{
		"FROM " + NodeBaseImage,
		"COPY bin/ /usr/bin/",
		"COPY rootfs/ /",
		"COPY setup-node.sh /setup-node.sh",
		"RUN /setup-node.sh && rm /setup-node.sh",
		"ENV container=docker",
		"STOPSIGNAL SIGRTMIN+3",
		`ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]`,
		"",
	}, "\n")
	stage1 := images.DockerfileImage("node-stage1", stage1Image, dockerfile, []*images.Step{base}, ctxFiles...)
	var refs, pre []string
	for _, c := range comps {
		refs = append(refs, c.Ref)
	}
	inputs := append([]string{"import --no-unpack, then label pinned"}, refs...)
	for _, p := range preload {
		pre = append(pre, p.Ref)
		inputs = append(inputs, "preload "+p.Ref)
	}
	deps := append([]*images.Step{stage1}, comps...)
	return &images.Step{
		Name:   "node",
		Ref:    Image,
		Inputs: inputs,
		Deps:   append(deps, preload...),
		Build: func(ctx context.Context, b *images.Builder, s *images.Step) error {
			return importAndCommit(ctx, b, s, refs, pre)
		},
	}
}

// LoadedMarker is where a node records the docker image ID of an image rehearse put into its
// containerd (at node image build time, or loaded into a cluster's nodes): an image whose local ID
// matches is not loaded again.
func LoadedMarker(ref string) string {
	return "/kind/rehearse-loaded/" + strings.NewReplacer("/", "_", ":", "_", "@", "_").Replace(ref)
}

// importAndCommit imports the cluster's component images and the preloaded workload images (both
// pinned: neither could be pulled back) into the node's containerd, marks the preloaded ones with
// their docker image IDs, and commits the node image.
func importAndCommit(ctx context.Context, b *images.Builder, s *images.Step, refs, preload []string) error {
	d := b.Docker
	name := "rehearse-nodebuild-" + s.Key[:8]
	_, _ = d.Run(ctx, nil, "rm", "-f", name)
	// The node image stops with systemd's SIGRTMIN+3, which containerd ignores: without its own stop
	// signal, `docker stop` waited out its whole timeout (30 s of every node build).
	if _, err := d.Run(ctx, nil, "run", "-d", "--name", name, "--privileged", "--stop-signal", "SIGTERM",
		"--entrypoint", "/usr/bin/containerd", stage1Image); err != nil {
		return err
	}
	defer d.Run(context.Background(), nil, "rm", "-f", name) //nolint:errcheck
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := d.Run(ctx, nil, "exec", name, "ctr", "version"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := d.Run(ctx, nil, "logs", "--tail", "30", name)
			return fmt.Errorf("containerd did not start in the build container: %s", logs)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// One `docker save` of every image: the component images are one image tagged for each
	// component, and a save of several refs writes a layer they share once (313 MB for the six
	// kube tags, where a save per tag piped 1.9 GB through containerd's import).
	all := append(append([]string{}, refs...), preload...)
	if err := pipeSave(ctx, d, name, all); err != nil {
		return err
	}
	for _, ref := range preload {
		id, err := d.Run(ctx, nil, "image", "inspect", "--format", "{{.Id}}", ref)
		if err != nil {
			return err
		}
		if _, err := d.Run(ctx, nil, "exec", name, "sh", "-c",
			fmt.Sprintf("mkdir -p /kind/rehearse-loaded && echo %s > %s", strings.TrimSpace(id), LoadedMarker(ref))); err != nil {
			return err
		}
	}
	refs = append(refs, preload...)
	listed, err := d.Run(ctx, nil, "exec", name, "ctr", "-n", "k8s.io", "images", "ls", "-q")
	if err != nil {
		return err
	}
	for _, ref := range refs {
		if !strings.Contains("\n"+listed+"\n", "\n"+ref+"\n") {
			return fmt.Errorf("image %s missing from the node's containerd after import; it has:\n%s", ref, listed)
		}
	}
	if _, err := d.Run(ctx, nil, "stop", "-t", "30", name); err != nil {
		return err
	}
	_, err = d.Run(ctx, nil, "commit",
		"--change", `ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]`,
		"--change", "LABEL "+images.KeyLabel+"="+s.Key,
		name, s.Ref)
	return err
}

// pipeSave streams `docker save refs...` into `ctr images import` inside the build container, then
// pins every image it imported.
func pipeSave(ctx context.Context, d images.Docker, container string, refs []string) error {
	// Cancelling stops `docker save` when the import fails, instead of leaving it blocked on the pipe.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	save := d.Command(ctx, append([]string{"save"}, refs...)...)
	out, err := save.StdoutPipe()
	if err != nil {
		return err
	}
	var saveErr strings.Builder
	save.Stderr = &saveErr
	if err := save.Start(); err != nil {
		return err
	}
	_, ierr := d.Run(ctx, out, "exec", "-i", container, "ctr", "-n", "k8s.io", "images", "import",
		"--no-unpack", "-")
	if ierr != nil {
		cancel()
	}
	werr := save.Wait()
	if ierr != nil {
		return fmt.Errorf("import %s into node: %w", strings.Join(refs, " "), ierr)
	}
	if werr != nil {
		return fmt.Errorf("docker save %s: %w: %s", strings.Join(refs, " "), werr, saveErr.String())
	}
	// Pinned images are never garbage-collected by the kubelet: they could not be pulled back.
	for _, ref := range refs {
		if _, err := d.Run(ctx, nil, "exec", container, "ctr", "-n", "k8s.io", "images", "label", ref, "io.cri-containerd.pinned=pinned"); err != nil {
			return err
		}
	}
	return nil
}
