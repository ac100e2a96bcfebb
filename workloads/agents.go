package workloads

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"

	"github.com/rehearse-dev/rehearse/load"
)

// AgentLabel marks a rehearsal's load agent pods (its value: the agent's index). Node drains leave
// them be (they are the harness, not the system), and no workload selector of the rehearsal's
// matches them.
const AgentLabel = "rehearse.dev/load-agent"

// AgentTokenSecret holds a run's token for its load agents (key "token"): a Secret, not a value in
// the pods' spec, so that reading pods in the namespace does not give it away.
const AgentTokenSecret = "rehearse-load-token"

// AgentPodName is the name of load agent i.
func AgentPodName(i int) string { return "rehearse-load-" + strconv.Itoa(i) }

// LoadAgents creates n load agent pods in namespace from image (the orders image: this rehearse's
// own executable), spread across nodes, waits until each is ready, and returns how to reach each
// through the API server's pod proxy. The pods inherit the namespace's placement (a node pool's
// selector and toleration) and meet the restricted Pod Security level. remove deletes them, and
// waits (bounded) until they are gone; call it on every exit path.
func (p *Ops) LoadAgents(ctx context.Context, namespace, image string, n int, timeout time.Duration) (agents []load.Agent, remove func(context.Context), err error) {
	pods, secrets := p.cs.CoreV1().Pods(namespace), p.cs.CoreV1().Secrets(namespace)
	remove = func(ctx context.Context) {
		// A short grace, not 0: a pod deleted with 0 leaves the API at once while its container may
		// still run. With a grace, the pod is gone only once the kubelet has stopped it (SIGTERM
		// stops an agent's load at once), so "no agent pod" means no agent load.
		sel := metav1.ListOptions{LabelSelector: AgentLabel}
		grace := int64(2)
		if l, err := pods.List(ctx, sel); err == nil {
			for _, pod := range l.Items {
				_ = pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
			}
		}
		defer func() { _ = secrets.Delete(ctx, AgentTokenSecret, metav1.DeleteOptions{}) }()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			l, err := pods.List(ctx, sel)
			if err != nil || len(l.Items) == 0 {
				return
			}
		}
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, nil, err
	}
	token := hex.EncodeToString(nonce[:])
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: AgentTokenSecret, Namespace: namespace,
			Labels: map[string]string{"app.kubernetes.io/name": "rehearse-load", "app.kubernetes.io/managed-by": "rehearse"}},
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{"token": token},
	}
	_, err = secrets.Create(ctx, secret, metav1.CreateOptions{FieldManager: "rehearse"})
	if apierrors.IsAlreadyExists(err) { // left by a run that was killed: this run's token replaces it
		_, err = secrets.Update(ctx, secret, metav1.UpdateOptions{FieldManager: "rehearse"})
	}
	if err != nil {
		return nil, remove, fmt.Errorf("load agents' token (secret %s): %w", AgentTokenSecret, err)
	}
	for i := range n {
		if _, err := pods.Create(ctx, agentPod(namespace, image, i), metav1.CreateOptions{FieldManager: "rehearse"}); err != nil {
			return nil, remove, fmt.Errorf("load agent pod %s: %w", AgentPodName(i), err)
		}
	}
	ready := map[string]string{} // pod → node
	deadline := time.Now().Add(timeout)
	for len(ready) < n {
		l, err := pods.List(ctx, metav1.ListOptions{LabelSelector: AgentLabel})
		if err != nil {
			return nil, remove, err
		}
		var waiting []string
		for _, pod := range l.Items {
			switch {
			case pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded:
				return nil, remove, fmt.Errorf("load agent pod %s ended before the load (%s): %s", pod.Name, pod.Status.Phase, podWhy(&pod))
			case podReady(&pod):
				ready[pod.Name] = pod.Spec.NodeName
			default:
				waiting = append(waiting, pod.Name+": "+podWhy(&pod))
			}
		}
		if len(ready) >= n {
			break
		}
		if time.Now().After(deadline) {
			sort.Strings(waiting)
			return nil, remove, fmt.Errorf("load agent pods not ready after %s: %s", timeout, strings.Join(waiting, "; "))
		}
		select {
		case <-ctx.Done():
			return nil, remove, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	rc, ok := p.cs.CoreV1().RESTClient().(*rest.RESTClient)
	if !ok || rc == nil || rc.Client == nil {
		return nil, remove, errors.New("no API server to reach the load agents through")
	}
	// Streams last the run: the client has no timeout, and the transport carries the credentials.
	client := &http.Client{Transport: rc.Client.Transport}
	if client.Transport == nil {
		client.Transport = http.DefaultTransport
	}
	for i := range n {
		name := AgentPodName(i)
		base := rc.Get().AbsPath("/api/v1/namespaces", namespace, "pods", name+":"+strconv.Itoa(load.AgentPort), "proxy").URL()
		agents = append(agents, load.Agent{Name: name, Node: ready[name], Base: base.String(), Client: client, Token: token})
	}
	return agents, remove, nil
}

// podWhy is what a pod waits on: its unschedulable condition, its container's waiting reason.
func podWhy(pod *corev1.Pod) string {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status != corev1.ConditionTrue && c.Message != "" {
			return c.Message
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		switch {
		case cs.State.Waiting != nil:
			return strings.TrimSpace(cs.State.Waiting.Reason + " " + cs.State.Waiting.Message)
		case cs.State.Terminated != nil:
			return fmt.Sprintf("exited %d (%s)", cs.State.Terminated.ExitCode, cs.State.Terminated.Reason)
		}
	}
	return string(pod.Status.Phase)
}

// agentPod is load agent i: the rehearse executable as `rehearse load-agent`, spread across nodes,
// readiness on its /healthz, restricted-level security, never restarted (a restarted agent would
// send its share again from the start: a lost agent's share is failed instead).
func agentPod(namespace, image string, i int) *corev1.Pod {
	labels := map[string]string{AgentLabel: strconv.Itoa(i), "app.kubernetes.io/name": "rehearse-load", "app.kubernetes.io/managed-by": "rehearse"}
	no, yes := false, true
	uid := int64(65532)
	grace := int64(5)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: AgentPodName(i), Namespace: namespace, Labels: labels},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &grace,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: &uid, RunAsGroup: &uid,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
				MaxSkew: 1, TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: corev1.ScheduleAnyway,
				LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: AgentLabel, Operator: metav1.LabelSelectorOpExists}}},
			}},
			Containers: []corev1.Container{{
				Name:            "agent",
				Image:           image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         []string{"/rehearse", "load-agent", "--listen", ":" + strconv.Itoa(load.AgentPort), "--dir", "/work"},
				Ports:           []corev1.ContainerPort{{Name: "agent", ContainerPort: load.AgentPort, Protocol: corev1.ProtocolTCP}},
				// Only the run that made the pod knows it (and who may read the namespace's Secrets):
				// no other client can start or read the agent.
				Env: []corev1.EnvVar{{Name: load.AgentTokenEnv, ValueFrom: &corev1.EnvVarSource{
					SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: AgentTokenSecret}, Key: "token"}}}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(load.AgentPort)}},
					PeriodSeconds: 1},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")}},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes,
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
				VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: "/work"}},
			}},
			Volumes: []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	}
}

// AgentPods lists the load agent pods left in namespace (none after a run, on every exit path).
func (p *Ops) AgentPods(ctx context.Context, namespace string) ([]string, error) {
	l, err := p.cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: AgentLabel})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, pod := range l.Items {
		out = append(out, pod.Name)
	}
	return out, nil
}
