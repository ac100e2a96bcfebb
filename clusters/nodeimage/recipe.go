// Package nodeimage owns the recipe of rehearse's offline kind node image and of every image a fresh
// cluster runs: Kubernetes from the k8s.io/kubernetes module, etcd, CoreDNS, pause, flannel (pod
// network, host-gw), local-path-provisioner (default StorageClass), on a Debian base made by
// debootstrap. Nothing is pulled from a registry; the images inside the node are imported into its
// containerd under the exact names kubeadm and the shipped manifests use.
package nodeimage

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/rehearse-dev/rehearse/images"
)

// Versions of everything in the node image. kubeadm v1.34 names etcd 3.6.5-0, CoreDNS v1.12.1 and
// pause 3.10.1 (cmd/kubeadm/app/constants). CoreDNS is v1.12.4 instead, the first release built
// against client-go v0.34, so that it shares Kubernetes' build; clusters on this node image tell
// kubeadm its tag (clusters.Config). flannel v0.27.4 asks for no newer dependency than Kubernetes
// and CoreDNS do but mergo, so building it with them moves nothing else.
const (
	KubernetesVersion = "v1.34.4"
	stagingVersion    = "v0.34.4"
	EtcdVersion       = "v3.6.5"
	EtcdTag           = "3.6.5-0"
	CoreDNSVersion    = "v1.12.4"
	PauseTag          = "3.10.1"
	FlannelVersion    = "v0.27.4"
	LocalPathVersion  = "v0.0.30"
	DebianSuite       = "bookworm"
)

// Image is the locally built node image that `rehearse cluster create --offline` uses.
const Image = "rehearse.local/kind-node:" + KubernetesVersion

// Names of the images inside the node.
var (
	PauseImage     = "registry.k8s.io/pause:" + PauseTag
	EtcdImage      = "registry.k8s.io/etcd:" + EtcdTag
	CoreDNSImage   = "registry.k8s.io/coredns/coredns:" + CoreDNSVersion
	FlannelImage   = "rehearse.local/flannel:" + FlannelVersion
	LocalPathImage = "rehearse.local/local-path-provisioner:" + LocalPathVersion
	HelperImage    = "rehearse.local/local-path-helper:busybox"
	SlimImage      = "rehearse.local/debian-slim:" + DebianSuite
	// DebianBaseImage is Debian's minbase, which every Debian image of the build starts from.
	DebianBaseImage = "rehearse.local/debian-minbase:" + DebianSuite
	// KubeImage holds the multi-call binary; every component image is it with another entrypoint.
	KubeImage     = "rehearse.local/kube:" + KubernetesVersion
	NodeBaseImage = "rehearse.local/kind-node-base:" + DebianSuite
)

func kubeImage(component string) string {
	return "registry.k8s.io/" + component + ":" + KubernetesVersion
}

//go:embed files
var files embed.FS

// stagingModules are the k8s.io modules k8s.io/kubernetes replaces with ./staging paths.
var stagingModules = []string{
	"api", "apiextensions-apiserver", "apimachinery", "apiserver", "cli-runtime", "client-go",
	"cloud-provider", "cluster-bootstrap", "code-generator", "component-base", "component-helpers",
	"controller-manager", "cri-api", "cri-client", "csi-translation-lib", "dynamic-resource-allocation",
	"endpointslice", "externaljwt", "kms", "kube-aggregator", "kube-controller-manager", "kube-proxy",
	"kube-scheduler", "kubectl", "kubelet", "metrics", "mount-utils", "pod-security-admission",
	"sample-apiserver", "sample-cli-plugin", "sample-controller",
}

func versionLDFlags() []string {
	minor := strings.Split(strings.TrimPrefix(KubernetesVersion, "v"), ".")[1]
	var ld []string
	for _, p := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ld = append(ld,
			"-X "+p+".gitVersion="+KubernetesVersion,
			"-X "+p+".gitMajor=1",
			"-X "+p+".gitMinor="+minor,
			"-X "+p+".gitTreeState=clean",
			"-X "+p+".buildDate=1970-01-01T00:00:00Z",
		)
	}
	return ld
}

// DebianBase is the one debootstrap of the build (Debian's minbase): the node's base, the slim base
// of the component images and the PostgreSQL image add their packages to it with apt-get, instead of
// each unpacking and configuring the base again in a debootstrap of its own.
var DebianBase = sync.OnceValue(func() *images.Step {
	return images.DebianImage("debian-minbase", DebianBaseImage, images.Debian{Suite: DebianSuite, Variant: "minbase"})
})

// Plan is the set of build steps for the node image; Node is the final one.
type Plan struct {
	Node  *images.Step
	Steps []*images.Step // every image step, dependencies first
}

// NewPlan lays out the build. The images of preload (workload images that do not change from run to
// run, such as PostgreSQL) are imported into the node image, so that a new cluster starts with them
// instead of loading them into every node.
func NewPlan(preload ...*images.Step) *Plan {
	comps := images.GoBinaries("components", ComponentsBuild())
	pause := pauseStep()

	nodeBase := images.DebianImage("node-base", NodeBaseImage, images.Debian{
		Suite: DebianSuite, From: DebianBase(),
		Packages: []string{
			"systemd", "systemd-sysv", "dbus", "containerd", "runc", "containernetworking-plugins",
			"iptables", "nftables", "iproute2", "ethtool", "util-linux", "mount", "kmod", "libseccomp2",
			"fuse-overlayfs", "e2fsprogs", "bash", "ca-certificates", "curl", "jq", "procps", "conntrack",
			"socat", "hostname", "busybox-static", "less", "iputils-ping",
		},
	})
	slim := images.DebianImage("debian-slim", SlimImage, images.Debian{
		Suite: DebianSuite, From: DebianBase(),
		Packages: []string{"iptables", "nftables", "conntrack", "kmod", "iproute2", "ca-certificates"},
	})
	busybox := busyboxStep(nodeBase)

	scratch := func(name, ref string, entry []string, fs ...images.File) *images.Step {
		changes := []string{"ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
		if len(entry) > 0 {
			changes = append(changes, "ENTRYPOINT "+jsonList(entry))
		}
		return images.ScratchImage(name, ref, changes, fs...)
	}
	bin := func(s *images.Step, name, dst string) images.File {
		return images.File{Path: dst, Mode: 0o755, Step: s, Name: name}
	}
	tmpDir := images.File{Path: "/tmp/.keep", Mode: 0o644}
	iptWrapper := embedded("files/images/iptables-wrapper", "iptables-wrapper", 0o755)
	// Every image of the multi-call binary is one image (on the slim base kube-proxy needs for
	// iptables), tagged for each component with its own entrypoint: the node's containerd holds
	// the binary once, however many components' names it has.
	var links []string
	for _, p := range MultiCallPrograms {
		links = append(links, "ln -s kube /usr/local/bin/"+p)
	}
	kube := images.DockerfileImage("image-kube", KubeImage,
		"FROM "+SlimImage+"\nCOPY iptables-wrapper /usr/sbin/iptables-wrapper\nCOPY kube /usr/local/bin/kube\n"+
			"RUN "+strings.Join(links, " && ")+" && ln -s /usr/local/bin/kube /coredns && /usr/sbin/iptables-wrapper install\n",
		[]*images.Step{slim}, iptWrapper, bin(comps, MultiCallName, MultiCallName))
	component := func(ref, entry string) *images.Step {
		name := "image-" + strings.TrimPrefix(ref[strings.LastIndex(ref, "/")+1:strings.LastIndex(ref, ":")], "kube-")
		return images.DockerfileImage(name, ref, "FROM "+KubeImage+"\nENTRYPOINT [\""+entry+"\"]\n", []*images.Step{kube})
	}
	var imgs []*images.Step
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"} {
		imgs = append(imgs, component(kubeImage(c), "/usr/local/bin/"+c))
	}
	imgs = append(imgs,
		component(EtcdImage, "/usr/local/bin/etcd"),
		component(CoreDNSImage, "/coredns"),
		scratch("image-pause", PauseImage, []string{"/pause"}, bin(pause, "pause", "/pause")),
		scratch("image-local-path", LocalPathImage, []string{"/usr/local/bin/local-path-provisioner"},
			bin(comps, "local-path-provisioner", "/usr/local/bin/local-path-provisioner"), tmpDir),
		scratch("image-local-path-helper", HelperImage, nil, busyboxFiles(busybox)...),
		images.DockerfileImage("image-flannel", FlannelImage,
			"FROM "+SlimImage+"\nCOPY iptables-wrapper /usr/sbin/iptables-wrapper\nCOPY flanneld /opt/bin/flanneld\n"+
				"COPY install-cni /opt/bin/install-cni\nRUN /usr/sbin/iptables-wrapper install\nENTRYPOINT [\"/opt/bin/flanneld\"]\n",
			[]*images.Step{slim}, iptWrapper, bin(comps, "flanneld", "flanneld"),
			embedded("files/images/flannel-install-cni", "install-cni", 0o755)),
	)
	node := nodeStep(nodeBase, comps, imgs, preload)
	all := append([]*images.Step{DebianBase(), nodeBase, slim, kube}, imgs...)
	all = append(all, node)
	return &Plan{Node: node, Steps: all}
}

// ComponentsBuild is the one Go build of every component: Kubernetes, etcd, CoreDNS, flannel and
// local-path-provisioner.
func ComponentsBuild() images.GoBuild {
	var replace []string
	for _, m := range stagingModules {
		replace = append(replace, fmt.Sprintf("k8s.io/%s => k8s.io/%s %s", m, m, stagingVersion))
	}
	// One wrapper module for Kubernetes, etcd, CoreDNS, flannel and local-path-provisioner: their
	// shared dependencies (client-go and its kin, gRPC, protobuf) compile once. The staging replaces
	// hold every k8s.io module at Kubernetes' own version; the rest of the build list is the newest
	// any of them asks for: minor and patch releases above what Kubernetes pins (gRPC 1.75 for 1.72,
	// x/net 0.43 for 0.38), which is where a Kubernetes patch release also takes them.
	require := []string{
		"k8s.io/kubernetes " + KubernetesVersion,
		"github.com/coredns/coredns " + CoreDNSVersion,
		"github.com/flannel-io/flannel " + FlannelVersion,
		"github.com/rancher/local-path-provisioner " + LocalPathVersion,
	}
	// etcd's server and its sibling modules, all of one release (kubeadm's; the client Kubernetes
	// links moves with them, from 3.6.4 to 3.6.5).
	for _, m := range []string{"server/v3", "api/v3", "client/pkg/v3", "client/v3", "pkg/v3"} {
		require = append(require, "go.etcd.io/etcd/"+m+" "+EtcdVersion)
	}
	return images.GoBuild{
		Require: require,
		Replace: replace,
		Files: map[string]string{
			"kube/main.go": strings.Replace(multiCallMain, "PROGRAMS", `"`+strings.Join(MultiCallPrograms, `", "`)+`"`, 1),
		},
		Sets: []images.GoSet{{
			Packages: []string{"./kube"},
			LDFlags:  versionLDFlags(),
		}, {
			// local-path imports github.com/Sirupsen/logrus, whose path differs only in case from the
			// github.com/sirupsen/logrus the others import: one invocation refuses to load both.
			Packages: []string{"github.com/rancher/local-path-provisioner"},
		}, {
			// flannel's udp backend has C parts, hence cgo, linked statically.
			Packages: []string{"github.com/flannel-io/flannel"},
			Rename:   map[string]string{"github.com/flannel-io/flannel": "flanneld"},
			CGO:      true,
			Tags:     []string{"osusergo", "netgo"},
			LDFlags:  []string{"-X github.com/flannel-io/flannel/pkg/version.Version=" + FlannelVersion},
		}},
	}
}

func jsonList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return "[" + strings.Join(q, ",") + "]"
}

func embedded(name, dst string, mode int64) images.File {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err) // embedded at compile time; a missing file is a programming error
	}
	return images.File{Path: dst, Mode: mode, Data: b}
}

// nodeFiles are the files placed into the node image: everything under files/node, at the same path.
func nodeFiles() []images.File {
	var out []images.File
	_ = fs.WalkDir(files, "files/node", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := files.ReadFile(p)
		b = []byte(placeholders.Replace(string(b)))
		mode := int64(0o644)
		if strings.Contains(p, "/bin/") || strings.HasSuffix(p, ".sh") {
			mode = 0o755
		}
		out = append(out, images.File{Path: strings.TrimPrefix(p, "files/node/"), Mode: mode, Data: b})
		return nil
	})
	return out
}

// pauseStep compiles Kubernetes' pause.c (shipped inside the k8s.io/kubernetes module) statically.
func pauseStep() *images.Step {
	return &images.Step{
		Name:   "pause",
		Inputs: []string{"k8s.io/kubernetes " + KubernetesVersion, "build/pause/linux/pause.c", "gcc -Os -static"},
		Build: func(ctx context.Context, b *images.Builder, s *images.Step) error {
			out, err := exec.CommandContext(ctx, "go", "mod", "download", "-json", "k8s.io/kubernetes@"+KubernetesVersion).Output()
			if err != nil {
				return fmt.Errorf("go mod download k8s.io/kubernetes: %w", err)
			}
			var mod struct{ Dir string }
			if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
				return fmt.Errorf("go mod download k8s.io/kubernetes: no Dir in %q", out)
			}
			src := filepath.Join(mod.Dir, "build", "pause", "linux", "pause.c")
			cmd := exec.CommandContext(ctx, "gcc", "-Os", "-Wall", "-static", "-DVERSION=v"+PauseTag+"-rehearse",
				"-o", filepath.Join(s.Dir, "pause"), src)
			if o, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("gcc pause.c: %w: %s (static glibc comes with libc6-dev)", err, o)
			}
			return nil
		},
	}
}

// busyboxStep copies Debian's static busybox out of the node base image for the local-path helper.
func busyboxStep(nodeBase *images.Step) *images.Step {
	return &images.Step{
		Name: "busybox",
		Deps: []*images.Step{nodeBase},
		Build: func(ctx context.Context, b *images.Builder, s *images.Step) error {
			id, err := b.Docker.Run(ctx, nil, "create", nodeBase.Ref, "/bin/true")
			if err != nil {
				return err
			}
			defer b.Docker.Run(context.Background(), nil, "rm", "-f", id) //nolint:errcheck
			_, err = b.Docker.Run(ctx, nil, "cp", id+":/bin/busybox", filepath.Join(s.Dir, "busybox"))
			return err
		},
	}
}

func busyboxFiles(bb *images.Step) []images.File {
	fs := []images.File{{Path: "/bin/busybox", Mode: 0o755, Step: bb, Name: "busybox"}, {Path: "/tmp/.keep", Mode: 0o644}}
	for _, applet := range []string{"sh", "mkdir", "rm", "rmdir", "ls", "cat", "chmod", "echo", "sleep", "env", "test", "[", "du", "sync"} {
		fs = append(fs, images.File{Path: path.Join("/bin", applet), Symlink: "busybox"})
	}
	return fs
}

// placeholders in the node's files are replaced with the image names of this build.
var placeholders = strings.NewReplacer(
	"FLANNEL_IMAGE", FlannelImage,
	"LOCAL_PATH_IMAGE", LocalPathImage,
	"HELPER_IMAGE", HelperImage,
	"PAUSE_IMAGE", PauseImage,
)
