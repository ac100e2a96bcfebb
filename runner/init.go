package runner

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/rehearse-dev/rehearse/workloads"
)

// Init writes a starting scenario for one's own system, found at source: a chart (a directory with
// Chart.yaml, or a .tgz), a kustomization directory, or manifests (a file or a directory). The
// scenario deploys it as it is shipped, loads the Service in front of its first Deployment, rolls
// that Deployment once and checks that no request failed; comments say what to fill in. As written it
// validates, and rehearses the system as it is (its rolling step changes nothing but an annotation's
// worth of env, so that it passes until the real release is put in). name is the scenario's name;
// out is where the scenario will be written (paths in it are relative to its directory).
func Init(source, name, out string) ([]byte, error) {
	abs, err := filepath.Abs(source)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	outDir, err := filepath.Abs(filepath.Dir(out))
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(outDir, abs)
	if err != nil {
		rel = abs
	}
	rel = filepath.ToSlash(rel)
	var (
		objs     []workloads.Manifest
		workload string
		how      string
	)
	switch {
	case isChart(abs, st.IsDir()):
		ch, err := workloads.LoadChart(abs)
		if err != nil {
			return nil, err
		}
		vals, err := workloads.HelmValues{}.Merge()
		if err != nil {
			return nil, err
		}
		if objs, err = workloads.RenderChart(ch, name, "rehearse-"+name, vals); err != nil {
			return nil, err
		}
		workload = fmt.Sprintf("  helm: {chart: %s, release: %s}", rel, name)
		how = "the chart " + source
	case st.IsDir() && workloads.IsKustomization(abs):
		if objs, err = workloads.Kustomize(abs); err != nil {
			return nil, err
		}
		workload = "  kustomize: " + rel
		how = "the kustomization " + source
	default:
		if objs, err = workloads.ReadManifests([]string{abs}); err != nil {
			return nil, err
		}
		workload = "  manifests: [" + rel + "]"
		how = "the manifests " + source
	}
	dep, svc, port := frontDoor(objs)
	if dep == nil {
		return nil, fmt.Errorf("%s: no Deployment in %s to rehearse a rollout of", source, how)
	}
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# A starting rehearsal of %s, written by rehearse init. It validates and runs as it is:", how)
	p("# the system deployed as shipped, steady load through its Service, one rollout of %s.", dep.GetName())
	p("# What to fill in is marked FILL IN. Validate with: rehearse validate FILE")
	p("apiVersion: rehearse/v1alpha1")
	p("kind: Scenario")
	p("metadata: {name: %s}", name)
	p("cluster: {provider: kind, workers: 2}")
	p("workload:")
	p("%s", workload)
	if local := localImages(objs); len(local) > 0 {
		p("  # images this machine built, loaded into the kind nodes (nothing can be pulled offline)")
		p("  localImages: [%s]", strings.Join(local, ", "))
	} else {
		p("  # FILL IN images this machine built (nothing can be pulled offline): localImages: [your/app:tag]")
	}
	p("load:")
	p("  rate: 20/s")
	switch {
	case svc == nil:
		p("  # FILL IN: no NodePort Service in front of %s was found: name one (load.service) or give baseURL", dep.GetName())
		p("  baseURL: http://127.0.0.1:30080")
	default:
		if port != "NodePort" {
			p("  # FILL IN: Service %s is %s; the load reaches it on 127.0.0.1 only as a NodePort Service", svc.GetName(), port)
		}
		p("  service: %s", svc.GetName())
	}
	p("  tail: 5s")
	p("  # FILL IN where your app says its version (a header, a JSON field or a pattern), for gates and")
	p("  # served-version: version: {header: X-App-Version} | {json: version} | {body: 'v(\\d+)'}")
	p("  targets:")
	p("    # FILL IN the requests your users make; writes with ledger: true let acked-writes-durable check them")
	p("    - {name: home, method: GET, path: /}")
	p("steps:")
	p("  - {name: warmup, wait: 5s}")
	p("  - name: next-release")
	p("    # FILL IN the release you ship: image: your/app:next (or env, args, patch, manifest%s),", map[bool]string{true: ", helm: {set: ...}", false: ""}[strings.HasPrefix(workload, "  helm:")])
	p("    # and version: what it answers with. As written it only sets an env var, so it passes.")
	p("    migrate: {strategy: rolling, target: deployment/%s, env: {REHEARSE_INIT: \"1\"}}", dep.GetName())
	p("verify:")
	p("  zero-failed-requests: {max: 0}")
	p("  load-achieved: {}")
	p("  # FILL IN as they apply: served-version: {} (with a version), acked-writes-durable: {readPath: ...},")
	p("  # replica-checksums (with workload.checksum), graceful-termination: {}")
	return b.Bytes(), nil
}

// localImages are the images of the objects' pod templates that can only come from this machine:
// never pulled (imagePullPolicy: Never), or named rehearse.local/.
func localImages(objs []workloads.Manifest) []string {
	var out []string
	for _, m := range objs {
		cs, _, _ := unstructured.NestedSlice(m.Object.Object, "spec", "template", "spec", "containers")
		for _, c := range cs {
			c, _ := c.(map[string]any)
			img, _ := c["image"].(string)
			never := c["imagePullPolicy"] == "Never"
			if img != "" && (never || strings.HasPrefix(img, "rehearse.local/")) && !slices.Contains(out, img) {
				out = append(out, img)
			}
		}
	}
	return out
}

func isChart(path string, dir bool) bool {
	if !dir {
		return strings.HasSuffix(path, ".tgz") || strings.HasSuffix(path, ".tar.gz")
	}
	_, err := os.Stat(filepath.Join(path, "Chart.yaml"))
	return err == nil
}

// frontDoor is the first Deployment, the Service that selects its pods (a NodePort one first), and
// that Service's type.
func frontDoor(objs []workloads.Manifest) (dep, svc *unstructured.Unstructured, typ string) {
	for _, m := range objs {
		if m.Object.GetKind() == "Deployment" {
			dep = m.Object
			break
		}
	}
	if dep == nil {
		return nil, nil, ""
	}
	labels, _, _ := unstructured.NestedStringMap(dep.Object, "spec", "template", "metadata", "labels")
	for _, m := range objs {
		if m.Object.GetKind() != "Service" {
			continue
		}
		sel, _, _ := unstructured.NestedStringMap(m.Object.Object, "spec", "selector")
		if len(sel) == 0 {
			continue
		}
		match := true
		for k, v := range sel {
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		t, _, _ := unstructured.NestedString(m.Object.Object, "spec", "type")
		if t == "" {
			t = "ClusterIP"
		}
		if svc == nil || (typ != "NodePort" && t == "NodePort") {
			svc, typ = m.Object, t
		}
	}
	return dep, svc, typ
}
