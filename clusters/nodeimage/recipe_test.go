package nodeimage

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// Every image the node's manifests and containerd configuration name must be built and imported into
// the node: a node can pull nothing.
func TestEveryReferencedImageIsBuilt(t *testing.T) {
	plan := NewPlan()
	built := map[string]bool{}
	for _, s := range plan.Node.Deps {
		if s.Ref != "" {
			built[s.Ref] = true
		}
	}
	imageLine := regexp.MustCompile(`(?m)(?:image:|--helper-image,|sandbox_image =)\s*"?([^\s",]+)`)
	var referenced []string
	for _, f := range nodeFiles() {
		for _, m := range imageLine.FindAllStringSubmatch(string(f.Data), -1) {
			referenced = append(referenced, m[1])
			if !built[m[1]] {
				t.Errorf("%s names image %s, which the node image does not contain", f.Path, m[1])
			}
		}
	}
	sort.Strings(referenced)
	for _, want := range []string{FlannelImage, LocalPathImage, HelperImage, PauseImage} {
		if !slices.Contains(referenced, want) {
			t.Errorf("no node file references %s (placeholders not replaced?); found %v", want, referenced)
		}
	}
	// kubeadm's own images.
	for _, ref := range []string{kubeImage("kube-apiserver"), kubeImage("kube-controller-manager"),
		kubeImage("kube-scheduler"), kubeImage("kube-proxy"), EtcdImage, CoreDNSImage, PauseImage} {
		if !built[ref] {
			t.Errorf("kubeadm's image %s is not in the node image", ref)
		}
	}
}

func TestNodeFilesHaveNoPlaceholdersLeft(t *testing.T) {
	for _, f := range nodeFiles() {
		for _, p := range []string{"FLANNEL_IMAGE", "LOCAL_PATH_IMAGE", "HELPER_IMAGE", "PAUSE_IMAGE"} {
			if strings.Contains(string(f.Data), p) {
				t.Errorf("%s still contains %s", f.Path, p)
			}
		}
	}
}

// kind templates default-cni.yaml, and patches it, only when it holds these exact phrases.
func TestCNIManifestIsTemplatedByKind(t *testing.T) {
	for _, f := range nodeFiles() {
		if f.Path == "kind/manifests/default-cni.yaml" {
			s := string(f.Data)
			if !strings.Contains(s, "would you kindly template this file") || !strings.Contains(s, "{{ .PodSubnet }}") {
				t.Error("default-cni.yaml is not a kind template of the pod subnet")
			}
			// kind then adds CONTROL_PLANE_ENDPOINT to the DaemonSet's first container, which
			// flanneld must use: through the Service IP it raced kube-proxy.
			if !strings.Contains(s, "would you kindly patch this file") || !strings.Contains(s, `KUBERNETES_SERVICE_HOST="${CONTROL_PLANE_ENDPOINT%:*}"`) {
				t.Error("default-cni.yaml does not have kind give flanneld the API server's address")
			}
			return
		}
	}
	t.Fatal("no kind/manifests/default-cni.yaml among the node files")
}

func TestVersionLDFlags(t *testing.T) {
	ld := strings.Join(versionLDFlags(), " ")
	for _, want := range []string{
		"-X k8s.io/component-base/version.gitVersion=" + KubernetesVersion,
		"-X k8s.io/client-go/pkg/version.gitVersion=" + KubernetesVersion,
		"-X k8s.io/component-base/version.gitMinor=34",
	} {
		if !strings.Contains(ld, want) {
			t.Errorf("ldflags lack %q: %s", want, ld)
		}
	}
}

// The multi-call binary's main is valid Go and dispatches every name it is linked by, and nothing
// else; the images and the node call it only by those names.
func TestMultiCallMainAnswersToEveryProgram(t *testing.T) {
	src := ComponentsBuild().Files["kube/main.go"]
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", src, 0)
	if err != nil {
		t.Fatalf("kube/main.go does not parse: %v", err)
	}
	var cases []string
	ast.Inspect(f, func(n ast.Node) bool {
		if c, ok := n.(*ast.CaseClause); ok {
			for _, e := range c.List {
				if lit, ok := e.(*ast.BasicLit); ok {
					cases = append(cases, strings.Trim(lit.Value, `"`))
				}
			}
		}
		return true
	})
	if !slices.Equal(cases, MultiCallPrograms) {
		t.Errorf("main dispatches %v; the binary is linked as %v", cases, MultiCallPrograms)
	}
	if !strings.Contains(src, `var programs = []string{"kube-apiserver", `) {
		t.Error("the list of programs was not filled in")
	}
	plan := NewPlan()
	for _, s := range plan.Steps {
		for _, in := range s.Inputs {
			if strings.HasPrefix(in, "dockerfile=FROM "+KubeImage) && !strings.Contains(in, `ENTRYPOINT ["/usr/local/bin/`) &&
				!strings.Contains(in, `ENTRYPOINT ["/coredns"]`) {
				t.Errorf("%s: %s", s.Name, in)
			}
		}
	}
}
