package workloads

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// A load agent pod runs this rehearse as `load-agent`, never restarts (a restarted agent would send
// its share again), spreads across nodes, and meets the restricted Pod Security level, so a
// namespace that enforces it does not refuse the load.
func TestAgentPod(t *testing.T) {
	p := agentPod("ns", OrdersImage, 2)
	c := p.Spec.Containers[0]
	if p.Name != "rehearse-load-2" || p.Labels[AgentLabel] != "2" || c.Image != OrdersImage || strings.Join(c.Command[:2], " ") != "/rehearse load-agent" {
		t.Errorf("pod %s labels %v image %s command %v", p.Name, p.Labels, c.Image, c.Command)
	}
	// The token comes from the run's Secret: no one who may only read pods can read it.
	if len(c.Env) != 1 || c.Env[0].Name != "REHEARSE_AGENT_TOKEN" || c.Env[0].Value != "" || c.Env[0].ValueFrom == nil ||
		c.Env[0].ValueFrom.SecretKeyRef == nil || c.Env[0].ValueFrom.SecretKeyRef.Name != AgentTokenSecret {
		t.Errorf("env %+v: want the run's token from secret %s", c.Env, AgentTokenSecret)
	}
	if p.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restart policy %s, want Never", p.Spec.RestartPolicy)
	}
	if ts := p.Spec.TopologySpreadConstraints; len(ts) != 1 || ts[0].TopologyKey != corev1.LabelHostname {
		t.Errorf("topology spread %+v, want across nodes", ts)
	}
	// The restricted level's rules: non-root, no privilege escalation, every capability dropped,
	// the runtime's seccomp profile.
	sc, psc := c.SecurityContext, p.Spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("not restricted: pod %+v, container %+v", psc, sc)
	}
}

// A load agent pod that ends before the load starts is reported at once, with why; remove deletes
// every agent pod.
func TestLoadAgentsReportsAnEndedPod(t *testing.T) {
	cs := fake.NewClientset()
	ops := &Ops{cs: cs}
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			if p, err := cs.CoreV1().Pods("ns").Get(ctx, AgentPodName(0), metav1.GetOptions{}); err == nil {
				p.Status.Phase = corev1.PodFailed
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error"}}}}
				_, _ = cs.CoreV1().Pods("ns").UpdateStatus(ctx, p, metav1.UpdateOptions{})
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	_, remove, err := ops.LoadAgents(ctx, "ns", OrdersImage, 1, 10*time.Second)
	<-done
	if err == nil {
		t.Fatal("no error for a failed agent pod")
	}
	if !strings.Contains(err.Error(), "rehearse-load-0 ended before the load (Failed): exited 2 (Error)") {
		t.Errorf("error %q", err)
	}
	if s, err := cs.CoreV1().Secrets("ns").Get(ctx, AgentTokenSecret, metav1.GetOptions{}); err != nil || len(s.StringData["token"]) != 32 {
		t.Errorf("token secret %v (%v): want the run's 128-bit token", s, err)
	}
	remove(ctx)
	if left, _ := ops.AgentPods(ctx, "ns"); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
	if _, err := cs.CoreV1().Secrets("ns").Get(ctx, AgentTokenSecret, metav1.GetOptions{}); err == nil {
		t.Error("the token's secret is left after remove")
	}
}
