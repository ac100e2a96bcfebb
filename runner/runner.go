// Package runner owns one rehearsal from scenario to verdict: it writes the run's replay bundle
// first (package replay), gets the cluster (creates a kind cluster or reuses one), deploys the
// workload, runs load for the whole timeline while the steps execute, records every step as an event
// with start and end, verifies, writes the reports, and cleans up what it created — on success, on
// failure and on Ctrl-C.
package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/rehearse-dev/rehearse/clusters"
	"github.com/rehearse-dev/rehearse/faults"
	"github.com/rehearse-dev/rehearse/images"
	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/replay"
	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/runbook"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/steps"
	"github.com/rehearse-dev/rehearse/verify"
	"github.com/rehearse-dev/rehearse/workloads"
	"github.com/rehearse-dev/rehearse/workloads/orders"
)

// Options configure a run.
type Options struct {
	OutDir      string
	KeepCluster bool
	Seed        uint64
	// Progress receives a line every few seconds (step, elapsed, rate, errors so far); nil is quiet.
	Progress io.Writer
	// Kubeconfig and Context point the run at an existing cluster, overriding the scenario's cluster.
	Kubeconfig, Context string
	// AllowContexts are the non-kind contexts a rehearsal may change (see clusters.Allowed).
	AllowContexts []string
	// MetricsAddr, when set, serves the run's Prometheus metrics on http://ADDR/metrics while it runs
	// (port 0 picks one; the address is printed). metrics.prom is written at the end regardless.
	MetricsAddr string
	// Dir, when set, is the scenario's run directory, where its reports and replay bundle go (default
	// OutDir/<scenario>).
	Dir string
	// Args is the command line that started the run (os.Args), which the replay bundle records.
	Args []string
	// Replay is the bundle of the run this one replays (rehearse run --replay): the scenario is its
	// copy and Seed its seed. What could not be held equal (rehearse's build, the node image, the
	// workload's images) is warned of on Progress and recorded in this run's own bundle.
	Replay *replay.Bundle
}

// RunDir is where the reports of the scenario called name go.
func (o Options) RunDir(name string) string {
	if o.Dir != "" {
		return o.Dir
	}
	return filepath.Join(o.OutDir, name)
}

// HarnessError means the rehearsal could not run (exit 2), as opposed to a check failing (exit 1).
type HarnessError struct{ Err error }

func (e *HarnessError) Error() string { return e.Err.Error() }
func (e *HarnessError) Unwrap() error { return e.Err }

func harness(format string, args ...any) error { return &HarnessError{fmt.Errorf(format, args...)} }

// admissionHint points at the scenario's own namespace labels when pods were refused by the Pod
// Security level they set: the scenario, not the cluster, asked for it.
func admissionHint(err error, meta *scenarios.NamespaceMeta) string {
	if meta == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
		return ""
	}
	var set []string
	for k, v := range meta.Labels {
		if strings.HasPrefix(k, "pod-security.kubernetes.io/enforce") {
			set = append(set, k+": "+v)
		}
	}
	if len(set) == 0 {
		return ""
	}
	slices.Sort(set)
	return fmt.Sprintf(" (the scenario's workload.namespace.labels set %s: the pods must meet that level, or the label must go)", strings.Join(set, ", "))
}

// system is the workload under rehearsal: the sample or the user's own manifests.
type system struct {
	ns     string
	sample *workloads.Sample
	own    *workloads.Own
	helm   *workloads.HelmInstalled // the release a chart installed, or nil
	ops    *workloads.Ops
	url    string // default load base URL
	svc    string // the load's Service (sample: orders; own: load.service), in svcNS
	svcNS  string
}

// Schema is the JSON Schema of scenario files, its verify section from the table of checks.
func Schema() ([]byte, error) { return scenarios.Schema(verify.Table.Schema()) }

// Kinds is the table of step kinds a rehearsal knows: the runbook kinds, the migrations and the
// faults.
var Kinds = slices.Concat(steps.Builtin, migrate.Kinds, faults.Kinds)

// Check finds, before any cluster is touched, what a run would refuse or trip on: steps no kind
// implements, a kind's own settings, and checks not implemented yet. validate and run both call it.
func Check(sc *scenarios.Loaded) scenarios.Problems {
	ps := Kinds.Check(sc)
	if h := sc.Workload.Helm; h != nil {
		// The chart loads and needs nothing downloaded; its values files parse.
		if _, err := workloads.LoadChart(sc.Path(h.Chart)); err != nil {
			ps = append(ps, sc.Problem("workload.helm.chart", "%v", err))
		} else {
			v := workloads.HelmValues{Set: h.Set}
			for _, f := range h.Values {
				v.Files = append(v.Files, sc.Path(f))
			}
			if _, err := v.Merge(); err != nil {
				ps = append(ps, sc.Problem("workload.helm", "values: %v", err))
			}
		}
	}
	// The checks' options and what each needs of the scenario: the table's, like the steps'.
	for _, p := range verify.Table.Problems(sc) {
		ps = append(ps, sc.Problem(p.Field, "%s", p.Msg))
	}
	return ps
}

// Load reads a scenario file and checks it as a run would: the file's own problems and the step
// kinds' (a badly typed field hides none of the others). validate and run both call it.
// A Markdown runbook (FILE.md) is a scenario too (package runbook).
func Load(path string) (*scenarios.Loaded, error) {
	if runbook.IsRunbook(path) {
		rb, err := LoadRunbook(path)
		if err != nil {
			return nil, err
		}
		return rb.Loaded, nil
	}
	l, err := scenarios.LoadFile(path)
	if err == nil && l.Runbook != "" {
		return attached(l)
	}
	return checked(l, err)
}

// attached is a scenario file that names a runbook (runbook: FILE), with the runbook's blocks as its
// last steps, checked as Load does.
func attached(l *scenarios.Loaded) (*scenarios.Loaded, error) {
	rb, err := checkedRunbook(runbook.Attach(l))
	if err != nil {
		return nil, err
	}
	return rb.Loaded, nil
}

// checkedRunbook adds the step kinds' problems to a runbook's own, as checked does for a scenario.
func checkedRunbook(rb *runbook.Runbook, err error) (*runbook.Runbook, error) {
	if rb == nil || rb.Loaded == nil {
		return nil, err
	}
	if _, err := checked(rb.Loaded, err); err != nil {
		return nil, err
	}
	return rb, nil
}

// Plan is the runbook a scenario runs, for validate to print: a Markdown runbook's own, or the one a
// scenario file names; nil for a scenario that runs none.
func Plan(path string) (*runbook.Runbook, error) {
	if runbook.IsRunbook(path) {
		return LoadRunbook(path)
	}
	l, err := scenarios.LoadFile(path)
	if err != nil || l.Runbook == "" {
		return nil, err
	}
	return checkedRunbook(runbook.Attach(l))
}

// LoadRunbook reads a Markdown runbook and checks the scenario it makes as Load does.
func LoadRunbook(path string) (*runbook.Runbook, error) {
	rb, err := runbook.Load(path)
	if (rb == nil || rb.Loaded == nil) && err == nil {
		err = fmt.Errorf("%s: not a runbook", path)
	}
	return checkedRunbook(rb, err)
}

// LoadReplay reads a replay bundle's copy of its scenario, with the files it names where the bundle
// keeps them, and checks it as Load does.
// Host commands run where they ran (the original scenario's directory, while it is there): the
// files they name are not in the bundle.
func LoadReplay(b *replay.Bundle) (*scenarios.Loaded, error) {
	data, err := os.ReadFile(b.Scenario)
	if err != nil {
		return nil, err
	}
	var l *scenarios.Loaded
	if runbook.IsRunbook(b.Scenario) {
		rb, err := runbook.ParseRelocated(b.Scenario, data, b.Relocated)
		if rb == nil || rb.Loaded == nil {
			return nil, err
		}
		if l, err = checked(rb.Loaded, err); err != nil {
			return nil, err
		}
	} else {
		l, err = scenarios.ParseRelocated(b.Scenario, data, b.Relocated)
		if err == nil && l.Runbook != "" {
			l, err = attached(l)
		} else {
			l, err = checked(l, err)
		}
		if err != nil {
			return nil, err
		}
	}
	if dir := b.OriginalDir(); dirExists(dir) {
		l.HostDir = dir
		for i := range l.Steps {
			if r := l.Steps[i].Run; r != nil && r.Dir != "" && l.Runbook != "" && !filepath.IsAbs(l.Runbook) {
				r.Dir = filepath.Join(dir, filepath.Dir(filepath.FromSlash(l.Runbook)))
			}
		}
	}
	return l, nil
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// checked adds the step kinds' problems to a parsed scenario's own.
func checked(l *scenarios.Loaded, err error) (*scenarios.Loaded, error) {
	if l == nil {
		return nil, err
	}
	var ps scenarios.Problems
	if err != nil && !errors.As(err, &ps) {
		return nil, err
	}
	if all := ps.Merge(Check(l)); len(all) > 0 {
		return nil, all
	}
	l.Warnings = append(l.Warnings, unloadedImages(l)...)
	return l, nil
}

// unloadedImages warns, before any cluster is made, of the workload's containers that start only
// from an image already on their node (imagePullPolicy: Never) when the scenario loads no image of
// that name (workload.localImages, the archives of workload.images): the kubelet would refuse their
// pods (ErrImageNeverPull) once the cluster is up and the workload applied. A warning, not a refusal:
// an existing cluster's nodes may hold the image already. Manifests and kustomizations are read
// here; a chart's templates are not rendered before its install.
func unloadedImages(sc *scenarios.Loaded) scenarios.Problems {
	var ms []workloads.Manifest
	field := "workload.manifests"
	if len(sc.Workload.Manifests) > 0 {
		var paths []string
		for _, m := range sc.Workload.Manifests {
			paths = append(paths, sc.Path(m))
		}
		ms, _ = workloads.ReadManifests(paths) // a run reports its errors
	}
	if k := sc.Workload.Kustomize; k != "" {
		if more, err := workloads.Kustomize(sc.Path(k)); err == nil {
			ms = append(ms, more...)
		}
		if len(sc.Workload.Manifests) == 0 {
			field = "workload.kustomize"
		}
	}
	never := workloads.NeverPulledImages(ms)
	if len(never) == 0 {
		return nil
	}
	var ws scenarios.Problems
	loaded := slices.Clone(sc.Workload.LocalImages)
	for _, a := range sc.Workload.Images {
		tags, err := images.ArchiveTags(sc.Path(a))
		if err != nil {
			ws = append(ws, sc.Problem("workload.images", "%v", err))
		}
		loaded = append(loaded, tags...)
	}
	for _, n := range never {
		if slices.ContainsFunc(loaded, func(ref string) bool { return images.SameRef(ref, n.Image) }) {
			continue
		}
		ws = append(ws, sc.Problem(field, "%s (%s), container %s: image %s is never pulled (imagePullPolicy: Never), and the scenario loads no image of that name into the nodes: "+
			"its pod will not start (ErrImageNeverPull) unless the nodes already hold it. Name it in workload.localImages (an image on this machine's Docker) or its docker save archive in workload.images",
			n.Object, n.Source, n.Container, n.Image))
	}
	return ws
}

// loadConfig is the load of a scenario's run: its targets, rates and connections, with the run's
// seed (which plans the sequence of requests, load.Plan) and run ID (which prefixes their ids).
func loadConfig(sc *scenarios.Loaded, base, out string, seed uint64, runID string) load.Config {
	lcfg := load.Config{BaseURL: base, Rate: sc.Load.Rate.PerSecond, Timeout: sc.Load.Timeout.Duration, Seed: seed, Dir: out,
		RunID: runID, MaxInFlight: sc.Load.MaxInFlight, Lateness: sc.Load.Lateness.Duration,
		Connections: load.Connections{MaxAge: sc.Load.Connections.MaxAge.Duration, Fresh: sc.Load.Connections.Fresh,
			Clients: sc.Load.Connections.Clients},
		Version: sc.Load.VersionReader(), ClientRetries: sc.Load.ClientRetries == "allow"}
	for _, st := range sc.Load.Stages {
		lcfg.Stages = append(lcfg.Stages, load.Stage{Rate: st.Rate.PerSecond, Duration: st.Duration.Duration})
	}
	for _, t := range sc.Load.Targets {
		lcfg.Targets = append(lcfg.Targets, load.Target{Name: t.Name, Method: t.Method, Path: t.Path, Body: t.Body, Weight: t.Weight,
			Ledger: t.Ledger, Expect: t.Expect})
	}
	return lcfg
}

// acceptance is the default acceptance of a new version: the load's first ledger write target, read
// back by acked-writes-durable's rule (the sample: GET /orders/{{.ID}}, 200 when stored); nil when
// the load writes nothing it keeps a ledger of.
func acceptance(sc *scenarios.Loaded, runID string) *steps.Acceptance {
	i := slices.IndexFunc(sc.Load.Targets, func(t scenarios.Target) bool { return t.Ledger })
	if i < 0 {
		return nil
	}
	t := sc.Load.Targets[i]
	a := &steps.Acceptance{RunID: runID, Write: load.Target{Name: t.Name, Method: t.Method, Path: t.Path, Body: t.Body, Expect: t.Expect}}
	if arg, ok := sc.Verify["acked-writes-durable"]; ok && arg.ReadPath != "" {
		a.ReadPath = arg.ReadPath
		if arg.Found != nil {
			a.Found = load.Found{Status: arg.Found.Status, BodyHasID: arg.Found.BodyHasID}
		}
	} else if sc.Workload.Sample != "" {
		a.ReadPath = "/orders/{{.ID}}"
	}
	return a
}

// RelativeFile is path relative to the working directory, with forward slashes (as JUnit readers
// and CI annotations expect); path as given when it cannot be made relative.
func RelativeFile(path string) string {
	if path == "" {
		return ""
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	rel, err := filepath.Rel(wd, abs)
	if err != nil {
		return path
	}
	return filepath.ToSlash(rel)
}

// stepLoads records in each step the load scheduled in its exact window (the requests whose own time
// lies in it, as failures are attributed): requests, failed and retried requests, latency percentiles.
func stepLoads(ran []reports.Step, window func(from, to time.Time) load.WindowStats) {
	for i := range ran {
		st := &ran[i]
		w := window(st.Started, st.Finished)
		st.Load = &reports.StepLoad{Requests: w.Requests, Failed: w.Failed, Retried: w.Retried, P50MS: w.P50MS, P99MS: w.P99MS}
	}
}

func isFault(st scenarios.Step) bool { return st.Fault != nil }

// faultEvidence is what every fault step recorded, for fault-took-effect.
func faultEvidence(ran []reports.Step) []verify.Fault {
	var out []verify.Fault
	for _, s := range ran {
		if !strings.HasPrefix(s.Kind, "fault/") {
			continue
		}
		f := verify.Fault{Step: s.Name, Kind: s.Kind, Status: s.Status, Error: s.Error}
		f.Kills, _ = s.Did["kills"].([]verify.Kill)
		if d, ok := s.Did["drain"].(verify.Drain); ok {
			f.Drain = &d
		}
		if l, ok := s.Did["loss"].(verify.Loss); ok {
			f.Loss = &l
		}
		out = append(out, f)
	}
	return out
}

// servedWindows are the windows in which one version should answer: from the end of each step that
// moved the workload to a version (it recorded "serves") to the start of the next one, or the end.
func servedWindows(ran []reports.Step, end time.Time) []verify.Served {
	var out []verify.Served
	for _, s := range ran {
		v, _ := s.Did["serves"].(string)
		if v == "" || (s.Status != "ok" && s.Status != "promoted" && s.Status != "rolled-back") {
			continue
		}
		if n := len(out); n > 0 && out[n-1].To.After(s.Started) {
			out[n-1].To = s.Started
		}
		out = append(out, verify.Served{Step: s.Name, Version: v, From: s.Finished, To: end})
	}
	return out
}

// drills are the rollback steps as the rollback-drill check judges them: each observed until the
// next step that changes something starts, or the end of the run.
func drills(sc *scenarios.Loaded, ran []reports.Step, end time.Time) []verify.Drill {
	within := map[string]time.Duration{}
	for _, st := range sc.Steps {
		if st.Rollback != nil {
			within[st.Name] = st.Rollback.Within.Duration
		}
	}
	var out []verify.Drill
	for i, s := range ran {
		if s.Kind != "rollback" {
			continue
		}
		d := verify.Drill{Step: s.Name, Start: s.Started, Within: within[s.Name], Status: s.Status, Error: s.Error, Until: end}
		d.Version, _ = s.Did["serves"].(string)
		d.NothingToRollBack, _ = s.Did["nothing_to_roll_back"].(bool)
		if s.Status == "ok" {
			d.Done = s.Finished
		}
		for _, next := range ran[i+1:] {
			if next.Kind != "wait" && next.Started.After(s.Started) && next.Started.Before(d.Until) {
				d.Until = next.Started
			}
		}
		out = append(out, d)
	}
	return out
}

// targetRate is the schedule's average rate over the run (stages included), or the stated rate.
func targetRate(t load.Totals, rate float64) float64 {
	if t.Scheduled > 0 && t.Duration > 0 {
		return math.Round(t.Scheduled/t.Duration.Seconds()*100) / 100
	}
	return rate
}

// kindCluster is a kind cluster the run uses, and whether the run created it.
type kindCluster struct {
	*clusters.Cluster
	created bool
}

// machines are the cluster's node containers, nil (untyped) when it is not a local kind cluster.
func (kc *kindCluster) machines() faults.Stopped {
	if kc == nil || kc.Cluster == nil {
		return nil
	}
	return kc.Cluster
}

// getCluster returns the cluster's client config and, when it is a kind cluster on this engine, the
// cluster (to load images into and to know its published NodePorts).
func getCluster(ctx context.Context, sc *scenarios.Loaded, opts Options) (*rest.Config, *kindCluster, error) {
	kubeconfig := sc.Cluster.Kubeconfig
	if opts.Kubeconfig != "" {
		kubeconfig = opts.Kubeconfig
	}
	if opts.Context != "" || sc.Cluster.Provider == "existing" {
		context := sc.Cluster.Context
		if opts.Context != "" {
			context = opts.Context
		}
		if err := clusters.Allowed(context, opts.AllowContexts); err != nil {
			return nil, nil, harness("cluster: %v", err)
		}
		e, err := clusters.OpenExisting(ctx, kubeconfig, context)
		if err != nil {
			return nil, nil, harness("cluster: %v", err)
		}
		if e.Kind != nil {
			progress(opts.Progress, "context %s is kind cluster %s", context, e.Kind.Name)
			return e.Config, &kindCluster{Cluster: e.Kind}, nil
		}
		return e.Config, nil, nil
	}
	// kind: reuse a cluster of that name, or create one (deleted afterwards unless --keep-cluster).
	name := sc.Cluster.Name
	if name == "" {
		name = clusters.DefaultName
	}
	kc := &kindCluster{}
	cl, getErr := clusters.Get(name, kubeconfig)
	if getErr != nil {
		workers := sc.Cluster.Workers
		if workers == 0 {
			workers = 2
		}
		kind := &clusters.StatusLogger{}
		done := phase(opts.Progress, fmt.Sprintf("creating kind cluster %s (%d workers)", name, workers), kind.Status)
		var err error
		cl, err = clusters.Create(ctx, clusters.CreateOptions{Name: name, Workers: workers, Kubeconfig: kubeconfig, Logger: kind})
		done(err)
		if err != nil {
			return nil, nil, harness("cluster: %v", err)
		}
		kc.created = true
	}
	kc.Cluster = cl
	cfg, err := cl.RESTConfig()
	if err != nil {
		if kc.created && !opts.KeepCluster {
			_ = cl.Delete(context.WithoutCancel(ctx))
		}
		return nil, nil, harness("cluster: %v", err)
	}
	return cfg, kc, nil
}

// deploy puts the workload on the cluster and returns it with its teardown (nil when nothing was
// created). A namespace left by an interrupted run of the same scenario is deleted first.
func deploy(ctx context.Context, sc *scenarios.Loaded, cfg *rest.Config, kc *kindCluster, w io.Writer) (*system, func(context.Context), error) {
	ops, err := workloads.NewOps(cfg)
	if err != nil {
		return nil, nil, harness("workload: %v", err)
	}
	sys := &system{ns: "rehearse-" + sc.Metadata.Name, ops: ops}
	// What a crashed run left behind (a node it cordoned) is repaired before anything else.
	if fixed, err := faults.Repair(ctx, ops.Clientset(), kc.machines()); err != nil {
		return nil, nil, harness("repairing what an earlier run left: %v", err)
	} else if len(fixed) > 0 {
		progress(w, "before the run, what earlier runs left: %s", strings.Join(fixed, "; "))
	}
	if err := ops.DeleteNamespace(ctx, sys.ns, 3*time.Minute); err != nil {
		return nil, nil, harness("workload: leftover namespace: %v", err)
	}
	if sc.Workload.Sample != "" {
		if kc != nil {
			done := phase(w, fmt.Sprintf("loading the sample's images into %s", kc.Name), nil)
			err := kc.LoadImages(ctx, workloads.OrdersImage, workloads.PostgresImage)
			done(err)
			if err != nil {
				return nil, nil, harness("load images (build them with `rehearse images build`): %v", err)
			}
		}
		done := phase(w, fmt.Sprintf("deploying orders-postgres in namespace %s", sys.ns), func() string { return ops.PodsStatus(ctx, sys.ns) })
		teardown := func(ctx context.Context) { _ = ops.DeleteNamespace(ctx, sys.ns, 3*time.Minute) }
		// Pods refused at admission (the namespace's Pod Security level, a webhook) end the wait at
		// once, saying which and why, rather than at its timeout with nothing ready.
		var sample *workloads.Sample
		err := ops.UnlessRefused(ctx, func() []string { return []string{sys.ns} }, func(ctx context.Context) error {
			var err error
			sample, err = workloads.DeploySample(ctx, cfg, workloads.SampleOptions{
				// The cluster allocates the NodePort from its published range: rehearsals side by side on
				// one cluster (and a sample deployed by hand) each get their own.
				Namespace: sys.ns, Version: orders.Version(sc.Workload.Version),
				AppReplicas: sc.Workload.Replicas.AppOr(0), DBReplicas: sc.Workload.Replicas.DBOr(0),
				Replication: sc.Workload.Replication, NamespaceMeta: sc.Workload.Namespace,
			}, 6*time.Minute)
			return err
		})
		done(err)
		if err != nil {
			return sys, teardown, harness("workload: %v%s", err, admissionHint(err, sc.Workload.Namespace))
		}
		sys.sample, sys.url = sample, sample.URL()
		sys.svc, sys.svcNS = "orders", sys.ns
		return sys, teardown, nil
	}

	for _, a := range sc.Workload.Images {
		if kc == nil {
			return nil, nil, harness("workload.images: archives are loaded into kind nodes; this cluster is not a local kind cluster")
		}
		done := phase(w, fmt.Sprintf("loading image archive %s into %s", a, kc.Name), nil)
		err := kc.LoadImageArchive(sc.Path(a))
		done(err)
		if err != nil {
			return nil, nil, harness("workload.images: %s: %v", a, err)
		}
	}
	if len(sc.Workload.LocalImages) > 0 {
		if kc == nil {
			return nil, nil, harness("workload.localImages: images are loaded into kind nodes; this cluster is not a local kind cluster")
		}
		done := phase(w, fmt.Sprintf("loading %s into %s", strings.Join(sc.Workload.LocalImages, ", "), kc.Name), nil)
		err := kc.LoadImages(ctx, sc.Workload.LocalImages...)
		done(err)
		if err != nil {
			return nil, nil, harness("workload.localImages: %v (build rehearse's own with `rehearse images build`)", err)
		}
	}
	var paths []string
	for _, m := range sc.Workload.Manifests {
		paths = append(paths, sc.Path(m))
	}
	var manifests []workloads.Manifest
	from := slices.Clone(sc.Workload.Manifests)
	if len(paths) > 0 {
		ms, err := workloads.ReadManifests(paths)
		if err != nil {
			return nil, nil, harness("workload.manifests: %v", err)
		}
		manifests = ms
	}
	if k := sc.Workload.Kustomize; k != "" {
		ms, err := workloads.Kustomize(sc.Path(k))
		if err != nil {
			return nil, nil, harness("workload.kustomize: %v", err)
		}
		manifests = append(manifests, ms...)
		from = append(from, "kustomize "+k)
	}
	if len(manifests) > 0 {
		progress(w, "applying %d objects from %s (namespace %s)", len(manifests), strings.Join(from, ", "), sys.ns)
	}
	own, err := workloads.ApplyManifests(ctx, cfg, sys.ns, sc.Workload.Namespace, manifests)
	var teardown func(context.Context)
	if own != nil {
		teardown = func(ctx context.Context) { _ = own.Delete(ctx, 3*time.Minute) }
	}
	if err != nil {
		return sys, teardown, harness("workload.manifests: %v", err)
	}
	if h := sc.Workload.Helm; h != nil {
		rel, err := installChart(ctx, sc, cfg, own, sys.ns, w)
		if err != nil {
			return sys, teardown, harness("workload.helm: %v", err)
		}
		sys.helm = rel
	}
	sys.own = own
	done := phase(w, "waiting for the workload to be ready", func() string {
		var parts []string
		for _, ns := range own.Namespaces() {
			parts = append(parts, ops.PodsStatus(ctx, ns))
		}
		return strings.Join(parts, "; ")
	})
	err = own.WaitReady(ctx, 5*time.Minute)
	done(err)
	if err != nil {
		return sys, teardown, harness("workload: %v%s", err, admissionHint(err, sc.Workload.Namespace))
	}
	if svc := sc.Load.Service; svc != "" && loadFrom(sc, kc) == "cluster" {
		// Load from the cluster reaches any Service by its name: no node port needed.
		sys.svc, sys.svcNS = svc, own.NamespaceOf("service/"+svc)
	} else if svc != "" {
		port, err := ops.NodePort(ctx, own.NamespaceOf("service/"+svc), svc)
		if err != nil {
			return sys, teardown, harness("load.service: %v", err)
		}
		sys.url = fmt.Sprintf("http://127.0.0.1:%d", port)
		sys.svc, sys.svcNS = svc, own.NamespaceOf("service/"+svc)
	}
	return sys, teardown, nil
}

// loadFrom is where a scenario's load is sent from: load.from, else the host for a local kind cluster
// (its node ports are published on 127.0.0.1) or a loopback load.baseURL, else the cluster.
func loadFrom(sc *scenarios.Loaded, kc *kindCluster) string {
	switch {
	case sc.Load.From != "":
		return sc.Load.From
	case kc != nil || sc.Load.BaseURL != "":
		return "host"
	}
	return "cluster"
}

// installChart installs the workload's chart as a release in namespace (Helm's Go SDK, waiting for
// hooks only: the workload is waited for as manifests are) and makes its objects part of own.
func installChart(ctx context.Context, sc *scenarios.Loaded, cfg *rest.Config, own *workloads.Own, namespace string, w io.Writer) (*workloads.HelmInstalled, error) {
	h := sc.Workload.Helm
	chartPath := sc.Path(h.Chart)
	ch, err := workloads.LoadChart(chartPath)
	if err != nil {
		return nil, err
	}
	r := &workloads.HelmInstalled{Release: h.ReleaseName(sc.Metadata.Name), Chart: chartPath, Values: workloads.HelmValues{Set: h.Set}}
	for _, f := range h.Values {
		r.Values.Files = append(r.Values.Files, sc.Path(f))
	}
	vals, err := r.Values.Merge()
	if err != nil {
		return nil, err
	}
	if r.Helm, err = workloads.NewHelm(cfg, namespace); err != nil {
		return nil, err
	}
	progress(w, "helm install %s %s (namespace %s)", r.Release, h.Chart, namespace)
	rel, err := r.Install(ctx, r.Release, ch, vals, 5*time.Minute)
	if err != nil {
		return nil, err
	}
	ms, err := rel.Objects(r.Release)
	if err != nil {
		return nil, err
	}
	return r, own.Adopt(ctx, ms)
}

// settleMax bounds the wait, after the load, for pods still stopping (the sample's grace is 40 s).
const settleMax = 60 * time.Second

// startRecorder watches the load's Service: the sample's, load.service, or the Service of the
// rehearsal whose node port load.baseURL names on this machine. Nil (and no error) when the load
// goes to none of the rehearsal's Services.
func startRecorder(ctx context.Context, sys *system, base string, w io.Writer) (*clusters.Recorder, error) {
	ns, svc := sys.svcNS, sys.svc
	if svc == "" && sys.own != nil {
		u, err := url.Parse(base)
		if err != nil || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost") {
			return nil, nil
		}
		port, err := strconv.Atoi(u.Port())
		if err != nil {
			return nil, nil
		}
		if ns, svc, err = sys.ops.ServiceByNodePort(ctx, sys.own.Namespaces(), port); err != nil {
			return nil, err
		}
	}
	if svc == "" {
		return nil, nil
	}
	rec, err := clusters.StartRecorder(ctx, sys.ops.Clientset(), ns, svc)
	if err == nil {
		progress(w, "watching the pods behind service %s in %s", svc, ns)
	}
	return rec, err
}

// ClusterFile is the cluster's timeline in a run's directory: one JSON change a line.
const ClusterFile = "cluster.jsonl"

// clusterTimeline is what the recorder saw, with the steps' starts and ends, on the run's clock.
func clusterTimeline(rec *clusters.Recorder, ran []reports.Step, started time.Time) ([]verify.Change, []string) {
	var changes []verify.Change
	var notes []string
	if rec != nil {
		changes, notes = rec.Changes()
	}
	for _, s := range ran {
		changes = append(changes, verify.Change{At: s.Started, Kind: "step", Object: "step/" + s.Name, What: "start", Detail: s.Kind},
			verify.Change{At: s.Finished, Kind: "step", Object: "step/" + s.Name, What: "end", Detail: s.Status})
		changes = append(changes, s.Actions...)
	}
	sort.SliceStable(changes, func(i, j int) bool { return changes[i].At.Before(changes[j].At) })
	return verify.OnRunClock(changes, started), notes
}

// writeTimeline writes cluster.jsonl: the notes first ({"kind":"note"}), then every change.
func writeTimeline(path string, changes []verify.Change, notes []string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, n := range notes {
		if err := enc.Encode(verify.Change{Kind: "note", Detail: n}); err != nil {
			f.Close()
			return err
		}
	}
	for _, c := range changes {
		if err := enc.Encode(c); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runSteps runs the steps on the timeline, each recorded as an event (metrics, progress lines).
func runSteps(ctx context.Context, env *steps.Env, sc *scenarios.Loaded, progressW io.Writer, metrics *reports.Metrics) []reports.Step {
	return timeline(ctx, sc.Steps, env.Start, Kinds, func(ctx context.Context, st scenarios.Step, rec *steps.Record) error {
		k := Kinds.Find(st)
		if k == nil {
			return fmt.Errorf("step %s: no step kind takes it", st.Name)
		}
		return k.Run(ctx, env, st, rec)
	},
		func(ev reports.Step) {
			metrics.StepStarted(ev)
			progress(progressW, "step %s (%s) at %s", ev.Name, ev.Kind, ev.Started.Sub(env.Start).Round(time.Second))
		},
		func(ev reports.Step) {
			if ev.Status != "ok" {
				progress(progressW, "step %s %s: %s", ev.Name, ev.Status, reports.FirstLine(ev.Error))
			}
			metrics.StepFinished(ev)
		})
}

// outcome is a failed step's status: "failed" when the system under rehearsal failed it (its check
// fails), "error" when the harness could not act (its check could not measure).
func outcome(err error) string {
	if workloads.IsSystemFailure(err) {
		return "failed"
	}
	return "error"
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "rehearse: "+format+"\n", args...)
	}
}

func startProgress(w io.Writer, lr *load.Run, start time.Time, metrics *reports.Metrics) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				t := lr.Aggregates().Totals()
				step := strings.Join(metrics.Active(), ",")
				if step == "" {
					step = "-"
				}
				fmt.Fprintf(w, "rehearse: step %s, %s elapsed, %d requests (%.1f/s), %d failed\n",
					step, time.Since(start).Round(time.Second), t.Requests, t.AchievedRate, t.Failed)
			}
		}
	}()
	return func() { close(done) }
}

// ExitCode maps a run's outcome to the CLI contract: 0 passed, 1 a check failed (or could not
// measure), 2 the harness could not run.
func ExitCode(sum *reports.Summary, err error) int {
	var he *HarnessError
	if errors.As(err, &he) || (err != nil && sum == nil) {
		return 2
	}
	if sum != nil && sum.Verdict == reports.VerdictPass {
		return 0
	}
	return 1
}

// windowName names a step in failure attribution: a runbook block by its name, heading and line too,
// so that a failure is traced to the prose that caused it.
func windowName(s reports.Step) string {
	src, _ := s.Did["source"].(string)
	if src == "" {
		return s.Name
	}
	if h, _ := s.Did["heading"].(string); h != "" {
		return fmt.Sprintf("%s (%q, %s)", s.Name, h, src)
	}
	return fmt.Sprintf("%s (%s)", s.Name, src)
}

// hostTools gives host commands what they need: a kubeconfig of the rehearsal's cluster only, in a
// directory of its own that remove deletes (it holds credentials: not in the run directory, which CI
// uploads), and the node image's kubectl on their PATH (a kind cluster; elsewhere, the machine's).
func hostTools(ctx context.Context, env *steps.Env, cfg *rest.Config, kc *kindCluster, out string, w io.Writer) (remove func(), err error) {
	env.OutDir = out
	dir, err := os.MkdirTemp("", "rehearse-kube-")
	if err != nil {
		return func() {}, err
	}
	remove = func() { _ = os.RemoveAll(dir) }
	name := "rehearse"
	if kc != nil && kc.Cluster != nil {
		name = kc.Context
	}
	b, err := clusters.Kubeconfig(cfg, name)
	if err != nil {
		return remove, err
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return remove, err
	}
	env.Kubeconfig = path
	if kc == nil || kc.Cluster == nil {
		progress(w, "host commands: kubectl is whatever this machine has on its PATH (not a kind cluster: no node image to take it from)")
		return remove, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	tools, err := kc.Kubectl(ctx, filepath.Join(cache, "rehearse"))
	if err != nil {
		progress(w, "host commands: could not take kubectl from the node image (%v); they get this machine's PATH only", err)
		return remove, nil
	}
	env.ToolDirs = []string{tools}
	return remove, nil
}

// errSuffix is "; ERR" for a non-nil error, else "".
func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return "; " + err.Error()
}
