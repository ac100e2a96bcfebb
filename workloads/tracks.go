package workloads

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"
)

// Operations for strategies that run a second Deployment beside the first (blue-green, canary): a
// copy of a Deployment on another track, the pod-template-hash that pins a Service to one
// Deployment's pods, Service selectors, and a Service of one track's own for a smoke test.

// TrackLabel marks the pods of a Deployment rehearse runs beside the user's (green, canary).
const TrackLabel = "rehearse.dev/track"

// Change is a new release of a pod template: a change of one container (its image, environment
// variables and args), or a strategic merge patch of the whole object, or a whole new template.
type Change struct {
	Container string // default: the first container
	Image     string
	Env       map[string]string
	Args      []string
	// Patch is a strategic merge patch of the object (YAML or JSON), as rolling patches it.
	Patch []byte
	// Template replaces the pod template (a new version's manifest).
	Template *corev1.PodTemplateSpec
}

// Apply makes the change to a copy of the Deployment d, and returns the copy's spec.
func (c Change) applyTo(d *appsv1.Deployment) (*appsv1.DeploymentSpec, error) {
	spec := d.Spec.DeepCopy()
	switch {
	case c.Template != nil:
		for k, v := range spec.Selector.MatchLabels {
			if c.Template.Labels[k] != v {
				return nil, fmt.Errorf("the new pod template lacks the label %s=%s that %s selects its pods by", k, v, d.Name)
			}
		}
		spec.Template = *c.Template.DeepCopy()
	case len(c.Patch) > 0:
		patched, err := strategicPatch(d, c.Patch)
		if err != nil {
			return nil, err
		}
		spec.Template = patched.Spec.Template
	}
	if c.Image != "" || len(c.Env) > 0 || len(c.Args) > 0 {
		if err := c.Apply(&spec.Template); err != nil {
			return nil, err
		}
	}
	return spec, nil
}

// strategicPatch is d with a strategic merge patch (YAML or JSON) made to it, as the API server
// would make it.
func strategicPatch(d *appsv1.Deployment, patch []byte) (*appsv1.Deployment, error) {
	data, err := yaml.YAMLToJSON(patch)
	if err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	orig, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	out, err := strategicpatch.StrategicMergePatch(orig, data, appsv1.Deployment{})
	if err != nil {
		return nil, fmt.Errorf("patch of %s: %w", d.Name, err)
	}
	var nd appsv1.Deployment
	if err := json.Unmarshal(out, &nd); err != nil {
		return nil, fmt.Errorf("patch of %s: %w", d.Name, err)
	}
	return &nd, nil
}

// Apply makes the container change (image, env, args) to tmpl.
func (c Change) Apply(tmpl *corev1.PodTemplateSpec) error {
	if len(tmpl.Spec.Containers) == 0 {
		return fmt.Errorf("the pod template has no container")
	}
	i := 0
	if c.Container != "" {
		i = -1
		for j, ct := range tmpl.Spec.Containers {
			if ct.Name == c.Container {
				i = j
			}
		}
		if i < 0 {
			return fmt.Errorf("no container %q in the pod template", c.Container)
		}
	}
	ct := &tmpl.Spec.Containers[i]
	if c.Image != "" {
		ct.Image = c.Image
	}
	if len(c.Args) > 0 {
		ct.Args = slices.Clone(c.Args)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		set := false
		for j := range ct.Env {
			if ct.Env[j].Name == k {
				ct.Env[j] = corev1.EnvVar{Name: k, Value: c.Env[k]}
				set = true
			}
		}
		if !set {
			ct.Env = append(ct.Env, corev1.EnvVar{Name: k, Value: c.Env[k]})
		}
	}
	return nil
}

// Deployment reads a Deployment (target deployment/NAME).
func (p *Ops) Deployment(ctx context.Context, namespace, target string) (*appsv1.Deployment, error) {
	kind, name, _ := strings.Cut(target, "/")
	if kind != "deployment" {
		return nil, fmt.Errorf("%s: want deployment/NAME", target)
	}
	return p.cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
}

// Track creates (or replaces) Deployment name beside target: target's spec with change made, the
// track label added to its selector and pod labels, and replicas pods. Its pods carry every label of
// target's, so a Service that selects target's pods by those labels selects them too.
func (p *Ops) Track(ctx context.Context, namespace, target, name, track string, replicas int32, change Change) error {
	d, err := p.Deployment(ctx, namespace, target)
	if err != nil {
		return err
	}
	spec, err := change.applyTo(d)
	if err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	spec.Replicas = &replicas
	spec.Selector = spec.Selector.DeepCopy()
	if spec.Selector.MatchLabels == nil {
		spec.Selector.MatchLabels = map[string]string{}
	}
	spec.Selector.MatchLabels[TrackLabel] = track
	spec.Template.Labels = maps.Clone(spec.Template.Labels)
	if spec.Template.Labels == nil {
		spec.Template.Labels = map[string]string{}
	}
	spec.Template.Labels[TrackLabel] = track
	labels := maps.Clone(d.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[TrackLabel] = track
	nd := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels}, Spec: *spec}
	dc := p.cs.AppsV1().Deployments(namespace)
	if err := dc.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	_, err = dc.Create(ctx, nd, metav1.CreateOptions{FieldManager: "rehearse"})
	return err
}

// Delete deletes target (deployment/NAME, service/NAME) if it exists, and for a Deployment waits
// until its pods are gone.
func (p *Ops) Delete(ctx context.Context, namespace, target string, timeout time.Duration) error {
	kind, name, _ := strings.Cut(target, "/")
	fg := metav1.DeletePropagationForeground
	var err error
	switch kind {
	case "deployment":
		if err = p.Scale(ctx, namespace, target, 0, timeout); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		err = p.cs.AppsV1().Deployments(namespace).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &fg})
	case "service":
		err = p.cs.CoreV1().Services(namespace).Delete(ctx, name, metav1.DeleteOptions{})
	default:
		return fmt.Errorf("delete %s: want deployment/NAME or service/NAME", target)
	}
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// PodTemplateHash is the pod-template-hash label of the pods of target's current revision (the
// ReplicaSet at its revision): a Service selector with it picks exactly those pods.
func (p *Ops) PodTemplateHash(ctx context.Context, namespace, target string) (string, error) {
	d, err := p.Deployment(ctx, namespace, target)
	if err != nil {
		return "", err
	}
	rss, err := p.cs.AppsV1().ReplicaSets(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	for i, rs := range rss.Items {
		if metav1.IsControlledBy(&rss.Items[i], d) && rs.Annotations[deploymentRevision] == d.Annotations[deploymentRevision] {
			if h := rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; h != "" {
				return h, nil
			}
		}
	}
	return "", fmt.Errorf("%s: no ReplicaSet at revision %s", target, d.Annotations[deploymentRevision])
}

// Selector is Service name's selector.
func (p *Ops) Selector(ctx context.Context, namespace, name string) (map[string]string, error) {
	s, err := p.cs.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return s.Spec.Selector, nil
}

// SetSelector replaces Service name's selector in one update: the switch of a blue-green.
func (p *Ops) SetSelector(ctx context.Context, namespace, name string, selector map[string]string) error {
	patch, err := json.Marshal([]map[string]any{{"op": "replace", "path": "/spec/selector", "value": selector}})
	if err != nil {
		return err
	}
	_, err = p.cs.CoreV1().Services(namespace).Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: "rehearse"})
	if err != nil {
		return fmt.Errorf("switch Service %s: %w", name, err)
	}
	return nil
}

// NodePort is the node port of Service name's first port (an error when it has none).
func (p *Ops) NodePort(ctx context.Context, namespace, name string) (int, error) {
	s, err := p.cs.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return 0, err
	}
	if len(s.Spec.Ports) == 0 || s.Spec.Ports[0].NodePort == 0 {
		return 0, fmt.Errorf("Service %s in %s has no node port (type %s)", name, namespace, s.Spec.Type)
	}
	return int(s.Spec.Ports[0].NodePort), nil
}

// ServicePort is Service name's first port, and its in-cluster URL: what load from inside the
// cluster sends to, as the system's own clients there would (by name, through the cluster's DNS).
func (p *Ops) ServicePort(ctx context.Context, namespace, name string) (int32, string, error) {
	s, err := p.cs.CoreV1().Services(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return 0, "", err
	}
	if len(s.Spec.Ports) == 0 {
		return 0, "", fmt.Errorf("Service %s in %s has no port", name, namespace)
	}
	port := s.Spec.Ports[0].Port
	return port, fmt.Sprintf("http://%s.%s.svc:%d", name, namespace, port), nil
}

// ServiceByNodePort finds the Service, in one of namespaces, that publishes node port port.
func (p *Ops) ServiceByNodePort(ctx context.Context, namespaces []string, port int) (namespace, name string, err error) {
	for _, ns := range namespaces {
		list, err := p.cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return "", "", err
		}
		for _, s := range list.Items {
			for _, sp := range s.Spec.Ports {
				if int(sp.NodePort) == port {
					return ns, s.Name, nil
				}
			}
		}
	}
	return "", "", nil
}

// Replicas is target's spec.replicas.
func (p *Ops) Replicas(ctx context.Context, namespace, target string) (int, error) {
	kind, name, _ := strings.Cut(target, "/")
	switch kind {
	case "deployment":
		d, err := p.cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return 0, err
		}
		return int(replicasOf(d.Spec.Replicas)), nil
	case "statefulset":
		s, err := p.cs.AppsV1().StatefulSets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return 0, err
		}
		return int(replicasOf(s.Spec.Replicas)), nil
	}
	return 0, fmt.Errorf("%s: want deployment/NAME or statefulset/NAME", target)
}

// Surge is how many pods target (deployment/NAME) may have above its replicas while it rolls, by
// its own strategy: maxSurge of a RollingUpdate, scaled to its replicas and rounded up as the
// Deployment controller does (default 25%); at least one (a Recreate Deployment, or a maxSurge of 0,
// still moves a pod at a time).
func (p *Ops) Surge(ctx context.Context, namespace, target string) (int, error) {
	d, err := p.Deployment(ctx, namespace, target)
	if err != nil {
		return 0, err
	}
	return surgeOf(d), nil
}

func surgeOf(d *appsv1.Deployment) int {
	ru := d.Spec.Strategy.RollingUpdate
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType || ru == nil || ru.MaxSurge == nil {
		if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
			return 1
		}
		def := intstr.FromString("25%")
		ru = &appsv1.RollingUpdateDeployment{MaxSurge: &def}
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, int(replicasOf(d.Spec.Replicas)), true)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// EnvOf is the value of variable name in container c of target's pod template ("" when unset).
func (p *Ops) EnvOf(ctx context.Context, namespace, target, container, name string) (string, error) {
	tmpl, err := p.template(ctx, namespace, target)
	if err != nil {
		return "", err
	}
	return TemplateEnv(tmpl, container, name), nil
}

// TemplateEnv is the value of variable name in container c of tmpl ("" when unset).
func TemplateEnv(tmpl *corev1.PodTemplateSpec, c, name string) string {
	if tmpl == nil {
		return ""
	}
	for _, ct := range tmpl.Spec.Containers {
		if ct.Name != c {
			continue
		}
		for _, e := range ct.Env {
			if e.Name == name {
				return e.Value
			}
		}
	}
	return ""
}
