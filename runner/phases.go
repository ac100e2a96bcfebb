package runner

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// phaseEvery is how often a long phase says it is still at it.
var phaseEvery = 10 * time.Second

// phase announces a phase that says nothing while it runs (cluster create, image loading, waiting
// for pods): every phaseEvery it prints how long it has been at it and, when status has something
// to say, what it is waiting for; done prints how long it took.
func phase(w io.Writer, what string, status func() string) (done func(err error)) {
	if w == nil {
		return func(error) {}
	}
	start := time.Now()
	progress(w, "%s", what)
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(phaseEvery)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				line := fmt.Sprintf("  still %s (%s)", firstWordLower(what), time.Since(start).Round(time.Second))
				if status != nil {
					if s := status(); s != "" {
						line += ": " + s
					}
				}
				progress(w, "%s", line)
			}
		}
	}()
	return func(err error) {
		close(stop)
		<-finished
		if err == nil {
			progress(w, "  done in %s", time.Since(start).Round(100*time.Millisecond))
		}
	}
}

func firstWordLower(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// podsStatus says, per app label (or pod name prefix), how many of a namespace's pods are ready,
// and names the waiting reason of one that is not (ContainerCreating, ImagePullBackOff, ...).
func podsStatus(ctx context.Context, cs kubernetes.Interface, namespace string) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	pods, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) == 0 {
		return "no pods yet"
	}
	type count struct {
		ready, all int
		why        string
	}
	groups := map[string]*count{}
	for _, p := range pods.Items {
		g := p.Labels["app"]
		if g == "" {
			g = p.GenerateName
		}
		c := groups[g]
		if c == nil {
			c = &count{}
			groups[g] = c
		}
		c.all++
		if podReady(&p) {
			c.ready++
		} else if c.why == "" {
			c.why = waiting(&p)
		}
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	slices.Sort(names)
	var parts []string
	for _, g := range names {
		c := groups[g]
		s := fmt.Sprintf("%s %d/%d ready", strings.TrimSuffix(g, "-"), c.ready, c.all)
		if c.why != "" {
			s += " (" + c.why + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
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
