//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/rehearse-dev/rehearse/faults"
)

// noNodeCordoned fails the test for every node a fault left unschedulable or marked as cordoned
// by rehearse.
func noNodeCordoned(t *testing.T, ctx context.Context, cs kubernetes.Interface) {
	t.Helper()
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable || n.Annotations[faults.CordonedBy] != "" {
			t.Errorf("node %s left cordoned (%v) or marked (%q)", n.Name, n.Spec.Unschedulable, n.Annotations[faults.CordonedBy])
		}
	}
}

// systemNamespaces hold the add-ons every rehearsal relies on: pod network, proxy, DNS, storage.
var systemNamespaces = []string{"kube-system", "kube-flannel", "local-path-storage"}

// waitSettled waits until every node is back in full after a test stopped and started node
// containers: the node posted a Ready heartbeat since its container (re)started, and every system
// pod on it runs containers started since then and is Ready. A node started again after a loss
// keeps showing its old Ready condition, and its pods their old status, for seconds while its
// kubelet, pod network and proxy restart; the tests after this one share the cluster and must
// not deploy into that.
func waitSettled(t *testing.T, ctx context.Context, cs kubernetes.Interface, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	var last string
	for deadline := start.Add(timeout); ; {
		last = unsettled(ctx, cs)
		if last == "" {
			t.Logf("cluster settled in %s", time.Since(start).Round(100*time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster not settled %s after the test: %s", timeout, last)
		}
		time.Sleep(time.Second)
	}
}

// unsettled names what is not back yet ("" when everything is).
func unsettled(ctx context.Context, cs kubernetes.Interface) string {
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var waiting []string
	for _, n := range nodes.Items {
		out := dockerLines("inspect", "-f", "{{.State.Running}} {{.State.StartedAt}}", n.Name)
		if len(out) != 1 || !strings.HasPrefix(out[0], "true ") {
			waiting = append(waiting, fmt.Sprintf("node container %s not running (%v)", n.Name, out))
			continue
		}
		started, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(out[0], "true "))
		if err != nil {
			return fmt.Sprintf("node container %s: %v", n.Name, err)
		}
		since := started.Truncate(time.Second) // the API's times have whole seconds
		if c := nodeCondition(&n, corev1.NodeReady); c == nil || c.Status != corev1.ConditionTrue || c.LastHeartbeatTime.Time.Before(since) {
			waiting = append(waiting, fmt.Sprintf("node %s: no Ready heartbeat since its container started at %s", n.Name, started.Format(time.TimeOnly)))
			continue
		}
		for _, ns := range systemNamespaces {
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n.Name})
			if err != nil {
				return err.Error()
			}
			for _, p := range pods.Items {
				if why := podBackSince(&p, since); why != "" {
					waiting = append(waiting, fmt.Sprintf("%s/%s on %s: %s", p.Namespace, p.Name, n.Name, why))
				}
			}
		}
	}
	return strings.Join(waiting, "; ")
}

// podBackSince says why pod is not Ready with every container started at or after since ("" if it is).
func podBackSince(p *corev1.Pod, since time.Time) string {
	if p.Status.Phase == corev1.PodSucceeded {
		return ""
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running == nil {
			return "container " + c.Name + " not running"
		}
		if c.State.Running.StartedAt.Time.Before(since) {
			return "container " + c.Name + " last started before its node (status not yet refreshed)"
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return ""
		}
	}
	return "not Ready"
}

func nodeCondition(n *corev1.Node, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == t {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}
