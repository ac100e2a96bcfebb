package workloads

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/e2e-framework/klient/k8s/resources"
	"sigs.k8s.io/e2e-framework/klient/wait"

	"github.com/rehearse-dev/rehearse/scenarios"
)

// Ops are the operations runbook steps perform on any workload, the sample or one's own: scaling a
// Deployment or StatefulSet, waiting for a rollout, running a command in the pods a selector picks.
type Ops struct {
	cs kubernetes.Interface
	r  *resources.Resources
}

// NewOps connects to the cluster cfg names.
func NewOps(cfg *rest.Config) (*Ops, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	r, err := resources.New(cfg)
	if err != nil {
		return nil, err
	}
	return &Ops{cs: cs, r: r}, nil
}

// SetReplicas sets target's replicas and does not wait.
func (p *Ops) SetReplicas(ctx context.Context, namespace, target string, replicas int) error {
	kind, name, _ := strings.Cut(target, "/")
	patch := []byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas))
	var err error
	switch kind {
	case "deployment":
		_, err = p.cs.AppsV1().Deployments(namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "rehearse"})
	case "statefulset":
		_, err = p.cs.AppsV1().StatefulSets(namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "rehearse"})
	default:
		return fmt.Errorf("scale %s: want deployment/NAME or statefulset/NAME", target)
	}
	if err != nil {
		return fmt.Errorf("scale %s in %s: %w", target, namespace, err)
	}
	return nil
}

// WaitServing waits until exactly n of target's pods are ready and not terminating: the pods that
// can be endpoints of a Service (a terminating pod is out of them already, while it drains).
func (p *Ops) WaitServing(ctx context.Context, namespace, target string, n int, timeout time.Duration) error {
	var last string
	err := wait.For(func(ctx context.Context) (bool, error) {
		pods, err := p.ownedPods(ctx, namespace, target)
		if err != nil {
			return false, err
		}
		serving := 0
		for _, pod := range pods {
			if pod.DeletionTimestamp == nil && podReady(&pod) {
				serving++
			}
		}
		last = fmt.Sprintf("%d of %d pods serving", serving, n)
		return serving == n, nil
	}, wait.WithContext(ctx), wait.WithTimeout(timeout), wait.WithInterval(250*time.Millisecond))
	if err != nil && ctx.Err() == nil {
		return Failed(fmt.Errorf("%s in %s: %s: %w", target, namespace, last, err))
	}
	return err
}

// Clientset is the client the operations use, for steps that act on the cluster directly.
func (p *Ops) Clientset() kubernetes.Interface { return p.cs }

// Scale sets the replicas of target (deployment/NAME or statefulset/NAME) in namespace and waits
// until exactly that many of its pods exist and are ready: scaling down is done when the last
// surplus pod has terminated, not when the controller has been told.
func (p *Ops) Scale(ctx context.Context, namespace, target string, replicas int, timeout time.Duration) error {
	if err := p.SetReplicas(ctx, namespace, target, replicas); err != nil {
		return err
	}
	return p.WaitRollout(ctx, namespace, target, timeout)
}

// WaitRolledOut waits until target (deployment/, statefulset/ or daemonset/NAME) has observed its
// spec, every replica is updated and ready, and no other pod of it is left (not even one still
// terminating, which may still answer).
func (p *Ops) WaitRolledOut(ctx context.Context, namespace, target string, timeout time.Duration) error {
	kind, name, _ := strings.Cut(target, "/")
	var last string
	err := wait.For(func(ctx context.Context) (bool, error) {
		var want, updated, ready int32
		var observed bool
		switch kind {
		case "deployment":
			d, err := p.cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			want, updated, ready = replicasOf(d.Spec.Replicas), d.Status.UpdatedReplicas, d.Status.AvailableReplicas
			observed = d.Status.ObservedGeneration >= d.Generation && d.Status.Replicas == want
		case "statefulset":
			s, err := p.cs.AppsV1().StatefulSets(namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			want, updated, ready = replicasOf(s.Spec.Replicas), s.Status.UpdatedReplicas, s.Status.ReadyReplicas
			observed = s.Status.ObservedGeneration >= s.Generation && s.Status.Replicas == want
			if s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
				updated = want
			}
		case "daemonset":
			d, err := p.cs.AppsV1().DaemonSets(namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			want, updated, ready = d.Status.DesiredNumberScheduled, d.Status.UpdatedNumberScheduled, d.Status.NumberReady
			observed = d.Status.ObservedGeneration >= d.Generation
		default:
			return false, fmt.Errorf("%s: want deployment/, statefulset/ or daemonset/NAME", target)
		}
		pods, err := p.ownedPods(ctx, namespace, target)
		if err != nil {
			return false, err
		}
		last = fmt.Sprintf("%d wanted, %d updated, %d ready, %d pods", want, updated, ready, len(pods))
		return observed && updated == want && ready == want && len(pods) == int(want), nil
	}, wait.WithContext(ctx), wait.WithTimeout(timeout), wait.WithInterval(500*time.Millisecond), wait.WithImmediate())
	if err != nil {
		err = fmt.Errorf("%s in %s not rolled out (%s): %w", target, namespace, last, err)
		if last != "" && ctx.Err() == nil {
			return Failed(err) // it was observed, and did not become ready in time
		}
		return err
	}
	return nil
}

func replicasOf(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// ExecResult is what a command printed in one pod.
type ExecResult struct {
	Pod    string `json:"pod"`
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr,omitempty"`
	Err    string `json:"error,omitempty"`
}

// Exec runs command in every running pod that selector picks in the namespaces (in container, or the
// pod's first). It fails when no pod matches: a command that ran nowhere proved nothing. A command
// that fails in a pod is reported in that pod's result, not as the error.
func (p *Ops) Exec(ctx context.Context, namespaces []string, selector, container string, command []string) ([]ExecResult, error) {
	var out []ExecResult
	for _, ns := range namespaces {
		pods, err := p.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return nil, err
		}
		for _, pod := range pods.Items {
			if pod.Status.Phase != corev1.PodRunning || pod.DeletionTimestamp != nil {
				continue
			}
			c := container
			if c == "" {
				c = pod.Spec.Containers[0].Name
			}
			var stdout, stderr bytes.Buffer
			res := ExecResult{Pod: pod.Name}
			if len(namespaces) > 1 {
				res.Pod = ns + "/" + pod.Name
			}
			if err := p.r.ExecInPod(ctx, ns, pod.Name, c, command, &stdout, &stderr); err != nil {
				res.Err = err.Error()
			}
			res.Stdout, res.Stderr = stdout.String(), stderr.String()
			out = append(out, res)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no running pod matches %q in %s", selector, strings.Join(namespaces, ", "))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pod < out[j].Pod })
	return out, nil
}

// DeleteNamespace deletes a namespace, and its pods at once (no grace period), and waits until it
// is gone.
func (p *Ops) DeleteNamespace(ctx context.Context, name string, timeout time.Duration) error {
	err := p.cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	// The rehearsal is over: its pods need no graceful shutdown (the app's drain and grace period
	// made a teardown take ~40 s). A terminating namespace admits no new pod, so none comes back.
	zero := int64(0)
	if err := p.cs.CoreV1().Pods(name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("namespace %s: delete its pods: %w", name, err)
	}
	// The namespace controller starts 5 s after the delete; a claim it then finds still held by its
	// protection finalizer makes it look again only 8 s later. Deleted now, with their pods gone,
	// the claims are gone before it starts, and the namespace with its first pass.
	if err := p.cs.CoreV1().PersistentVolumeClaims(name).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("namespace %s: delete its volume claims: %w", name, err)
	}
	err = wait.For(func(ctx context.Context) (bool, error) {
		_, err := p.cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}, wait.WithContext(ctx), wait.WithTimeout(timeout), wait.WithInterval(500*time.Millisecond))
	if err != nil {
		return fmt.Errorf("namespace %s not gone: %w", name, err)
	}
	return nil
}

// ensureNamespace creates a namespace labelled as rehearse's, with meta's labels and annotations
// (workload.namespace), unless it exists; an existing one is given meta's labels and annotations,
// before any pod is created in it (admission reads them then).
func (p *Ops) ensureNamespace(ctx context.Context, name string, meta *scenarios.NamespaceMeta) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	if meta != nil {
		maps.Copy(ns.Labels, meta.Labels)
		ns.Annotations = maps.Clone(meta.Annotations)
	}
	ns.Labels["app.kubernetes.io/part-of"] = "rehearse"
	_, err := p.cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	switch {
	case err == nil:
		return nil
	case !apierrors.IsAlreadyExists(err):
		return err
	case meta == nil || len(meta.Labels)+len(meta.Annotations) == 0:
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": meta.Labels, "annotations": meta.Annotations}})
	if err != nil {
		return err
	}
	_, err = p.cs.CoreV1().Namespaces().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "rehearse"})
	return err
}

// PodState is how a replica pod stands when its data is read.
type PodState struct {
	Name        string `json:"name"`
	Phase       string `json:"phase"`
	Ready       bool   `json:"ready"`
	Terminating bool   `json:"terminating,omitempty"`
}

// Unhealthy says why the pod is not a serving replica ("" when it is).
func (p PodState) Unhealthy() string {
	switch {
	case p.Terminating:
		return "terminating"
	case p.Phase != string(corev1.PodRunning):
		return strings.ToLower(p.Phase)
	case !p.Ready:
		return "not ready"
	}
	return ""
}

// PodStates lists every pod selector picks in the namespaces, whatever its phase.
func (p *Ops) PodStates(ctx context.Context, namespaces []string, selector string) ([]PodState, error) {
	var out []PodState
	for _, ns := range namespaces {
		pods, err := p.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return nil, err
		}
		for _, pod := range pods.Items {
			st := PodState{Name: pod.Name, Phase: string(pod.Status.Phase), Terminating: pod.DeletionTimestamp != nil}
			if len(namespaces) > 1 {
				st.Name = ns + "/" + pod.Name
			}
			for _, c := range pod.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					st.Ready = true
				}
			}
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ExpectedReplicas sums spec.replicas of the Deployments and StatefulSets in the namespaces whose pod
// template selector picks: how many replicas the workload is meant to have.
func (p *Ops) ExpectedReplicas(ctx context.Context, namespaces []string, selector string) (int, error) {
	sel, err := labels.Parse(selector)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ns := range namespaces {
		ds, err := p.cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return 0, err
		}
		for _, d := range ds.Items {
			if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				n += int(replicasOf(d.Spec.Replicas))
			}
		}
		ss, err := p.cs.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return 0, err
		}
		for _, s := range ss.Items {
			if sel.Matches(labels.Set(s.Spec.Template.Labels)) {
				n += int(replicasOf(s.Spec.Replicas))
			}
		}
	}
	return n, nil
}

// SystemFailure marks an error as the system under rehearsal failing (a rollout that never became
// ready, a migration Job that failed, a runbook command that exited non-zero), as opposed to the
// harness being unable to act (the API unreachable, a reference to nothing).
type SystemFailure struct{ Err error }

func (e *SystemFailure) Error() string { return e.Err.Error() }
func (e *SystemFailure) Unwrap() error { return e.Err }

// Failed wraps err as a SystemFailure.
func Failed(err error) error {
	if err == nil {
		return nil
	}
	return &SystemFailure{err}
}

// IsSystemFailure says whether err is (or wraps) a SystemFailure.
func IsSystemFailure(err error) bool {
	var sf *SystemFailure
	return errors.As(err, &sf)
}

// OpsFor wraps a clientset (a fake one in tests of the steps that act on a cluster).
func OpsFor(cs kubernetes.Interface) *Ops { return &Ops{cs: cs} }

// PodsStatus says, per app label (or pod name prefix), how many of a namespace's pods are ready,
// and names the waiting reason of one that is not (ContainerCreating, ImagePullBackOff, ...).
func (p *Ops) PodsStatus(ctx context.Context, namespace string) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	pods, err := p.cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) == 0 {
		return "no pods yet"
	}
	type count struct {
		ready, all int
		why        string
	}
	groups := map[string]*count{}
	for _, pod := range pods.Items {
		g := pod.Labels["app"]
		if g == "" {
			g = pod.GenerateName
		}
		c := groups[g]
		if c == nil {
			c = &count{}
			groups[g] = c
		}
		c.all++
		if podReady(&pod) {
			c.ready++
		} else if c.why == "" {
			c.why = waiting(&pod)
		}
	}
	var parts []string
	for _, g := range slices.Sorted(maps.Keys(groups)) {
		c := groups[g]
		s := fmt.Sprintf("%s %d/%d ready", strings.TrimSuffix(g, "-"), c.ready, c.all)
		if c.why != "" {
			s += " (" + c.why + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// waiting is why a pod is not ready yet, as kubectl get pods would say it.
func waiting(p *corev1.Pod) string {
	for _, s := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		if s.State.Waiting != nil && s.State.Waiting.Reason != "" {
			return p.Name + ": " + s.State.Waiting.Reason
		}
	}
	if p.Status.Phase == corev1.PodPending {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status != corev1.ConditionTrue {
				return p.Name + ": unschedulable"
			}
		}
		return p.Name + ": pending"
	}
	return p.Name + ": not ready"
}

// SaveLogs writes the logs of every container of every pod in namespaces into dir, one file per
// container (POD_CONTAINER.log; POD_CONTAINER.previous.log for the instance before a restart), each
// at most maxBytes from its end: what a failed rehearsal's workload said, kept before its namespace
// goes. It returns how many files it wrote and the first error (it goes on past errors).
func (p *Ops) SaveLogs(ctx context.Context, namespaces []string, dir string, maxBytes int64) (int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	n := 0
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	for _, ns := range namespaces {
		pods, err := p.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			keep(err)
			continue
		}
		for _, pod := range pods.Items {
			statuses := append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...)
			for _, cs := range statuses {
				for _, previous := range []bool{false, true} {
					if previous && cs.RestartCount == 0 {
						continue
					}
					opts := &corev1.PodLogOptions{Container: cs.Name, Previous: previous, Timestamps: true}
					if maxBytes > 0 {
						// The end matters most: the last lines, as many as fill maxBytes at ~80 bytes each.
						lines := maxBytes / 80
						opts.TailLines, opts.LimitBytes = &lines, &maxBytes
					}
					// A node that is gone (a node-loss fault) must not hold the report up.
					lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					raw, err := p.cs.CoreV1().Pods(ns).GetLogs(pod.Name, opts).DoRaw(lctx)
					cancel()
					if err != nil {
						keep(fmt.Errorf("logs of %s/%s %s: %w", ns, pod.Name, cs.Name, err))
						continue
					}
					name := pod.Name + "_" + cs.Name
					if previous {
						name += ".previous"
					}
					if err := os.WriteFile(filepath.Join(dir, name+".log"), raw, 0o644); err != nil {
						keep(err)
						continue
					}
					n++
				}
			}
		}
	}
	return n, first
}
