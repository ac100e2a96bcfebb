package clusters

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/e2e-framework/klient"
	"sigs.k8s.io/e2e-framework/klient/k8s"
	"sigs.k8s.io/e2e-framework/klient/wait"
	"sigs.k8s.io/e2e-framework/klient/wait/conditions"
)

// RESTConfig loads the client configuration of context from kubeconfig ("" means $KUBECONFIG or
// ~/.kube/config).
func RESTConfig(kubeconfig, context string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig context %q: %w", context, err)
	}
	// client-go's default (5 requests/s) throttles a drain's, a gate's and a rollout's polls that
	// run at once, and delays them by seconds: a rehearsal watches one cluster from one process.
	cfg.QPS, cfg.Burst = 50, 100
	return cfg, nil
}

// RESTConfig is the client configuration of this cluster.
func (c *Cluster) RESTConfig() (*rest.Config, error) { return RESTConfig(c.Kubeconfig, c.Context) }

// Client is an e2e-framework client for this cluster.
func (c *Cluster) Client() (klient.Client, error) {
	cfg, err := c.RESTConfig()
	if err != nil {
		return nil, err
	}
	return klient.New(cfg)
}

// systemWorkloads must be available before a cluster is handed out: DNS, pod network, proxy, storage.
var (
	systemDeployments = [][2]string{{"kube-system", "coredns"}, {"local-path-storage", "local-path-provisioner"}}
	systemDaemonSets  = [][2]string{{"kube-system", "kube-proxy"}, {"kube-flannel", "kube-flannel-ds"}}
)

// WaitReady waits until wantNodes nodes are Ready and the system add-ons are available. The error
// names what was still not ready.
func (c *Cluster) WaitReady(ctx context.Context, timeout time.Duration, wantNodes int) error {
	cl, err := c.Client()
	if err != nil {
		return err
	}
	r := cl.Resources()
	cond := conditions.New(r)
	deadline := time.Now().Add(timeout)
	opts := func() []wait.Option {
		left := time.Until(deadline)
		if left < time.Second {
			left = time.Second
		}
		return []wait.Option{wait.WithContext(ctx), wait.WithTimeout(left), wait.WithInterval(2 * time.Second), wait.WithImmediate()}
	}
	if err := wait.For(cond.ResourceListMatchN(&corev1.NodeList{}, wantNodes, func(o k8s.Object) bool {
		return nodeReady(o.(*corev1.Node))
	}), opts()...); err != nil {
		return fmt.Errorf("waiting for %d Ready nodes: %w; nodes: %s", wantNodes, err, c.describeNodes(ctx, cl))
	}
	for _, d := range systemDeployments {
		if err := wait.For(cond.DeploymentAvailable(d[1], d[0]), opts()...); err != nil {
			return fmt.Errorf("waiting for deployment %s/%s to be available: %w", d[0], d[1], err)
		}
	}
	for _, d := range systemDaemonSets {
		ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: d[0], Name: d[1]}}
		if err := wait.For(cond.DaemonSetReady(ds), opts()...); err != nil {
			return fmt.Errorf("waiting for daemonset %s/%s to be ready: %w", d[0], d[1], err)
		}
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (c *Cluster) describeNodes(ctx context.Context, cl klient.Client) string {
	var nodes corev1.NodeList
	if err := cl.Resources().List(ctx, &nodes); err != nil {
		return err.Error()
	}
	var parts []string
	for _, n := range nodes.Items {
		parts = append(parts, fmt.Sprintf("%s ready=%v", n.Name, nodeReady(&n)))
	}
	if len(parts) == 0 {
		return "none registered"
	}
	return strings.Join(parts, ", ")
}
