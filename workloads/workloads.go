// Package workloads owns the sample workloads rehearsals run against, their images and manifests:
// today orders-postgres, the orders app (package orders) on PostgreSQL 15 with streaming replicas.
// It deploys a sample into a namespace, waits until it is ready, runs its schema migrations as Jobs,
// tears it down, and reads its data back: per-replica checksums and which acknowledged ids exist.
package workloads

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"text/template"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/e2e-framework/klient/decoder"
	"sigs.k8s.io/e2e-framework/klient/k8s"
	"sigs.k8s.io/e2e-framework/klient/k8s/resources"
	"sigs.k8s.io/e2e-framework/klient/wait"
	"sigs.k8s.io/e2e-framework/klient/wait/conditions"

	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/workloads/orders"
)

// SampleOptions configure the orders-postgres sample.
type SampleOptions struct {
	Namespace   string
	Version     orders.Version // initial app version; default v1
	AppReplicas int            // default 3
	DBReplicas  int            // default 3: a primary and two streaming replicas
	NodePort    int32          // the app's NodePort (answers on 127.0.0.1 of a rehearse kind cluster); 0: one the cluster allocates
	StorageSize string         // per database member; default 256Mi
	// Replication is async (default) or sync: synchronous_commit = on with any one standby
	// (synchronous_standby_names = 'ANY 1 (*)'), so that a commit returns once a standby flushed it.
	Replication string
	// NamespaceMeta: labels and annotations of Namespace when it is created (workload.namespace).
	NamespaceMeta *scenarios.NamespaceMeta
	// OrdersImage and PostgresImage default to the locally built images; PullPolicy to Never (they
	// are loaded into nodes, never pulled).
	OrdersImage, PostgresImage, PullPolicy string
}

func (o *SampleOptions) defaults() {
	if o.Version == "" {
		o.Version = orders.V1
	}
	if o.AppReplicas == 0 {
		o.AppReplicas = 3
	}
	if o.DBReplicas == 0 {
		o.DBReplicas = 3
	}
	if o.Replication == "" {
		o.Replication = "async"
	}
	if o.StorageSize == "" {
		o.StorageSize = "256Mi"
	}
	if o.OrdersImage == "" {
		o.OrdersImage = OrdersImage
	}
	if o.PostgresImage == "" {
		o.PostgresImage = PostgresImage
	}
	if o.PullPolicy == "" {
		o.PullPolicy = string(corev1.PullNever)
	}
}

// Sample is a deployed orders-postgres sample.
type Sample struct {
	Options SampleOptions
	r       *resources.Resources
	cs      kubernetes.Interface
}

type renderData struct {
	SampleOptions
	SuperPassword, ReplicationPassword, AppPassword string
}

func secret() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func render(name string, data any) (string, error) {
	t, err := template.New(name).Option("missingkey=error").ParseFS(files, "manifests/"+name)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// DeploySample creates the namespace and every object of the sample, migrates the schema to what the
// initial version needs (v1: create; v2, v2-bad: expand; v3: contract), and waits (up to timeout)
// until the database members and app replicas are ready.
func DeploySample(ctx context.Context, cfg *rest.Config, opts SampleOptions, timeout time.Duration) (*Sample, error) {
	opts.defaults()
	if opts.Namespace == "" {
		return nil, fmt.Errorf("sample: namespace is required")
	}
	if _, err := orders.ParseVersion(string(opts.Version)); err != nil {
		return nil, err
	}
	if opts.Replication != "async" && opts.Replication != "sync" {
		return nil, fmt.Errorf("sample: replication %q: want async or sync", opts.Replication)
	}
	ops, err := NewOps(cfg)
	if err != nil {
		return nil, err
	}
	r := ops.r
	s := &Sample{Options: opts, r: r, cs: ops.cs}
	if err := ops.ensureNamespace(ctx, opts.Namespace, opts.NamespaceMeta); err != nil {
		return nil, err
	}
	manifest, err := render("orders-postgres.yaml", renderData{opts, secret(), secret(), secret()})
	if err != nil {
		return nil, err
	}
	if err := decoder.DecodeEach(ctx, strings.NewReader(manifest), decoder.CreateHandler(r)); err != nil {
		return nil, fmt.Errorf("create sample objects: %w", err)
	}
	if s.Options.NodePort == 0 {
		port, err := ops.NodePort(ctx, opts.Namespace, "orders")
		if err != nil {
			return s, err
		}
		s.Options.NodePort = int32(port)
	}
	deadline := time.Now().Add(timeout)
	schema := map[orders.Version]string{orders.V1: "create", orders.V2: "expand", orders.V2Bad: "expand", orders.V3: "contract"}[opts.Version]
	// The schema Job starts beside the database members, not after them: it waits for the primary
	// itself (orders migrate connects with retries), so its pod is scheduled and started while the
	// members come up. One after the other, the deploy took ~4 s longer.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.waitDB(gctx, time.Until(deadline)) })
	g.Go(func() error { return s.Migrate(gctx, "up", schema, time.Until(deadline)) })
	if err := g.Wait(); err != nil {
		return s, err
	}
	if err := s.WaitApp(ctx, time.Until(deadline)); err != nil {
		return s, err
	}
	return s, nil
}

// URL is where the app answers on the host (the NodePort on 127.0.0.1).
func (s *Sample) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.Options.NodePort) }

func (s *Sample) waitDB(ctx context.Context, timeout time.Duration) error {
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "orders-db", Namespace: s.Options.Namespace}}
	err := wait.For(conditions.New(s.r).ResourceMatch(sts, func(o k8s.Object) bool {
		st := o.(*appsv1.StatefulSet)
		return st.Status.ReadyReplicas == int32(s.Options.DBReplicas) && st.Status.ObservedGeneration >= st.Generation
	}), wait.WithContext(ctx), wait.WithTimeout(timeout), wait.WithInterval(500*time.Millisecond))
	if err != nil {
		return fmt.Errorf("database members not ready (%d wanted): %w; %s", s.Options.DBReplicas, err, s.podSummary(ctx, "app=orders-db"))
	}
	return nil
}

// WaitApp waits until the app Deployment has rolled out completely: every replica updated and
// available, and no pod of an earlier version left, not even one still draining (it would still
// answer requests that reach it).
func (s *Sample) WaitApp(ctx context.Context, timeout time.Duration) error {
	if err := s.ops().WaitRolledOut(ctx, s.Options.Namespace, "deployment/orders", timeout); err != nil {
		return fmt.Errorf("orders app not ready: %w; %s", err, s.podSummary(ctx, "app=orders"))
	}
	return nil
}

func (s *Sample) ops() *Ops { return &Ops{cs: s.cs, r: s.r} }

func (s *Sample) podSummary(ctx context.Context, selector string) string {
	var pods corev1.PodList
	if err := s.r.WithNamespace(s.Options.Namespace).List(ctx, &pods, resources.WithLabelSelector(selector)); err != nil {
		return err.Error()
	}
	var parts []string
	for _, p := range pods.Items {
		ready := false
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				ready = c.Status == corev1.ConditionTrue
			}
		}
		parts = append(parts, fmt.Sprintf("%s %s ready=%v", p.Name, p.Status.Phase, ready))
	}
	return "pods: " + strings.Join(parts, ", ")
}

// Migrate runs one schema migration step (direction up or down; step create, expand, backfill or
// contract) as a Job and waits for it; a failed Job's error carries its logs.
func (s *Sample) Migrate(ctx context.Context, direction, step string, timeout time.Duration) error {
	if direction != "up" && direction != "down" {
		return fmt.Errorf("migration direction %q: want up or down", direction)
	}
	name := fmt.Sprintf("orders-migrate-%s-%s-%d", direction, step, time.Now().UnixMilli()%100000)
	manifest, err := render("orders-migrate-job.yaml", map[string]any{
		"Name": name, "Namespace": s.Options.Namespace, "OrdersImage": s.Options.OrdersImage,
		"PullPolicy": s.Options.PullPolicy, "Direction": direction, "Step": step, "BatchSize": 500,
	})
	if err != nil {
		return err
	}
	var job batchv1.Job
	if err := decoder.DecodeString(manifest, &job); err != nil {
		return err
	}
	if err := s.r.Create(ctx, &job); err != nil {
		return err
	}
	var finished batchv1.JobConditionType
	err = wait.For(conditions.New(s.r).ResourceMatch(&job, func(o k8s.Object) bool {
		for _, c := range o.(*batchv1.Job).Status.Conditions {
			if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
				finished = c.Type
				return true
			}
		}
		return false
	}), wait.WithContext(ctx), wait.WithTimeout(timeout), wait.WithInterval(500*time.Millisecond))
	if err == nil && finished == batchv1.JobComplete {
		return nil
	}
	logs := s.jobLogs(ctx, name)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return Failed(fmt.Errorf("migration %s %s did not finish: %w; logs:\n%s", direction, step, err, logs))
	}
	return Failed(fmt.Errorf("migration %s %s failed; logs:\n%s", direction, step, logs))
}

func (s *Sample) jobLogs(ctx context.Context, job string) string {
	pods, err := s.cs.CoreV1().Pods(s.Options.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + job})
	if err != nil {
		return err.Error()
	}
	var out strings.Builder
	for _, p := range pods.Items {
		b, err := s.cs.CoreV1().Pods(s.Options.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			fmt.Fprintf(&out, "[%s] logs unavailable: %v\n", p.Name, err)
			continue
		}
		fmt.Fprintf(&out, "[%s]\n%s", p.Name, b)
	}
	return out.String()
}

// SetVersion rolls the app to version v (a rolling update of the Deployment) and waits for it.
func (s *Sample) SetVersion(ctx context.Context, v orders.Version, timeout time.Duration) error {
	if _, err := orders.ParseVersion(string(v)); err != nil {
		return err
	}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: s.Options.Namespace}}
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"orders","env":[{"name":"ORDERS_VERSION","value":%q}]}]}}}}`, v)
	if err := s.r.Patch(ctx, d, k8s.Patch{PatchType: "application/strategic-merge-patch+json", Data: []byte(patch)}); err != nil {
		return err
	}
	return s.WaitApp(ctx, timeout)
}

// Teardown deletes the sample's namespace (with its volumes) and waits until it is gone.
func (s *Sample) Teardown(ctx context.Context, timeout time.Duration) error {
	return s.ops().DeleteNamespace(ctx, s.Options.Namespace, timeout)
}

// DeleteSample deletes a sample deployed earlier (by namespace).
func DeleteSample(ctx context.Context, cfg *rest.Config, namespace string, timeout time.Duration) error {
	ops, err := NewOps(cfg)
	if err != nil {
		return err
	}
	return ops.DeleteNamespace(ctx, namespace, timeout)
}
