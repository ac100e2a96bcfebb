// Package migrate owns the migration step kinds: rolling changes of a Deployment or StatefulSet (the
// sample's app version, or an image, env, manifest or patch of one's own), the sample's schema steps
// (expand, backfill, contract, and their downs), blue-green switches and canaries with gates over the
// live load, and rollback drills (the latest blue-green switched back, else the previous revision).
// Each kind is a small type registered in the runner's table.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/steps"
	"github.com/rehearse-dev/rehearse/workloads"
	"github.com/rehearse-dev/rehearse/workloads/orders"
)

// Kinds are the migration kinds, for the runner's table.
var Kinds = steps.Table{Rolling{}, BlueGreen{}, Canary{}, Schema{}, Rollback{}, Switchover{}, Failover{}}

// DefaultTimeout bounds a rollout that has no timeout of its own.
const DefaultTimeout = 5 * time.Minute

// sampleApp is the sample's app Deployment and its container.
const sampleApp, sampleContainer = "deployment/orders", "orders"

func checkTarget(field, target string) []steps.Problem {
	kind, name, _ := strings.Cut(target, "/")
	if (kind != "deployment" && kind != "statefulset") || name == "" {
		return []steps.Problem{steps.Problemf(field, "%q: want deployment/NAME or statefulset/NAME", target)}
	}
	return nil
}

// Rolling changes a Deployment's or StatefulSet's pod template and waits, within its timeout, for the
// rollout its own strategy makes (maxSurge/maxUnavailable, StatefulSet ordered updates); a stalled
// rollout fails with the pods that are not ready and their last log lines. It records the revision
// before and after.
type Rolling struct{}

func (Rolling) Name() string { return "migrate/rolling" }
func (Rolling) Takes(st scenarios.Step) bool {
	return st.Migrate != nil && st.Migrate.Strategy == "rolling"
}

func (Rolling) Check(st scenarios.Step, sc *scenarios.Loaded) []steps.Problem {
	m := st.Migrate
	ps := checkTarget("migrate.target", m.Target)
	var changes []string
	for _, c := range []struct {
		name string
		set  bool
	}{{"version", m.Version != "" && sc.Workload.Sample != ""}, {"image/env/args", containerChange(m)}, {"manifest", m.Manifest != ""}, {"patch", m.Patch != ""}, {"kustomize", m.Kustomize != ""}, {"helm", m.Helm != nil}} {
		if c.set {
			changes = append(changes, c.name)
		}
	}
	if len(changes) != 1 {
		what := "version (the sample), image/env/args, manifest, patch, kustomize or helm"
		if sc.Workload.Sample == "" {
			what = "image/env/args, manifest, patch, kustomize or helm"
		}
		if len(changes) == 0 {
			ps = append(ps, steps.Problemf("migrate", "a rolling change needs one of %s: it says nothing to change", what))
		} else {
			ps = append(ps, steps.Problemf("migrate", "a rolling change needs exactly one of %s; it says %d: %s", what, len(changes), strings.Join(changes, ", ")))
		}
	}
	ps = append(ps, checkSample(m, sc)...)
	if len(m.Partitions) > 0 {
		if !strings.HasPrefix(m.Target, "statefulset/") {
			ps = append(ps, steps.Problemf("migrate.partitions", "partitions are a StatefulSet's; %s is not one", m.Target))
		}
		for i, p := range m.Partitions {
			if p < 0 || (i > 0 && p >= m.Partitions[i-1]) {
				ps = append(ps, steps.Problemf(fmt.Sprintf("migrate.partitions[%d]", i), "%d: partitions fall, each below the last, down to 0", p))
			}
		}
		if last := m.Partitions[len(m.Partitions)-1]; last != 0 {
			ps = append(ps, steps.Problemf("migrate.partitions", "the last partition is %d: end with 0, or the rollout never completes", last))
		}
	}
	if h := m.Helm; h != nil {
		switch {
		case sc.Workload.Helm == nil:
			ps = append(ps, steps.Problemf("migrate.helm", "a helm upgrade is of the workload's release: install it with workload.helm"))
		case h.Chart != "":
			if _, err := workloads.LoadChart(sc.Path(h.Chart)); err != nil {
				ps = append(ps, steps.Problemf("migrate.helm.chart", "%v", err))
			}
		}
		for i, f := range h.Values {
			if _, err := os.Stat(sc.Path(f)); err != nil {
				ps = append(ps, steps.Problemf(fmt.Sprintf("migrate.helm.values[%d]", i), "%s does not exist (paths are relative to the scenario file)", f))
			}
		}
	}
	if m.Kustomize != "" {
		if sc.Workload.Sample != "" {
			ps = append(ps, steps.Problemf("migrate.kustomize", "a kustomization rolls one's own workload; the sample rolls by version"))
		} else if ms, err := workloads.Kustomize(sc.Path(m.Kustomize)); err != nil {
			ps = append(ps, steps.Problemf("migrate.kustomize", "%v", err))
		} else if !makes(ms, m.Target) {
			ps = append(ps, steps.Problemf("migrate.kustomize", "%s makes no %s: the rollout it is to make would be of nothing", m.Kustomize, m.Target))
		}
	}
	if m.Manifest != "" {
		if sc.Workload.Sample != "" {
			ps = append(ps, steps.Problemf("migrate.manifest", "a manifest rolls one's own workload; the sample rolls by version"))
		} else if _, err := os.Stat(sc.Path(m.Manifest)); err != nil {
			ps = append(ps, steps.Problemf("migrate.manifest", "%s does not exist (paths are relative to the scenario file)", sc.Path(m.Manifest)))
		}
	}
	return append(ps, notFor(m, "rolling")...)
}

// checkSample checks a change of the sample: a version it has, on its app Deployment.
func checkSample(m *scenarios.Migrate, sc *scenarios.Loaded) []steps.Problem {
	if sc.Workload.Sample == "" || m.Version == "" {
		return nil
	}
	var ps []steps.Problem
	if _, err := orders.ParseVersion(m.Version); err != nil {
		ps = append(ps, steps.Problemf("migrate.version", "unknown version %q of the sample (v1, v2, v3, v2-bad)", m.Version))
	}
	if m.Target != sampleApp {
		ps = append(ps, steps.Problemf("migrate.target", "the sample's versions roll %s, not %s", sampleApp, m.Target))
	}
	return ps
}

// notFor refuses the settings of other strategies, so a misplaced one is not silently ignored.
func notFor(m *scenarios.Migrate, strategy string) []steps.Problem {
	var ps []steps.Problem
	for _, f := range []struct {
		field string
		set   bool
		for_  []string
	}{
		{"step", m.Step != "", []string{"schema"}},
		{"down", m.Down, []string{"schema"}},
		{"manifest", m.Manifest != "", []string{"rolling", "blue-green", "canary"}},
		{"patch", m.Patch != "", []string{"rolling", "blue-green", "canary"}},
		{"partitions", len(m.Partitions) > 0, []string{"rolling"}},
		{"kustomize", m.Kustomize != "", []string{"rolling"}},
		{"helm", m.Helm != nil, []string{"rolling"}},
		{"service", m.Service != "", []string{"blue-green", "canary"}},
		{"smoke", m.Smoke != nil, []string{"blue-green", "canary"}},
		{"accept", m.Accept != nil, []string{"blue-green", "canary"}},
		{"keep", m.Keep.Duration != 0, []string{"blue-green"}},
		{"weights", len(m.Weights) > 0, []string{"canary"}},
		{"hold", m.Hold.Duration != 0, []string{"blue-green", "canary"}},
		{"gate", m.Gate != (scenarios.Gate{}), []string{"blue-green", "canary"}},
		{"expect", m.Expect != "", []string{"blue-green", "canary"}},
		{"within", m.Within.Duration != 0, []string{"blue-green", "canary"}},
	} {
		if f.set && !slices.Contains(f.for_, strategy) {
			ps = append(ps, steps.Problemf("migrate."+f.field, "is for the %s strategy, not %s", strings.Join(f.for_, " and "), strategy))
		}
	}
	return ps
}

// release is what a change of m moves to: the pod template change, and the version the new pods
// answer with ("" when the scenario does not say).
func release(env *steps.Env, m *scenarios.Migrate) workloads.Change {
	if env.Sample != nil {
		return workloads.Change{Container: sampleContainer, Env: map[string]string{orders.VersionEnv: m.Version}}
	}
	c := workloads.Change{Container: m.Container, Image: m.Image, Env: m.Env, Args: m.Args}
	if m.Patch != "" {
		c.Patch = []byte(m.Patch)
	}
	return c
}

// helmUpgrade upgrades the workload's release: the install's values, then the step's over them, and
// the install's chart unless the step names another. A rollback drill of the target then rolls the
// release back to the revision before (helm rollback).
func helmUpgrade(ctx context.Context, env *steps.Env, m *scenarios.Migrate, ns string, rec *steps.Record) error {
	r := env.Release
	if r == nil {
		return errors.New("no helm release to upgrade (workload.helm)")
	}
	chartPath := r.Chart
	if m.Helm.Chart != "" {
		chartPath = env.Path(m.Helm.Chart)
	}
	ch, err := workloads.LoadChart(chartPath)
	if err != nil {
		return err
	}
	v := workloads.HelmValues{Files: slices.Clone(r.Values.Files), Set: maps.Clone(r.Values.Set)}
	for _, f := range m.Helm.Values {
		v.Files = append(v.Files, env.Path(f))
	}
	if v.Set == nil {
		v.Set = map[string]string{}
	}
	maps.Copy(v.Set, m.Helm.Set)
	vals, err := v.Merge()
	if err != nil {
		return err
	}
	before, err := r.Current(r.Release)
	if err != nil {
		return err
	}
	rec.Set("helm_release", r.Release)
	rec.Set("helm_revision_before", before.Revision)
	rel, err := r.Upgrade(ctx, r.Release, ch, vals, timeoutOf(m))
	if err != nil {
		return workloads.Failed(err) // the chart or its values did not make a release
	}
	rec.Set("helm_revision_after", rel.Revision)
	if ms, err := rel.Objects(r.Release); err == nil && env.Own != nil {
		_ = env.Own.Adopt(ctx, ms) // what the upgrade added is deleted with the rest
	}
	env.PushUndo(m.Target, steps.Undo{Kind: "helm rollback", Do: func(ctx context.Context, rec *steps.Record) error {
		return helmRollback(ctx, env, r.Release, before.Revision, []string{m.Target}, ns, timeoutOf(m), rec)
	}})
	return nil
}

// helmRollback rolls the release back to revision (0: the one before the current) and waits for the
// rollout of targets.
func helmRollback(ctx context.Context, env *steps.Env, release string, revision int, targets []string, ns string, timeout time.Duration, rec *steps.Record) error {
	r := env.Release
	from, err := r.Current(release)
	if err != nil {
		return err
	}
	rec.Set("helm_release", release)
	rec.Set("helm_revision_from", from.Revision)
	rel, err := r.Rollback(ctx, release, revision, timeout)
	if err != nil {
		return err
	}
	rec.Set("helm_revision_now", rel.Revision)
	rec.Set("helm_rolled_back_to", revision)
	for _, t := range targets {
		if err := env.Ops.WaitRollout(ctx, env.NamespaceOf(t), t, timeout); err != nil {
			return fmt.Errorf("helm rollback of %s to revision %d: %w", release, revision, err)
		}
	}
	return nil
}

// rollouts are the Deployments and StatefulSets a release's manifest holds (KIND/NAME).
func rollouts(ms []workloads.Manifest) []string {
	var out []string
	for _, mf := range ms {
		switch mf.Object.GetKind() {
		case "Deployment", "StatefulSet":
			out = append(out, strings.ToLower(mf.Object.GetKind())+"/"+mf.Object.GetName())
		}
	}
	return out
}

// makes says whether ms holds the object target (KIND/NAME) names.
func makes(ms []workloads.Manifest, target string) bool {
	kind, name, _ := strings.Cut(target, "/")
	for _, mf := range ms {
		if strings.EqualFold(mf.Object.GetKind(), kind) && mf.Object.GetName() == name {
			return true
		}
	}
	return false
}

// containerChange says whether m changes a container (its image, env or args).
func containerChange(m *scenarios.Migrate) bool {
	return m.Image != "" || len(m.Env) > 0 || len(m.Args) > 0
}

// newTemplate is the pod template of the target's new version in a manifest file: the one Deployment
// in it named as the target (a canary runs its template beside the target).
func newTemplate(file, target string) (*corev1.PodTemplateSpec, error) {
	ms, err := workloads.ReadManifests([]string{file})
	if err != nil {
		return nil, err
	}
	_, name, _ := strings.Cut(target, "/")
	var found []string
	for _, mf := range ms {
		found = append(found, mf.Object.GetKind()+"/"+mf.Object.GetName())
		if mf.Object.GetKind() != "Deployment" || mf.Object.GetName() != name {
			continue
		}
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(mf.Object.Object, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", mf.Source, err)
		}
		return &d.Spec.Template, nil
	}
	return nil, fmt.Errorf("%s: no Deployment named %s (the new version of %s) in it; found %s", file, name, target, strings.Join(found, ", "))
}

// servedBy is the version target's pods answer with now: the sample's from its template, one's own
// from the answers of the last seconds.
func servedBy(ctx context.Context, env *steps.Env, ns, target string) string {
	if env.Sample != nil && target == sampleApp {
		v, _ := env.Ops.EnvOf(ctx, ns, target, sampleContainer, orders.VersionEnv)
		return v
	}
	if env.Live == nil {
		return ""
	}
	now := time.Now()
	best, most := "", 0
	for v, st := range env.Live.Versions(now.Add(-5*time.Second), now).By {
		if st.Requests > most {
			best, most = v, st.Requests
		}
	}
	return best
}

func timeoutOf(m *scenarios.Migrate) time.Duration {
	if m.Timeout.Duration > 0 {
		return m.Timeout.Duration
	}
	return DefaultTimeout
}

func (Rolling) Run(ctx context.Context, env *steps.Env, st scenarios.Step, rec *steps.Record) error {
	m := st.Migrate
	ns := env.NamespaceOf(m.Target)
	before, err := env.Ops.Revision(ctx, ns, m.Target)
	if err != nil {
		return err
	}
	rec.Set("revision_before", before)
	if len(m.Partitions) > 0 {
		// Hold every pod at the old revision before the template changes.
		if err := env.Ops.SetPartition(ctx, ns, m.Target, m.Partitions[0]); err != nil {
			return err
		}
	}
	if m.Version != "" {
		rec.Set("serves", m.Version)
	}
	switch {
	case env.Sample != nil && m.Version != "":
		err = env.Ops.SetContainer(ctx, ns, m.Target, release(env, m))
	case containerChange(m):
		err = env.Ops.SetContainer(ctx, ns, m.Target, workloads.Change{Container: m.Container, Image: m.Image, Env: m.Env, Args: m.Args})
	case m.Patch != "":
		err = env.Ops.Patch(ctx, ns, m.Target, []byte(m.Patch))
	case m.Manifest != "":
		var ms []workloads.Manifest
		if ms, err = workloads.ReadManifests([]string{env.Path(m.Manifest)}); err == nil {
			err = env.Own.Apply(ctx, ms)
		}
	case m.Kustomize != "":
		var ms []workloads.Manifest
		if ms, err = workloads.Kustomize(env.Path(m.Kustomize)); err == nil {
			err = env.Own.Apply(ctx, ms)
		}
	case m.Helm != nil:
		err = helmUpgrade(ctx, env, m, ns, rec)
	}
	if err != nil {
		return err
	}
	for i, p := range m.Partitions {
		if i > 0 {
			if err := env.Ops.SetPartition(ctx, ns, m.Target, p); err != nil {
				return err
			}
		}
		at := time.Now()
		if err := env.Ops.WaitPartition(ctx, ns, m.Target, p, timeoutOf(m)); err != nil {
			return err
		}
		rec.Set(fmt.Sprintf("partition_%d_s", p), math.Round(time.Since(at).Seconds()*10)/10)
	}
	err = env.Ops.WaitRollout(ctx, ns, m.Target, timeoutOf(m))
	if after, rerr := env.Ops.Revision(context.WithoutCancel(ctx), ns, m.Target); rerr == nil {
		rec.Set("revision_after", after)
	}
	return err
}

// Schema runs one of the sample's schema steps (expand, backfill, contract), or its down migration,
// as a Job. Contract is refused by the migration itself while rows lack what v3 reads, and by this
// step while pods of a version that still writes the old column serve.
type Schema struct{}

func (Schema) Name() string { return "migrate/schema" }
func (Schema) Takes(st scenarios.Step) bool {
	return st.Migrate != nil && st.Migrate.Strategy == "schema"
}

func (Schema) Check(st scenarios.Step, sc *scenarios.Loaded) []steps.Problem {
	var ps []steps.Problem
	if sc.Workload.Sample == "" {
		ps = append(ps, steps.Problemf("migrate", "schema steps are the sample's (its migration Jobs); on your own workload run yours with an exec step"))
	}
	if !slices.Contains([]string{"expand", "backfill", "contract"}, st.Migrate.Step) {
		ps = append(ps, steps.Problemf("migrate.step", "schema step %q: want expand, backfill or contract", st.Migrate.Step))
	}
	if st.Migrate.Version != "" || st.Migrate.Image != "" || len(st.Migrate.Env) > 0 {
		ps = append(ps, steps.Problemf("migrate", "a schema step changes no version; roll the app in a step of its own"))
	}
	return append(ps, notFor(st.Migrate, "schema")...)
}

func (Schema) Run(ctx context.Context, env *steps.Env, st scenarios.Step, rec *steps.Record) error {
	m := st.Migrate
	direction := "up"
	if m.Down {
		direction = "down"
	}
	rec.Set("schema_step", m.Step+" "+direction)
	if m.Step == "contract" && !m.Down {
		// Dropping the old column while a version that still writes it serves breaks that version:
		// judged by who answered the load in the last seconds, and by the app's template.
		serving := []string{servedBy(ctx, env, env.NamespaceOf(sampleApp), sampleApp)}
		if env.Live != nil {
			now := time.Now()
			for v := range env.Live.Versions(now.Add(-3*time.Second), now).By {
				serving = append(serving, v)
			}
		}
		for _, v := range serving {
			if pv, err := orders.ParseVersion(v); err == nil && pv.WritesName() {
				return workloads.Failed(fmt.Errorf("contract refused: %s still serves %s, which writes the column contract drops (roll every pod to v3 first)", sampleApp, v))
			}
		}
	}
	return env.Sample.Migrate(ctx, direction, m.Step, timeoutOf(m))
}

// Rollback drills restoring service: a schema step's down migration (target schema/STEP, the
// sample), the target's latest blue-green switched back, or else the target back to its previous revision (a Deployment's previous ReplicaSet, a StatefulSet's
// previous ControllerRevision); the rollout is waited for. It records the revisions and the version
// that means "restored"; the rollback-drill check measures the time to restore from the results.
type Rollback struct{}

func (Rollback) Name() string                 { return "rollback" }
func (Rollback) Takes(st scenarios.Step) bool { return st.Rollback != nil }

func (Rollback) Check(st scenarios.Step, sc *scenarios.Loaded) []steps.Problem {
	if name, ok := strings.CutPrefix(st.Rollback.Target, "helm/"); ok {
		switch h := sc.Workload.Helm; {
		case h == nil:
			return []steps.Problem{steps.Problemf("rollback.target", "%q: no helm release to roll back (workload.helm installs one)", st.Rollback.Target)}
		case name != h.ReleaseName(sc.Metadata.Name):
			return []steps.Problem{steps.Problemf("rollback.target", "%q: the workload's release is %s", st.Rollback.Target, h.ReleaseName(sc.Metadata.Name))}
		}
		return nil
	}
	if step, ok := strings.CutPrefix(st.Rollback.Target, "schema/"); ok {
		switch {
		case sc.Workload.Sample == "":
			return []steps.Problem{steps.Problemf("rollback.target", "schema drills are the sample's (its down migrations)")}
		case !slices.Contains([]string{"expand", "backfill", "contract"}, step):
			return []steps.Problem{steps.Problemf("rollback.target", "%q: want schema/expand, schema/backfill or schema/contract", st.Rollback.Target)}
		}
		return nil
	}
	return checkTarget("rollback.target", st.Rollback.Target) // scenarios requires within
}

func (Rollback) Run(ctx context.Context, env *steps.Env, st scenarios.Step, rec *steps.Record) error {
	r := st.Rollback
	ns := env.NamespaceOf(r.Target)
	rec.Set("within", r.Within.Duration.String())
	if r.Version != "" {
		rec.Set("serves", r.Version)
	}
	if step, ok := strings.CutPrefix(r.Target, "schema/"); ok {
		// A schema drill: the step's down migration; the app keeps its version, which must go on
		// serving without failures.
		if r.Version == "" {
			if v := servedBy(ctx, env, env.NamespaceOf(sampleApp), sampleApp); v != "" {
				rec.Set("serves", v)
			}
		}
		rec.Set("schema_step", step+" down")
		return env.Sample.Migrate(ctx, "down", step, max(2*r.Within.Duration, DefaultTimeout))
	}
	if name, ok := strings.CutPrefix(r.Target, "helm/"); ok {
		// helm rollback to the revision before the current one, and every rollout it makes.
		if env.Release == nil {
			return errors.New("no helm release to roll back")
		}
		cur, err := env.Release.Current(name)
		if err != nil {
			return err
		}
		if cur.Revision < 2 {
			rec.Set("nothing_to_roll_back", true)
			return workloads.ErrNoPreviousRevision
		}
		ms, err := cur.Objects(name)
		if err != nil {
			return err
		}
		return helmRollback(ctx, env, name, cur.Revision-1, rollouts(ms), ns, max(2*r.Within.Duration, DefaultTimeout), rec)
	}
	if u, ok := env.PopUndo(r.Target); ok {
		rec.Set("undoes", u.Kind)
		return u.Do(ctx, rec)
	}
	from, to, tmpl, err := env.Ops.Undo(ctx, ns, r.Target)
	if err != nil {
		if errors.Is(err, workloads.ErrNoPrevious) {
			rec.Set("nothing_to_roll_back", true)
		}
		return err
	}
	rec.Set("revision_from", from)
	rec.Set("revision_to", to)
	if r.Version == "" && env.Sample != nil && r.Target == sampleApp {
		if v := workloads.TemplateEnv(tmpl, sampleContainer, orders.VersionEnv); v != "" {
			rec.Set("serves", v)
		}
	}
	timeout := max(2*r.Within.Duration, DefaultTimeout)
	if err := env.Ops.WaitRollout(ctx, ns, r.Target, timeout); err != nil {
		return fmt.Errorf("rollback to revision %s: %w", to, err)
	}
	return nil
}
