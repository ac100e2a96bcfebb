//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/workloads"
)

// BenchmarkClusterLoad measures load from the cluster against load from the host, on the suite's
// cluster, with a fixed target: the echo server (`rehearse load-agent --echo`, answering every
// request at once), two replicas behind one Service. It reports:
//   - the saturation rate (requests sent per second when asked for far more than can be sent) of 1,
//     2 and 3 load agents, spread across nodes, and of this process from the host through the
//     Service's node port;
//   - the fidelity of 500 req/s from one agent: achieved/target, requests not sent, p99.
//
// Run: make bench-cluster (~6 min with the cluster's creation). Every kind node shares this machine's
// cores, so agents on more nodes share the same CPUs: the figures say what one machine can do.
func BenchmarkClusterLoad(b *testing.B) {
	ctx := context.Background()
	cs := sharedClientset(b)
	cfg, err := shared.RESTConfig()
	if err != nil {
		b.Fatal(err)
	}
	const ns = "rehearse-bench-cluster"
	ops, err := workloads.NewOps(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := ops.DeleteNamespace(ctx, ns, 2*time.Minute); err != nil {
		b.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = ops.DeleteNamespace(context.Background(), ns, 2*time.Minute) }()
	nodePort := deployEcho(b, ctx, cs, ns)
	hostURL := fmt.Sprintf("http://127.0.0.1:%d", nodePort)
	if err := load.WaitAnswering(ctx, hostURL, time.Minute); err != nil {
		b.Fatal(err)
	}
	targets := []load.Target{{Name: "echo", Method: "POST", Path: "/orders", Body: `{"id":"{{.ID}}"}`}}
	const d = 10 * time.Second
	const asked = 20000.0 // far above what two cores can send: the achieved rate is the saturation
	run := func(b *testing.B, rate float64, agents []load.Agent) load.Totals {
		c := load.Config{Targets: targets, Rate: rate, Duration: d, Dir: b.TempDir(), Seed: 1, RunID: "bench"}
		var r *load.Run
		var err error
		if agents == nil {
			c.BaseURL = hostURL
			r, err = load.Start(ctx, c)
		} else {
			c.BaseURL = fmt.Sprintf("http://echo.%s.svc:80", ns)
			r, err = load.StartAgents(ctx, c, agents)
		}
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(time.Until(r.Started().Add(d + time.Second)))
		r.Stop()
		agg, err := r.Wait()
		if err != nil {
			b.Fatal(err)
		}
		for _, a := range r.Agents() {
			if a.Lost != "" {
				b.Errorf("agent %s lost: %s", a.Name, a.Lost)
			}
		}
		return agg.Totals()
	}
	sent := func(t load.Totals) float64 { return float64(t.Requests-t.NotSent) / d.Seconds() }
	b.Run("host", func(b *testing.B) {
		for range b.N {
			t := run(b, asked, nil)
			b.ReportMetric(sent(t), "sent_req/s")
			b.ReportMetric(float64(t.Failed-t.NotSent), "failed_sent")
		}
	})
	for n := 1; n <= 3; n++ {
		b.Run(fmt.Sprintf("agents-%d", n), func(b *testing.B) {
			for range b.N {
				agents, remove, err := ops.LoadAgents(ctx, ns, workloads.OrdersImage, n, 2*time.Minute)
				if remove != nil {
					defer remove(ctx)
				}
				if err != nil {
					b.Fatal(err)
				}
				nodes := map[string]bool{}
				for _, a := range agents {
					nodes[a.Node] = true
				}
				t := run(b, asked, agents)
				b.ReportMetric(sent(t), "sent_req/s")
				b.ReportMetric(float64(len(nodes)), "nodes")
				b.ReportMetric(float64(t.Failed-t.NotSent), "failed_sent")
			}
		})
	}
	b.Run("fidelity-500/s-1-agent", func(b *testing.B) {
		for range b.N {
			agents, remove, err := ops.LoadAgents(ctx, ns, workloads.OrdersImage, 1, 2*time.Minute)
			if remove != nil {
				defer remove(ctx)
			}
			if err != nil {
				b.Fatal(err)
			}
			t := run(b, 500, agents)
			b.ReportMetric(sent(t)/500, "fidelity")
			b.ReportMetric(float64(t.NotSent), "not_sent")
			b.ReportMetric(t.LatencyMS["p99"], "p99_sched_ms")
			b.ReportMetric(t.LatencyMS["p99_sent"], "p99_sent_ms")
		}
	})
	b.Run("fidelity-500/s-host", func(b *testing.B) {
		for range b.N {
			t := run(b, 500, nil)
			b.ReportMetric(sent(t)/500, "fidelity")
			b.ReportMetric(float64(t.NotSent), "not_sent")
			b.ReportMetric(t.LatencyMS["p99"], "p99_sched_ms")
			b.ReportMetric(t.LatencyMS["p99_sent"], "p99_sent_ms")
		}
	})
}

// deployEcho runs two echo replicas (the orders image: this rehearse) behind Service echo, port 80,
// with a node port from the cluster's published range, and returns that port once both are ready.
func deployEcho(b *testing.B, ctx context.Context, cs kubernetes.Interface, ns string) int32 {
	b.Helper()
	labels := map[string]string{"app": "echo"}
	two := int32(2)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: &two, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "echo", Image: workloads.OrdersImage, ImagePullPolicy: corev1.PullIfNotPresent,
					Command:        []string{"/rehearse", "load-agent", "--echo", "--listen", ":8080"},
					Ports:          []corev1.ContainerPort{{ContainerPort: 8080}},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1},
				}}}}}}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: ns}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort,
		Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
	made, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "echo", metav1.GetOptions{})
		if err == nil && d.Status.ReadyReplicas == 2 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("echo not ready")
		}
	}
	return made.Spec.Ports[0].NodePort
}
