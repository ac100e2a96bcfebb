//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/klient/k8s"
	"sigs.k8s.io/e2e-framework/klient/wait"
	"sigs.k8s.io/e2e-framework/klient/wait/conditions"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/rehearse-dev/rehearse/clusters"
)

const controlPlaneLabel = "node-role.kubernetes.io/control-plane"

func TestNodesReady(t *testing.T) {
	f := features.New("1 control-plane + the workers asked for, all Ready").
		Assess("node roles and readiness", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			var nodes corev1.NodeList
			if err := cfg.Client().Resources().List(ctx, &nodes); err != nil {
				t.Fatal(err)
			}
			var cps, workers, lane int
			for _, n := range nodes.Items {
				_, cp := n.Labels[controlPlaneLabel]
				switch {
				case cp:
					cps++
				case n.Labels[clusters.PoolKey] == faultLane:
					lane++
					tainted := false
					for _, tn := range n.Spec.Taints {
						tainted = tainted || (tn.Key == clusters.PoolKey && tn.Value == faultLane && tn.Effect == corev1.TaintEffectNoSchedule)
					}
					if !tainted {
						t.Errorf("lane node %s is not tainted %s=%s:NoSchedule: %v", n.Name, clusters.PoolKey, faultLane, n.Spec.Taints)
					}
				default:
					workers++
				}
				if !ready(&n) {
					t.Errorf("node %s is not Ready", n.Name)
				}
				if v := n.Status.NodeInfo.KubeletVersion; v != "v1.34.4" {
					t.Errorf("node %s runs kubelet %s, want v1.34.4", n.Name, v)
				}
			}
			if cps != 1 || workers != e2eWorkers || lane != faultLaneWorkers {
				t.Errorf("got %d control-plane, %d worker and %d fault-lane nodes, want 1, %d and %d", cps, workers, lane, e2eWorkers, faultLaneWorkers)
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// The fault lane holds what asks for it and nothing else: a pod in a namespace annotated for it
// (clusters.PoolAnnotations, read by the admission plugins the cluster enables) is scheduled on a
// lane node; a pod in a plain namespace, and the cluster's DNS, on none.
func TestFaultLaneIsolates(t *testing.T) {
	f := features.New("the fault lane").
		Assess("an annotated namespace's pod runs on the lane; others, CoreDNS included, never do", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			cs, err := kubernetes.NewForConfig(cfg.Client().RESTConfig())
			if err != nil {
				t.Fatal(err)
			}
			nodeOf := func(ns string, annotations map[string]string) string {
				t.Helper()
				if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Annotations: annotations}}, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
				pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "c", Image: probeImage, ImagePullPolicy: corev1.PullNever}}}}
				if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
					if p, err := cs.CoreV1().Pods(ns).Get(ctx, "p", metav1.GetOptions{}); err == nil && p.Spec.NodeName != "" {
						return p.Spec.NodeName
					}
				}
				t.Fatalf("pod in %s never scheduled", ns)
				return ""
			}
			inLane := func(node string) bool {
				n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
				return err == nil && n.Labels[clusters.PoolKey] == faultLane
			}
			if n := nodeOf("lane-check-in", clusters.PoolAnnotations(faultLane)); !inLane(n) {
				t.Errorf("a pod of an annotated namespace ran on %s, outside the lane", n)
			}
			if n := nodeOf("lane-check-out", nil); inLane(n) {
				t.Errorf("a pod of a plain namespace ran on %s, in the lane", n)
			}
			dns, err := cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
			if err != nil || len(dns.Items) == 0 {
				t.Fatalf("CoreDNS pods: %v", err)
			}
			for _, p := range dns.Items {
				if inLane(p.Spec.NodeName) {
					t.Errorf("CoreDNS pod %s runs on %s, in the lane: a drain or a node loss there would take the cluster's DNS", p.Name, p.Spec.NodeName)
				}
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

func TestServiceDNS(t *testing.T) {
	t.Parallel() // on the workers outside the lane, beside the rehearsals: it used to hold the suite's start
	f := features.New("CoreDNS answers a Service name").
		Assess("a pod resolves <svc>.<ns>.svc.cluster.local to the Service's ClusterIP and reaches it", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			ns := namespace(ctx, t, cfg)
			startServer(ctx, t, cfg, ns, "echo", "", nil)
			svc := service(ctx, t, cfg, ns, "echo", corev1.ServiceTypeClusterIP, 0)
			name := "echo." + ns + ".svc.cluster.local"
			out := runPod(ctx, t, cfg, ns, "lookup", "", []string{"lookup", name})
			if got := strings.Fields(out); len(got) != 1 || got[0] != svc.Spec.ClusterIP {
				t.Errorf("lookup %s = %q, want the ClusterIP %s", name, out, svc.Spec.ClusterIP)
			}
			body := runPod(ctx, t, cfg, ns, "get-by-name", "", []string{"get", "http://" + name + "/by-name"})
			if !strings.Contains(body, "/by-name") {
				t.Errorf("GET through the Service name answered %q", body)
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

func TestPodNetworkAcrossNodes(t *testing.T) {
	t.Parallel() // on the workers outside the lane, beside the rehearsals: it used to hold the suite's start
	f := features.New("pod on worker 1 reaches pod on worker 2").
		Assess("HTTP from worker 2's pod to worker 1's pod IP", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			ns := namespace(ctx, t, cfg)
			w := workers(ctx, t, cfg)
			server := startServer(ctx, t, cfg, ns, "server", w[0], nil)
			if server.Spec.NodeName != w[0] {
				t.Fatalf("server pod landed on %s, want %s", server.Spec.NodeName, w[0])
			}
			out := runPod(ctx, t, cfg, ns, "client", w[1], []string{"get", "http://" + server.Status.PodIP + ":8080/across"})
			if !strings.HasPrefix(out, "server /across") {
				t.Errorf("client on %s got %q from server %s on %s", w[1], out, server.Status.PodIP, w[0])
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

func TestLocalPathVolume(t *testing.T) {
	t.Parallel() // on the workers outside the lane, beside the rehearsals: it used to hold the suite's start
	f := features.New("default StorageClass provisions local-path volumes on workers").
		Assess("a PVC is bound and written through local-path on a worker", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			ns := namespace(ctx, t, cfg)
			w := workers(ctx, t, cfg)
			pvc := &corev1.PersistentVolumeClaim{
				ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: ns},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceStorage: resource.MustParse("16Mi"),
					}},
				},
			}
			if err := cfg.Client().Resources().Create(ctx, pvc); err != nil {
				t.Fatal(err)
			}
			vol := []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}
			out := runPodWith(ctx, t, cfg, ns, "writer", w[1], []string{"write", "/data/hello", "rehearsed"}, vol)
			if strings.TrimSpace(out) != "rehearsed" {
				t.Errorf("writer read back %q", out)
			}
			if err := cfg.Client().Resources().Get(ctx, "data", ns, pvc); err != nil {
				t.Fatal(err)
			}
			if pvc.Status.Phase != corev1.ClaimBound {
				t.Fatalf("PVC phase %s, want Bound", pvc.Status.Phase)
			}
			var pv corev1.PersistentVolume
			if err := cfg.Client().Resources().Get(ctx, pvc.Spec.VolumeName, "", &pv); err != nil {
				t.Fatal(err)
			}
			if pv.Spec.StorageClassName != "standard" {
				t.Errorf("PV storage class %q, want the default %q", pv.Spec.StorageClassName, "standard")
			}
			if got := fmt.Sprint(pv.Spec.NodeAffinity); !strings.Contains(got, w[1]) {
				t.Errorf("PV node affinity %s does not name worker %s", got, w[1])
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

func TestNodePortOnLoopback(t *testing.T) {
	t.Parallel() // on the workers outside the lane, beside the rehearsals: it used to hold the suite's start
	nodePort := int32(shared.NodePorts.First + 8)
	f := features.New("a NodePort Service answers on 127.0.0.1").
		Assess("GET 127.0.0.1:<nodePort> from the host", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			ns := namespace(ctx, t, cfg)
			w := workers(ctx, t, cfg)
			// The server runs on a worker: the control-plane node publishes the port and forwards.
			startServer(ctx, t, cfg, ns, "web", w[0], nil)
			service(ctx, t, cfg, ns, "web", corev1.ServiceTypeNodePort, nodePort)
			url := fmt.Sprintf("http://127.0.0.1:%d/loopback", nodePort)
			var last error
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				body, err := httpGet(url)
				if err == nil {
					if !strings.Contains(body, "/loopback") {
						t.Fatalf("GET %s answered %q", url, body)
					}
					return ctx
				}
				last = err
				time.Sleep(time.Second)
			}
			t.Fatalf("GET %s never answered: %v", url, last)
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// --- helpers ---

func ready(n *corev1.Node) bool {
	c := nodeCondition(n, corev1.NodeReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

func httpGet(url string) (string, error) {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return string(b), nil
}

// namespace creates a namespace for one test and deletes it when the test ends.
func namespace(ctx context.Context, t *testing.T, cfg *envconf.Config) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: envconf.RandomName("e2e", 12)}}
	if err := cfg.Client().Resources().Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cfg.Client().Resources().Delete(context.Background(), ns) })
	return ns.Name
}

// workers names the worker nodes outside the fault lane, sorted.
func workers(ctx context.Context, t *testing.T, cfg *envconf.Config) []string {
	t.Helper()
	var nodes corev1.NodeList
	if err := cfg.Client().Resources().List(ctx, &nodes); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes.Items {
		// The fault lane's workers are tainted: a pod pinned there without the toleration is
		// refused by their kubelet. The checks run on the others.
		if _, cp := n.Labels[controlPlaneLabel]; !cp && n.Labels[clusters.PoolKey] == "" {
			names = append(names, n.Name)
		}
	}
	sort.Strings(names)
	if len(names) < 2 {
		t.Fatalf("need 2 workers, have %v", names)
	}
	return names
}

func probePod(ns, name, node string, args []string, restart corev1.RestartPolicy, vols []corev1.Volume) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			RestartPolicy: restart,
			Containers: []corev1.Container{{
				Name: "probe", Image: probeImage, ImagePullPolicy: corev1.PullNever, Args: args,
			}},
			Volumes: vols,
		},
	}
	for _, v := range vols {
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: v.Name, MountPath: "/" + v.Name})
	}
	if node != "" {
		p.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": node}
	}
	return p
}

// startServer runs `probe serve` in a pod (on node when given) and waits until it is Ready.
func startServer(ctx context.Context, t *testing.T, cfg *envconf.Config, ns, name, node string, vols []corev1.Volume) *corev1.Pod {
	t.Helper()
	p := probePod(ns, name, node, []string{"serve"}, corev1.RestartPolicyAlways, vols)
	p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080}}
	p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
		HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1}
	r := cfg.Client().Resources()
	if err := r.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := wait.For(conditions.New(r).PodReady(p), wait.WithTimeout(2*time.Minute), wait.WithContext(ctx)); err != nil {
		t.Fatalf("server pod %s/%s not ready: %v", ns, name, err)
	}
	if err := r.Get(ctx, name, ns, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func service(ctx context.Context, t *testing.T, cfg *envconf.Config, ns, name string, typ corev1.ServiceType, nodePort int32) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Type:     typ,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), NodePort: nodePort}},
		},
	}
	if err := cfg.Client().Resources().Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	return svc
}

// runPod runs `probe ARGS` to completion (on node when given) and returns its output; the test fails
// when the pod does not succeed.
func runPod(ctx context.Context, t *testing.T, cfg *envconf.Config, ns, name, node string, args []string) string {
	return runPodWith(ctx, t, cfg, ns, name, node, args, nil)
}

func runPodWith(ctx context.Context, t *testing.T, cfg *envconf.Config, ns, name, node string, args []string, vols []corev1.Volume) string {
	t.Helper()
	p := probePod(ns, name, node, args, corev1.RestartPolicyNever, vols)
	r := cfg.Client().Resources()
	if err := r.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	err := wait.For(conditions.New(r).ResourceMatch(p, func(o k8s.Object) bool {
		ph := o.(*corev1.Pod).Status.Phase
		return ph == corev1.PodSucceeded || ph == corev1.PodFailed
	}), wait.WithTimeout(3*time.Minute), wait.WithContext(ctx))
	logs := podLogs(ctx, t, cfg, ns, name)
	if err != nil {
		t.Fatalf("pod %s/%s did not finish: %v (status %+v; logs %q)", ns, name, err, p.Status, logs)
	}
	if p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("pod %s/%s %v: %s", ns, name, args, logs)
	}
	return logs
}

func podLogs(ctx context.Context, t *testing.T, cfg *envconf.Config, ns, name string) string {
	cs, err := kubernetes.NewForConfig(cfg.Client().RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	b, err := cs.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{Container: "probe"}).DoRaw(ctx)
	if err != nil {
		return "(logs unavailable: " + err.Error() + ")"
	}
	return string(b)
}
