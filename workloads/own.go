package workloads

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/e2e-framework/klient/wait"
	"sigs.k8s.io/yaml"

	"github.com/rehearse-dev/rehearse/scenarios"
)

// Manifest is one object read from the user's manifests, with where it came from.
type Manifest struct {
	Object *unstructured.Unstructured
	Source string // file:document, for error messages
}

// ReadManifests reads files and directories of YAML (or JSON) in order: a directory contributes its
// own *.yaml, *.yml and *.json files (not its subdirectories', as kubectl apply -f DIR), in lexical
// order, so 00-namespace.yaml comes before 10-app.yaml. Every document must name apiVersion, kind and metadata.name; errors name file:line of
// the document.
func ReadManifests(paths []string) ([]Manifest, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		var inDir []string
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if !e.IsDir() && scenarios.ManifestFile(e.Name()) {
				inDir = append(inDir, filepath.Join(p, e.Name()))
			}
		}
		if len(inDir) == 0 {
			return nil, fmt.Errorf("%s: no *.yaml, *.yml or *.json file in it", p)
		}
		sort.Strings(inDir)
		files = append(files, inDir...)
	}
	var out []Manifest
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		ms, err := parseManifests(f, b)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("manifests %s: no object in them", strings.Join(paths, ", "))
	}
	return out, nil
}

// parseManifests reads the objects of a YAML stream; name (a file, a kustomization) is where errors
// say they are, with the line of the document.
func parseManifests(name string, b []byte) ([]Manifest, error) {
	var out []Manifest
	for _, d := range splitDocuments(b) {
		src := fmt.Sprintf("%s:%d", name, d.line)
		var raw map[string]any
		if err := yaml.Unmarshal(d.text, &raw); err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		if len(raw) == 0 {
			continue // an empty document (or only comments) between ---
		}
		u := &unstructured.Unstructured{Object: raw}
		switch {
		case u.GetAPIVersion() == "":
			return nil, fmt.Errorf("%s: apiVersion is missing", src)
		case u.GetKind() == "":
			return nil, fmt.Errorf("%s: kind is missing", src)
		case u.GetName() == "":
			return nil, fmt.Errorf("%s: %s: metadata.name is missing", src, u.GetKind())
		case strings.HasSuffix(u.GetKind(), "List"):
			return nil, fmt.Errorf("%s: %s: list objects are not applied; write one object per document", src, u.GetKind())
		}
		out = append(out, Manifest{Object: u, Source: src})
	}
	return out, nil
}

type document struct {
	line int // where the document starts in its file
	text []byte
}

// splitDocuments cuts a YAML stream at its "---" lines, keeping each document's first line number so
// errors can name it.
func splitDocuments(b []byte) []document {
	var docs []document
	cur := document{line: 1}
	for i, l := range bytes.SplitAfter(b, []byte("\n")) {
		if t := bytes.TrimRight(l, " \t\r\n"); bytes.Equal(t, []byte("---")) || bytes.HasPrefix(t, []byte("--- ")) {
			docs = append(docs, cur)
			cur = document{line: i + 2}
			continue
		}
		cur.text = append(cur.text, l...)
	}
	return append(docs, cur)
}

// Own is a workload of the user's own manifests, applied to a cluster.
type Own struct {
	// Namespace receives every namespaced object that names none; it is created first and deleted
	// last.
	Namespace string
	applied   []appliedObject
	dyn       dynamic.Interface
	mapper    meta.RESTMapper
	ops       *Ops
}

type appliedObject struct {
	res  dynamic.ResourceInterface
	gvr  schema.GroupVersionResource
	obj  *unstructured.Unstructured
	from string
}

// ApplyManifests creates namespace (with meta's labels and annotations) and applies the manifests in
// order with server-side apply (field manager rehearse). The returned Own is usable for Delete even
// when an object failed to apply.
func ApplyManifests(ctx context.Context, cfg *rest.Config, namespace string, meta *scenarios.NamespaceMeta, manifests []Manifest) (*Own, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ops, err := NewOps(cfg)
	if err != nil {
		return nil, err
	}
	o := &Own{Namespace: namespace, dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), ops: ops}
	if err := ops.ensureNamespace(ctx, namespace, meta); err != nil {
		return o, err
	}
	return o, o.Apply(ctx, manifests)
}

// NewOwn is a workload of one's own in namespace (created when missing) with nothing in it yet:
// objects come with Apply, or with Adopt (objects something else made, such as a Helm release).
func NewOwn(ctx context.Context, cfg *rest.Config, namespace string) (*Own, error) {
	o, err := ApplyManifests(ctx, cfg, namespace, nil, nil)
	return o, err
}

// Adopt makes objects already in the cluster (a Helm release's) part of the workload: waited for
// and deleted with the rest. An object adopted twice is counted once.
func (o *Own) Adopt(ctx context.Context, manifests []Manifest) error {
	for _, m := range manifests {
		gvk := m.Object.GroupVersionKind()
		mapping, err := o.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			o.mapper.(meta.ResettableRESTMapper).Reset()
			mapping, err = o.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		}
		if err != nil {
			return fmt.Errorf("%s: %s %s: %w", m.Source, gvk.Kind, m.Object.GetName(), err)
		}
		var res dynamic.ResourceInterface = o.dyn.Resource(mapping.Resource)
		ns := m.Object.GetNamespace()
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			if ns == "" {
				ns = o.Namespace
			}
			res = o.dyn.Resource(mapping.Resource).Namespace(ns)
		}
		if slices.ContainsFunc(o.applied, func(a appliedObject) bool {
			return a.gvr == mapping.Resource && a.obj.GetName() == m.Object.GetName() && a.obj.GetNamespace() == ns
		}) {
			continue
		}
		live, err := res.Get(ctx, m.Object.GetName(), metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("%s: %s %s: %w", m.Source, gvk.Kind, m.Object.GetName(), err)
		}
		o.applied = append(o.applied, appliedObject{res: res, gvr: mapping.Resource, obj: live, from: m.Source})
	}
	return nil
}

// Apply applies more manifests (a new version of an object, for a rolling change) with server-side
// apply; they are deleted with the rest.
func (o *Own) Apply(ctx context.Context, manifests []Manifest) error {
	for _, m := range manifests {
		obj := m.Object.DeepCopy()
		gvk := obj.GroupVersionKind()
		mapping, err := o.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			// A kind defined by a CRD applied just before: discovery must be read again.
			o.mapper.(meta.ResettableRESTMapper).Reset()
			mapping, err = o.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		}
		if err != nil {
			return fmt.Errorf("%s: %s %s: %w", m.Source, gvk.Kind, obj.GetName(), err)
		}
		var res dynamic.ResourceInterface = o.dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			if obj.GetNamespace() == "" {
				obj.SetNamespace(o.Namespace)
			}
			res = o.dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
		}
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels["app.kubernetes.io/part-of"] = "rehearse"
		obj.SetLabels(labels)
		applied, err := res.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "rehearse", Force: true})
		if err != nil {
			return fmt.Errorf("%s: apply %s %s: %w", m.Source, gvk.Kind, obj.GetName(), err)
		}
		o.applied = append(o.applied, appliedObject{res: res, gvr: mapping.Resource, obj: applied, from: m.Source})
	}
	return nil
}

// Namespaces are the namespaces the workload's objects live in (its own first).
func (o *Own) Namespaces() []string {
	out := []string{o.Namespace}
	for _, a := range o.applied {
		if ns := a.obj.GetNamespace(); ns != "" && !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	return out
}

// NamespaceOf is the namespace of the applied object kind/name (e.g. deployment/web), or the
// workload's own namespace when no manifest names it.
func (o *Own) NamespaceOf(target string) string {
	kind, name, _ := strings.Cut(target, "/")
	for _, a := range o.applied {
		if strings.EqualFold(a.obj.GetKind(), kind) && a.obj.GetName() == name && a.obj.GetNamespace() != "" {
			return a.obj.GetNamespace()
		}
	}
	return o.Namespace
}

// WaitReady waits until every applied Deployment, StatefulSet and DaemonSet has rolled out: all of
// its replicas updated and ready. It gives up early on what cannot roll out by itself (pods refused
// at admission, an image that is never pulled), saying why.
func (o *Own) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, a := range o.applied {
		kind := a.obj.GetKind()
		if a.gvr.Group != "apps" || (kind != "Deployment" && kind != "StatefulSet" && kind != "DaemonSet") {
			continue
		}
		target := strings.ToLower(kind) + "/" + a.obj.GetName()
		if err := o.ops.WaitRollout(ctx, a.obj.GetNamespace(), target, time.Until(deadline)); err != nil {
			return fmt.Errorf("%s: %w", a.from, err)
		}
	}
	return nil
}

// Delete deletes every applied object in reverse order, then the namespace, and waits until all
// are gone.
func (o *Own) Delete(ctx context.Context, timeout time.Duration) error {
	var errs []error
	bg := metav1.DeletePropagationBackground
	for i := len(o.applied) - 1; i >= 0; i-- {
		a := o.applied[i]
		err := a.res.Delete(ctx, a.obj.GetName(), metav1.DeleteOptions{PropagationPolicy: &bg})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s %s: %w", a.obj.GetKind(), a.obj.GetName(), err))
		}
	}
	err := wait.For(func(ctx context.Context) (bool, error) {
		for _, a := range o.applied {
			if _, err := a.res.Get(ctx, a.obj.GetName(), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false, nil
			}
		}
		return true, nil
	}, wait.WithContext(ctx), wait.WithTimeout(timeout), wait.WithInterval(time.Second))
	if err != nil {
		errs = append(errs, fmt.Errorf("objects not gone: %w", err))
	}
	if err := o.ops.DeleteNamespace(ctx, o.Namespace, timeout); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// NeverPulled is a container that starts only from an image already on its node (imagePullPolicy:
// Never), with where it is declared.
type NeverPulled struct {
	Source    string // file:line of the object's document
	Object    string // kind/name
	Container string
	Image     string
}

// NeverPulledImages lists the containers (init containers too) of the pods and pod templates among
// ms whose imagePullPolicy is Never.
func NeverPulledImages(ms []Manifest) []NeverPulled {
	var out []NeverPulled
	for _, m := range ms {
		spec, ok := podSpecOf(m.Object)
		if !ok {
			continue
		}
		for _, field := range []string{"initContainers", "containers"} {
			cs, _, _ := unstructured.NestedSlice(spec, field)
			for _, c := range cs {
				c, _ := c.(map[string]any)
				if policy, _ := c["imagePullPolicy"].(string); policy != "Never" {
					continue
				}
				name, _ := c["name"].(string)
				image, _ := c["image"].(string)
				out = append(out, NeverPulled{Source: m.Source, Object: strings.ToLower(m.Object.GetKind()) + "/" + m.Object.GetName(), Container: name, Image: image})
			}
		}
	}
	return out
}

// podSpecOf is the pod spec of a Pod, or of the template of a workload object (a CronJob's job's).
func podSpecOf(u *unstructured.Unstructured) (map[string]any, bool) {
	var path []string
	switch u.GetKind() {
	case "Pod":
		path = []string{"spec"}
	case "CronJob":
		path = []string{"spec", "jobTemplate", "spec", "template", "spec"}
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController":
		path = []string{"spec", "template", "spec"}
	default:
		return nil, false
	}
	spec, ok, _ := unstructured.NestedMap(u.Object, path...)
	return spec, ok
}
