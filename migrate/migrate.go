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
var Kinds = steps.Table{Rolling{}, BlueGreen{}, Canary{}, Schema{}, Rollback{}}

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
	}{{"version", m.Version != "" && sc.Workload.Sample != ""}, {"image/env/args", containerChange(m)}, {"manifest", m.Manifest != ""}, {"patch", m.Patch != ""}, {"kustomize", m.Kustomize != ""}} {
		if c.set {
			changes = append(changes, c.name)
		}
	}
	if len(changes) != 1 {
		what := "version (the sample), image/env/args, manifest, patch or kustomize"
		if sc.Workload.Sample == "" {
			what = "image/env/args, manifest, patch or kustomize"
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
