package clusters

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
)

// Allowed says whether rehearse may change the cluster behind a kubeconfig context. A rehearsal
// creates and deletes namespaces, scales workloads and injects faults, so only kind contexts (kind-*)
// and contexts the user named (--allow-context) are allowed: pointing a CI job at the wrong context
// must not take production down.
func Allowed(context string, allow []string) error {
	if strings.HasPrefix(context, "kind-") || slices.Contains(allow, context) {
		return nil
	}
	return fmt.Errorf("context %q is not on the allow-list: a rehearsal creates and deletes namespaces and "+
		"injects faults there; pass --allow-context %s if that is what you want (kind-* contexts are allowed)", context, context)
}

// Existing is a cluster reached through a kubeconfig context. When the context's API server is a
// kind cluster on this docker engine, Kind is that cluster (images can then be loaded into its nodes
// and its published NodePort range is known).
type Existing struct {
	Config *rest.Config
	Kind   *Cluster
}

// OpenExisting loads context from kubeconfig ("" means $KUBECONFIG or ~/.kube/config), checks the API
// server answers, and recognises a local kind cluster behind it.
func OpenExisting(ctx context.Context, kubeconfig, context string) (*Existing, error) {
	cfg, err := RESTConfig(kubeconfig, context)
	if err != nil {
		return nil, err
	}
	probe := rest.CopyConfig(cfg)
	probe.Timeout = 15 * time.Second
	dc, err := discovery.NewDiscoveryClientForConfig(probe)
	if err != nil {
		return nil, err
	}
	if _, err := dc.ServerVersion(); err != nil {
		return nil, fmt.Errorf("context %q: API server %s does not answer: %w", context, cfg.Host, err)
	}
	e := &Existing{Config: cfg}
	e.Kind = kindBehind(cfg.Host, kubeconfig, context)
	return e, nil
}

// kindBehind finds the local kind cluster whose API server is published at host (https://127.0.0.1:PORT).
func kindBehind(host, kubeconfig, context string) *Cluster {
	u, err := url.Parse(host)
	if err != nil || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost") {
		return nil
	}
	p := provider(nil)
	names, err := p.List()
	if err != nil {
		return nil
	}
	for _, n := range names {
		kc, err := p.KubeConfig(n, false)
		if err != nil {
			continue
		}
		if strings.Contains(kc, "server: https://127.0.0.1:"+u.Port()+"\n") {
			return &Cluster{Name: n, Context: context, Kubeconfig: kubeconfig, provider: p, NodePorts: publishedNodePorts(n)}
		}
	}
	return nil
}
