package workloads

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"

	"helm.sh/helm/v4/pkg/action"
	ci "helm.sh/helm/v4/pkg/chart"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/cli/values"
	"helm.sh/helm/v4/pkg/kube"
	kubefake "helm.sh/helm/v4/pkg/kube/fake"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage"
	"helm.sh/helm/v4/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Helm installs, upgrades and rolls back a release of a local chart through Helm's Go SDK (never a
// helm binary), in one namespace, storing its revisions as Helm does (Secrets in that namespace).
// It waits for nothing but hooks (Helm's hookOnly wait strategy): rehearse watches the rollout
// itself, as it does for plain manifests, so the load and the gates see the same rollout.
type Helm struct {
	cfg       *action.Configuration
	Namespace string
}

// HelmValues are a release's values: files (helm -f) and key=value settings (helm --set), the
// settings over the files.
type HelmValues struct {
	Files []string
	Set   map[string]string
}

// Merge reads the values as helm install -f ... --set ... would.
func (v HelmValues) Merge() (map[string]any, error) {
	opts := values.Options{ValueFiles: v.Files}
	for _, k := range slices.Sorted(maps.Keys(v.Set)) {
		opts.Values = append(opts.Values, k+"="+v.Set[k])
	}
	return opts.MergeValues(nil)
}

// LoadChart loads a local chart (a directory or a .tgz) and checks that every dependency it declares
// is vendored in its charts/ directory: a rehearsal downloads nothing.
func LoadChart(path string) (*chart.Chart, error) {
	ch, err := loader.Load(path)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", path, err)
	}
	if ch.Metadata != nil && len(ch.Metadata.Dependencies) > 0 {
		reqs := make([]ci.Dependency, len(ch.Metadata.Dependencies))
		for i, d := range ch.Metadata.Dependencies {
			reqs[i] = d
		}
		if err := action.CheckDependencies(ch, reqs); err != nil {
			return nil, fmt.Errorf("chart %s: %w (a rehearsal downloads nothing: vendor them, as helm dependency build does)", path, err)
		}
	}
	return ch, nil
}

// NewHelm is Helm acting in namespace of the cluster cfg reaches.
func NewHelm(cfg *rest.Config, namespace string) (*Helm, error) {
	b, err := Kubeconfig(cfg, "rehearse")
	if err != nil {
		return nil, err
	}
	raw, err := clientcmd.Load(b)
	if err != nil {
		return nil, err
	}
	g := &restGetter{cfg: cfg, raw: raw, namespace: namespace}
	ac := action.NewConfiguration()
	ac.SetLogger(slog.NewTextHandler(io.Discard, nil))
	if err := ac.Init(g, namespace, "secret"); err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	return &Helm{cfg: ac, Namespace: namespace}, nil
}

// HelmInstalled is the workload's release: Helm acting on it, its name, its chart's path and the
// values it was installed with (an upgrade's values go over them).
type HelmInstalled struct {
	*Helm
	Release string
	Chart   string
	Values  HelmValues
}

// Objects are the objects a release's manifest holds (for the workload to wait for and delete).
func (r HelmRelease) Objects(release string) ([]Manifest, error) {
	return parseManifests("helm release "+release, []byte(r.Manifest))
}

// HelmRelease is what a release's latest action left: its revision and the objects it rendered.
type HelmRelease struct {
	Revision int
	Manifest string
}

func released(r any, err error) (HelmRelease, error) {
	rel, ok := r.(*release.Release)
	if !ok || rel == nil {
		if err == nil {
			err = fmt.Errorf("helm returned no release (%T)", r)
		}
		return HelmRelease{}, err
	}
	return HelmRelease{Revision: rel.Version, Manifest: rel.Manifest}, err
}

// Install installs ch as release with vals.
func (h *Helm) Install(ctx context.Context, name string, ch *chart.Chart, vals map[string]any, timeout time.Duration) (HelmRelease, error) {
	in := action.NewInstall(h.cfg)
	in.ReleaseName, in.Namespace, in.Timeout = name, h.Namespace, timeout
	in.WaitStrategy = kube.HookOnlyStrategy
	in.ServerSideApply = true
	r, err := in.RunWithContext(ctx, ch, vals)
	rel, err := released(r, err)
	if err != nil {
		return rel, fmt.Errorf("helm install %s: %w", name, err)
	}
	return rel, nil
}

// Upgrade upgrades release to ch with vals (helm upgrade: the values given, not the last ones).
func (h *Helm) Upgrade(ctx context.Context, name string, ch *chart.Chart, vals map[string]any, timeout time.Duration) (HelmRelease, error) {
	up := action.NewUpgrade(h.cfg)
	up.Namespace, up.Timeout = h.Namespace, timeout
	up.WaitStrategy = kube.HookOnlyStrategy
	r, err := up.RunWithContext(ctx, name, ch, vals)
	rel, err := released(r, err)
	if err != nil {
		return rel, fmt.Errorf("helm upgrade %s: %w", name, err)
	}
	return rel, nil
}

// Rollback rolls release back to revision (0: the one before the current), as helm rollback does,
// and returns the release's new current revision.
func (h *Helm) Rollback(ctx context.Context, name string, revision int, timeout time.Duration) (HelmRelease, error) {
	rb := action.NewRollback(h.cfg)
	rb.Version, rb.Timeout = revision, timeout
	rb.WaitStrategy = kube.HookOnlyStrategy
	if err := rb.Run(name); err != nil {
		return HelmRelease{}, fmt.Errorf("helm rollback %s: %w", name, err)
	}
	return h.Current(name)
}

// Current is the release's current revision.
func (h *Helm) Current(name string) (HelmRelease, error) {
	r, err := action.NewGet(h.cfg).Run(name)
	rel, err := released(r, err)
	if err != nil {
		return rel, fmt.Errorf("helm get %s: %w", name, err)
	}
	return rel, nil
}

// Kubeconfig is a kubeconfig holding one cluster, one user and one context (name), made from cfg:
// what a host command of a rehearsal gets, so that kubectl reaches the rehearsal's cluster and no
// other (the user's own kubeconfig may name production).
func Kubeconfig(cfg *rest.Config, name string) ([]byte, error) {
	c := clientcmdapi.NewConfig()
	cl := clientcmdapi.NewCluster()
	cl.Server = cfg.Host
	cl.CertificateAuthority, cl.CertificateAuthorityData = cfg.CAFile, cfg.CAData
	cl.InsecureSkipTLSVerify, cl.TLSServerName = cfg.Insecure, cfg.ServerName
	u := clientcmdapi.NewAuthInfo()
	u.ClientCertificate, u.ClientCertificateData = cfg.CertFile, cfg.CertData
	u.ClientKey, u.ClientKeyData = cfg.KeyFile, cfg.KeyData
	u.Token, u.TokenFile = cfg.BearerToken, cfg.BearerTokenFile
	u.Username, u.Password = cfg.Username, cfg.Password
	u.Exec, u.AuthProvider = cfg.ExecProvider, cfg.AuthProvider
	ctx := clientcmdapi.NewContext()
	ctx.Cluster, ctx.AuthInfo = name, name
	c.Clusters[name], c.AuthInfos[name], c.Contexts[name] = cl, u, ctx
	c.CurrentContext = name
	return clientcmd.Write(*c)
}

// ErrNoPreviousRevision is Rollback's error when the release has one revision only.
var ErrNoPreviousRevision = errors.New("the release has no earlier revision to roll back to")

// restGetter gives Helm's kube client the rehearsal's cluster, with the release's namespace as the
// namespace of the objects that name none (Helm's kube client follows its own namespace, not
// Install.Namespace).
type restGetter struct {
	cfg       *rest.Config
	raw       *clientcmdapi.Config
	namespace string
}

func (g *restGetter) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(g.cfg), nil }

func (g *restGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(g.cfg)
	if err != nil {
		return nil, err
	}
	return memory.NewMemCacheClient(dc), nil
}

func (g *restGetter) ToRESTMapper() (meta.RESTMapper, error) {
	dc, err := g.ToDiscoveryClient()
	if err != nil {
		return nil, err
	}
	return restmapper.NewDeferredDiscoveryRESTMapper(dc), nil
}

func (g *restGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	return clientcmd.NewDefaultClientConfig(*g.raw, &clientcmd.ConfigOverrides{Context: clientcmdapi.Context{Namespace: g.namespace}})
}

// RenderChart renders a local chart with vals as helm template does (no cluster: the objects an
// install would make, with the release name given).
func RenderChart(ch *chart.Chart, release, namespace string, vals map[string]any) ([]Manifest, error) {
	ac := action.NewConfiguration()
	ac.SetLogger(slog.NewTextHandler(io.Discard, nil))
	ac.Releases = storage.Init(driver.NewMemory())
	ac.KubeClient = &kubefake.PrintingKubeClient{Out: io.Discard}
	ac.Capabilities = common.DefaultCapabilities
	in := action.NewInstall(ac)
	in.ReleaseName, in.Namespace = release, namespace
	in.DryRunStrategy = action.DryRunClient
	in.Replace = true
	in.WaitStrategy = kube.HookOnlyStrategy
	r, err := in.Run(ch, vals)
	rel, err := released(r, err)
	if err != nil {
		return nil, fmt.Errorf("helm template %s: %w", release, err)
	}
	return rel.Objects(release)
}
