package workloads

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/e2e-framework/klient/wait"
	"sigs.k8s.io/yaml"
)

// Rollout operations on a Deployment or StatefulSet (target deployment/NAME or statefulset/NAME):
// what revision it is at, changing its pod template, waiting for a rollout with a diagnosis when it
// stalls, and undoing it to the previous revision.

const deploymentRevision = "deployment.kubernetes.io/revision"

// Revision is target's current revision: a Deployment's revision number, a StatefulSet's update
// revision.
func (p *Ops) Revision(ctx context.Context, namespace, target string) (string, error) {
	kind, name, _ := strings.Cut(target, "/")
	switch kind {
	case "deployment":
		d, err := p.cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		return d.Annotations[deploymentRevision], nil
	case "statefulset":
		s, err := p.cs.AppsV1().StatefulSets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		return s.Status.UpdateRevision, nil
	}
	return "", fmt.Errorf("%s: want deployment/NAME or statefulset/NAME", target)
}

// Patch applies a strategic merge patch (YAML or JSON) to target.
func (p *Ops) Patch(ctx context.Context, namespace, target string, patch []byte) error {
	data, err := yaml.YAMLToJSON(patch)
	if err != nil {
		return fmt.Errorf("patch of %s: %w", target, err)
	}
	kind, name, _ := strings.Cut(target, "/")
	opts := metav1.PatchOptions{FieldManager: "rehearse"}
	switch kind {
	case "deployment":
		_, err = p.cs.AppsV1().Deployments(namespace).Patch(ctx, name, types.StrategicMergePatchType, data, opts)
	case "statefulset":
		_, err = p.cs.AppsV1().StatefulSets(namespace).Patch(ctx, name, types.StrategicMergePatchType, data, opts)
	default:
		return fmt.Errorf("%s: want deployment/NAME or statefulset/NAME", target)
	}
	if err != nil {
		return fmt.Errorf("patch %s in %s: %w", target, namespace, err)
	}
	return nil
}

// SetContainer makes change to target's pod template (a strategic merge patch of that container).
func (p *Ops) SetContainer(ctx context.Context, namespace, target string, change Change) error {
	tmpl, err := p.template(ctx, namespace, target)
	if err != nil {
		return err
	}
	container := change.Container
	if container == "" {
		if len(tmpl.Spec.Containers) == 0 {
			return fmt.Errorf("%s has no container", target)
		}
		container = tmpl.Spec.Containers[0].Name
	}
	c := map[string]any{"name": container}
	if change.Image != "" {
		c["image"] = change.Image
	}
	if len(change.Args) > 0 {
		c["args"] = change.Args
	}
	if len(change.Env) > 0 {
		var vars []map[string]string
		for _, k := range slices.Sorted(maps.Keys(change.Env)) {
			vars = append(vars, map[string]string{"name": k, "value": change.Env[k]})
		}
		c["env"] = vars
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{c}}}}})
	if err != nil {
		return err
	}
	return p.Patch(ctx, namespace, target, patch)
}

func (p *Ops) template(ctx context.Context, namespace, target string) (*corev1.PodTemplateSpec, error) {
	kind, name, _ := strings.Cut(target, "/")
	switch kind {
	case "deployment":
		d, err := p.cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return &d.Spec.Template, nil
	case "statefulset":
		s, err := p.cs.AppsV1().StatefulSets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return &s.Spec.Template, nil
	}
	return nil, fmt.Errorf("%s: want deployment/NAME or statefulset/NAME", target)
}

// WaitRollout waits for target's rollout like WaitRolledOut, but gives up early on what will not
// heal by itself (a Deployment past its progress deadline, a pod whose image can never be had), and
// when it fails says why: the pods not ready, their waiting reasons (CrashLoopBackOff, ...), and the
// last lines a crashing container logged.
func (p *Ops) WaitRollout(ctx context.Context, namespace, target string, timeout time.Duration) error {
	since := time.Now()
	var why string
	err := giveUpOn(ctx, func(ctx context.Context) error {
		if why = p.hopeless(ctx, namespace, target, since); why != "" {
			return errors.New(why)
		}
		return nil
	}, func(ctx context.Context) error {
		return p.WaitRolledOut(ctx, namespace, target, timeout)
	})
	if err == nil || ctx.Err() != nil {
		return err
	}
	if why != "" {
		return Failed(fmt.Errorf("rollout of %s stalled; %s\n%s", target, why, p.Diagnose(ctx, namespace, target)))
	}
	return Failed(fmt.Errorf("rollout of %s stalled: %w\n%s", target, err, p.Diagnose(ctx, namespace, target)))
}

// hopeless says why target's rollout cannot finish by itself, or "": among that, its pods refused at
// admission since the wait began.
func (p *Ops) hopeless(ctx context.Context, namespace, target string, since time.Time) string {
	kind, name, _ := strings.Cut(target, "/")
	if r, err := p.Refused(ctx, namespace, name, since); err == nil && r != nil {
		return fmt.Sprintf("%s %s cannot create its pods: %s", r.Kind, r.Name, r.Message)
	}
	if kind == "deployment" {
		d, err := p.cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, c := range d.Status.Conditions {
				if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
					return "ProgressDeadlineExceeded: " + c.Message
				}
			}
		}
	}
	pods, err := p.ownedPods(ctx, namespace, target)
	if err != nil {
		return ""
	}
	for _, pod := range pods {
		for _, cs := range pod.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && (w.Reason == "ErrImageNeverPull" || w.Reason == "InvalidImageName") {
				return fmt.Sprintf("pod %s: %s", pod.Name, w.Reason)
			}
		}
	}
	return ""
}

// ownedPods are the pods target controls (a Deployment through its ReplicaSets), terminating ones
// included. Pods that merely match its selector are not counted: a canary or a green Deployment
// beside it may carry the same labels.
func (p *Ops) ownedPods(ctx context.Context, namespace, target string) ([]corev1.Pod, error) {
	kind, name, _ := strings.Cut(target, "/")
	var sel *metav1.LabelSelector
	owners := map[types.UID]bool{}
	switch kind {
	case "deployment":
		d, err := p.cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		sel = d.Spec.Selector
		rss, err := p.cs.AppsV1().ReplicaSets(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for i := range rss.Items {
			if metav1.IsControlledBy(&rss.Items[i], d) {
				owners[rss.Items[i].UID] = true
			}
		}
	case "statefulset":
		s, err := p.cs.AppsV1().StatefulSets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		sel, owners[s.UID] = s.Spec.Selector, true
	case "daemonset":
		d, err := p.cs.AppsV1().DaemonSets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		sel, owners[d.UID] = d.Spec.Selector, true
	default:
		return nil, fmt.Errorf("%s: want deployment/, statefulset/ or daemonset/NAME", target)
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, err
	}
	list, err := p.cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, pod := range list.Items {
		if ref := metav1.GetControllerOf(&pod); ref != nil && owners[ref.UID] {
			out = append(out, pod)
		}
	}
	return out, nil
}

// Diagnose describes target's pods that are not ready: phase, waiting reasons, restarts, and the
// last log lines of a container that restarted or is waiting.
func (p *Ops) Diagnose(ctx context.Context, namespace, target string) string {
	pods, err := p.ownedPods(ctx, namespace, target)
	if err != nil {
		return "pods: " + err.Error()
	}
	var b strings.Builder
	for _, pod := range pods {
		ready := false
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if ready && pod.DeletionTimestamp == nil {
			continue
		}
		fmt.Fprintf(&b, "pod %s: %s, not ready", pod.Name, pod.Status.Phase)
		if pod.DeletionTimestamp != nil {
			b.WriteString(", terminating")
		}
		for _, cs := range pod.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil {
				fmt.Fprintf(&b, "; %s: %s %s", cs.Name, w.Reason, w.Message)
			}
			if cs.RestartCount > 0 {
				fmt.Fprintf(&b, "; %s restarted %d times", cs.Name, cs.RestartCount)
			}
			if cs.RestartCount > 0 || cs.State.Waiting != nil {
				if logs := p.lastLogs(ctx, namespace, pod.Name, cs.Name, cs.RestartCount > 0); logs != "" {
					fmt.Fprintf(&b, "\n  last log lines of %s:\n%s", cs.Name, logs)
				}
			}
		}
		b.WriteString("\n")
	}
	return strings.TrimSpace(b.String())
}

func (p *Ops) lastLogs(ctx context.Context, namespace, pod, container string, previous bool) string {
	tail := int64(5)
	raw, err := p.cs.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container, TailLines: &tail, Previous: previous}).DoRaw(ctx)
	if err != nil {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if l != "" {
			lines = append(lines, "    "+l)
		}
	}
	return strings.Join(lines, "\n")
}

// Undo rolls target back to its previous revision (as kubectl rollout undo does): a Deployment to
// the pod template of its ReplicaSet with the highest revision below the current one, a
// StatefulSet to its ControllerRevision below the current update revision. It returns the revisions
// from and to, and the pod template rolled back to. An error wrapping ErrNoPrevious means there was
// nothing to roll back to.
func (p *Ops) Undo(ctx context.Context, namespace, target string) (from, to string, tmpl *corev1.PodTemplateSpec, err error) {
	kind, name, _ := strings.Cut(target, "/")
	switch kind {
	case "deployment":
		d, err := p.cs.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", "", nil, err
		}
		cur, _ := strconv.Atoi(d.Annotations[deploymentRevision])
		rss, err := p.cs.AppsV1().ReplicaSets(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return "", "", nil, err
		}
		var prev *appsv1.ReplicaSet
		best := 0
		for i, rs := range rss.Items {
			if !metav1.IsControlledBy(&rss.Items[i], d) {
				continue
			}
			if r, _ := strconv.Atoi(rs.Annotations[deploymentRevision]); r < cur && r > best {
				prev, best = &rss.Items[i], r
			}
		}
		if prev == nil {
			return strconv.Itoa(cur), "", nil, fmt.Errorf("%s at revision %d: %w", target, cur, ErrNoPrevious)
		}
		t := prev.Spec.Template.DeepCopy()
		delete(t.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
		patch, err := json.Marshal([]map[string]any{{"op": "replace", "path": "/spec/template", "value": t}})
		if err != nil {
			return "", "", nil, err
		}
		if _, err := p.cs.AppsV1().Deployments(namespace).Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: "rehearse"}); err != nil {
			return "", "", nil, err
		}
		return strconv.Itoa(cur), strconv.Itoa(best), t, nil
	case "statefulset":
		s, err := p.cs.AppsV1().StatefulSets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", "", nil, err
		}
		revs, err := p.cs.AppsV1().ControllerRevisions(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return "", "", nil, err
		}
		var cur int64 = -1
		for _, r := range revs.Items {
			if r.Name == s.Status.UpdateRevision {
				cur = r.Revision
			}
		}
		var prev *appsv1.ControllerRevision
		for i, r := range revs.Items {
			if metav1.IsControlledBy(&revs.Items[i], s) && r.Revision < cur && (prev == nil || r.Revision > prev.Revision) {
				prev = &revs.Items[i]
			}
		}
		if prev == nil {
			return s.Status.UpdateRevision, "", nil, fmt.Errorf("%s at revision %s: %w", target, s.Status.UpdateRevision, ErrNoPrevious)
		}
		if _, err := p.cs.AppsV1().StatefulSets(namespace).Patch(ctx, name, types.StrategicMergePatchType, prev.Data.Raw, metav1.PatchOptions{FieldManager: "rehearse"}); err != nil {
			return "", "", nil, err
		}
		var data struct {
			Spec struct {
				Template corev1.PodTemplateSpec `json:"template"`
			} `json:"spec"`
		}
		_ = json.Unmarshal(prev.Data.Raw, &data)
		return s.Status.UpdateRevision, prev.Name, &data.Spec.Template, nil
	}
	return "", "", nil, fmt.Errorf("%s: want deployment/NAME or statefulset/NAME", target)
}

// ErrNoPrevious: a rollback found no earlier revision.
var ErrNoPrevious = errors.New("no previous revision to roll back to")

// SetPartition sets a StatefulSet's rollingUpdate partition: pods with an ordinal below it keep
// their revision when the template changes.
func (p *Ops) SetPartition(ctx context.Context, namespace, target string, partition int) error {
	patch := fmt.Sprintf(`{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":%d}}}}`, partition)
	return p.Patch(ctx, namespace, target, []byte(patch))
}

// WaitPartition waits until every pod of StatefulSet target with an ordinal at or above partition
// runs its update revision and is ready (pods below it are left as they are).
func (p *Ops) WaitPartition(ctx context.Context, namespace, target string, partition int, timeout time.Duration) error {
	_, name, _ := strings.Cut(target, "/")
	var last string
	err := wait.For(func(ctx context.Context) (bool, error) {
		s, err := p.cs.AppsV1().StatefulSets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pods, err := p.ownedPods(ctx, namespace, target)
		if err != nil {
			return false, err
		}
		want := int(replicasOf(s.Spec.Replicas)) - partition
		done := 0
		var behind []string
		for _, pod := range pods {
			ord, err := strconv.Atoi(pod.Name[strings.LastIndex(pod.Name, "-")+1:])
			if err != nil || ord < partition {
				continue
			}
			if pod.Labels[appsv1.ControllerRevisionHashLabelKey] == s.Status.UpdateRevision && podReady(&pod) && pod.DeletionTimestamp == nil {
				done++
			} else {
				behind = append(behind, pod.Name)
			}
		}
		last = fmt.Sprintf("%d of %d pods at or above ordinal %d updated and ready; behind: %s", done, want, partition, strings.Join(behind, ", "))
		return s.Status.ObservedGeneration >= s.Generation && done == want, nil
	}, wait.WithContext(ctx), wait.WithTimeout(timeout), wait.WithInterval(time.Second))
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return Failed(fmt.Errorf("partition %d of %s not rolled out (%s): %w\n%s", partition, target, last, err, p.Diagnose(ctx, namespace, target)))
	}
	return nil
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}
