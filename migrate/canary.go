package migrate

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/steps"
	"github.com/rehearse-dev/rehearse/verify"
	"github.com/rehearse-dev/rehearse/workloads"
)

// DefaultHold is how long a canary weight holds, and how long a blue-green gate watches after the
// switch, when the scenario does not say.
const DefaultHold = 10 * time.Second

// DefaultWithin bounds an automatic rollback's time to restore when the scenario does not say.
const DefaultWithin = 30 * time.Second

// Expected outcomes of a canary or blue-green.
const (
	Promoted   = "promoted"
	RolledBack = "rolled-back"
)

// Canary runs the new release as a second Deployment (NAME-canary, a copy of the stable one with the
// change made) behind the same Service, and moves replicas to it weight by weight: at weight w the
// canary has w% of the replicas (at least one) and the stable Deployment the rest. Each weight holds
// while a gate reads the live load: the canary's answers (by the version they say) and every failure no
// version answered. A breach (errors, latency) aborts at once; a hold with too few canary answers to
// judge aborts too (a gate that read nothing never passes). Aborting scales the stable Deployment back
// to full and the canary to 0, and records the time from the breach to restored service. When every
// gate passed, the stable Deployment takes the change and the canary goes. The outcome is promoted or
// rolled-back; the step fails when it is not the one expected.
type Canary struct{}

func (Canary) Name() string { return "migrate/canary" }
func (Canary) Takes(st scenarios.Step) bool {
	return st.Migrate != nil && st.Migrate.Strategy == "canary"
}

func (Canary) Check(st scenarios.Step, sc *scenarios.Loaded) []steps.Problem {
	m := st.Migrate
	ps := checkTracked(m, sc)
	if len(m.Weights) == 0 {
		ps = append(ps, steps.Problemf("migrate.weights", "a canary needs weights, e.g. [10, 50, 100]"))
	}
	prev := 0
	for i, w := range m.Weights {
		if w <= prev || w > 100 {
			ps = append(ps, steps.Problemf(fmt.Sprintf("migrate.weights[%d]", i), "%d: weights rise, each above the last and at most 100", w))
		}
		prev = w
	}
	if pr := m.Gate.Probe; pr != nil {
		if !strings.HasPrefix(pr.Path, "/") {
			ps = append(ps, steps.Problemf("migrate.gate.probe.path", "%q: want a path such as /healthz", pr.Path))
		}
		if pr.Rate.PerSecond <= 0 {
			ps = append(ps, steps.Problemf("migrate.gate.probe.rate", "is required, such as 10/s"))
		}
		if m.Service == "" && sc.Workload.Sample == "" {
			ps = append(ps, steps.Problemf("migrate.gate.probe", "needs migrate.service: the probes go to Services made like it, of each track's pods"))
		}
	}
	if m.Manifest != "" && sc.Workload.Sample == "" {
		if _, err := newTemplate(sc.Path(m.Manifest), m.Target); err != nil {
			ps = append(ps, steps.Problemf("migrate.manifest", "%v", err))
		}
	}
	ps = append(ps, acceptProblems(m.Accept)...)
	return append(ps, notFor(m, "canary")...)
}

// checkTracked checks what blue-green and canary share: a Deployment, a change of image/env (or the
// sample's version), the version the new pods answer with, the expected outcome and the gate.
func checkTracked(m *scenarios.Migrate, sc *scenarios.Loaded) []steps.Problem {
	var ps []steps.Problem
	if kind, name, _ := strings.Cut(m.Target, "/"); kind != "deployment" || name == "" {
		ps = append(ps, steps.Problemf("migrate.target", "%q: want deployment/NAME", m.Target))
	}
	switch {
	case sc.Workload.Sample != "" && m.Version == "":
		ps = append(ps, steps.Problemf("migrate.version", "the version to move the sample to is required"))
	case sc.Workload.Sample == "" && m.Version == "":
		ps = append(ps, steps.Problemf("migrate.version", "the version the new release answers with (where load.version reads it) is required: the gates judge its traffic by it"))
	case sc.Workload.Sample != "" && (containerChange(m) || m.Patch != "" || m.Manifest != ""):
		ps = append(ps, steps.Problemf("migrate", "the sample's releases are versions; image, env, args, a patch or a manifest are for one's own workload"))
	case sc.Workload.Sample == "":
		var changes []string
		for _, c := range []struct {
			name string
			set  bool
		}{{"image/env/args", containerChange(m)}, {"manifest", m.Manifest != ""}, {"patch", m.Patch != ""}} {
			if c.set {
				changes = append(changes, c.name)
			}
		}
		switch {
		case len(changes) == 0:
			ps = append(ps, steps.Problemf("migrate", "the new release needs one of image/env/args, manifest or patch: it says nothing to change"))
		case len(changes) > 1:
			ps = append(ps, steps.Problemf("migrate", "the new release needs exactly one of image/env/args, manifest or patch; it says %d: %s", len(changes), strings.Join(changes, ", ")))
		}
	}
	ps = append(ps, checkSample(m, sc)...)
	if m.Expect != "" && m.Expect != Promoted && m.Expect != RolledBack {
		ps = append(ps, steps.Problemf("migrate.expect", "%q: want promoted or rolled-back", m.Expect))
	}
	if r := m.Gate.MaxErrorRate; r < 0 || r >= 1 {
		ps = append(ps, steps.Problemf("migrate.gate.maxErrorRate", "%v: want a share from 0 up to (not including) 1", r))
	}
	if m.Gate.MinRequests < 0 {
		ps = append(ps, steps.Problemf("migrate.gate.minRequests", "must not be negative"))
	}
	if m.Hold.Duration < 0 {
		ps = append(ps, steps.Problemf("migrate.hold", "must not be negative"))
	}
	return ps
}

func gateSpec(m *scenarios.Migrate, only bool) verify.GateSpec {
	return verify.GateSpec{MaxErrorRate: m.Gate.MaxErrorRate, P99: m.Gate.P99.Duration, MinRequests: m.Gate.MinRequests, Only: only}
}

func holdOf(m *scenarios.Migrate) time.Duration {
	if m.Hold.Duration > 0 {
		return m.Hold.Duration
	}
	return DefaultHold
}

func withinOf(m *scenarios.Migrate) time.Duration {
	if m.Within.Duration > 0 {
		return m.Within.Duration
	}
	return DefaultWithin
}

// watch reads the gate every second over [from, a second ago] until the window is over: hold after
// scaled reports the change in place (a nil error; nil scaled means it already is). A breach already
// beyond what the whole window could absorb ends the watch at once; otherwise the whole window is
// judged at its end. A change that could not be made ends it too (serr).
func watch(ctx context.Context, live steps.Live, name string, from time.Time, scaled <-chan error, hold time.Duration,
	version string, g verify.GateSpec) (res verify.Result, serr, err error) {
	var end time.Time // zero until the change is in place
	if scaled == nil {
		end = from.Add(hold)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return verify.Result{}, nil, ctx.Err()
		case serr := <-scaled:
			if serr != nil {
				return verify.Result{}, serr, nil
			}
			end, scaled = time.Now().Add(hold), nil
		case now := <-tick.C:
			// Requests of the last second may still be in flight: read whole seconds up to a
			// second before what the run knows of the load's results (now, for load it sends
			// itself; a load agent's report may lag), and the whole window once it is past.
			known, lost := live.Known()
			if lost != "" && (end.IsZero() || known.Before(end.Add(time.Second))) {
				// A share of the load stopped reporting inside the window: what is left of it is
				// not what users met, and the gate cannot pass on it.
				return verify.Result{Name: name, Status: verify.Error, Message: fmt.Sprintf(
					"%s: could not judge: %s; the load's results reached the run only up to %s into the gate's window",
					name, lost, max(0, known.Sub(from)).Round(100*time.Millisecond))}, nil, nil
			}
			to := minTime(now, known).Add(-time.Second)
			span := now.Add(-time.Second).Sub(from) + hold // while the change is being made, at least a hold is to come
			if !end.IsZero() {
				to = minTime(to, end)
				span = end.Sub(from)
			}
			if to.Sub(from) <= 0 {
				continue
			}
			share := float64(to.Sub(from)) / float64(span)
			res := verify.Gate(name, live.Versions(from, to), version, g, share)
			if res.Status == verify.Fail || (!end.IsZero() && share >= 1) {
				return res, nil, nil
			}
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (Canary) Run(ctx context.Context, env *steps.Env, st scenarios.Step, rec *steps.Record) error {
	m := st.Migrate
	ns := env.NamespaceOf(m.Target)
	expect := m.Expect
	if expect == "" {
		expect = Promoted
	}
	n, err := env.Ops.Replicas(ctx, ns, m.Target)
	if err != nil {
		return err
	}
	stableVersion := servedBy(ctx, env, ns, m.Target)
	_, name, _ := strings.Cut(m.Target, "/")
	canary := "deployment/" + name + "-canary"
	change := release(env, m)
	if m.Manifest != "" {
		if change.Template, err = newTemplate(env.Path(m.Manifest), m.Target); err != nil {
			return err
		}
	}
	rec.Set("canary", canary)
	rec.Set("stable_version", stableVersion)
	rec.Set("version", m.Version)
	if err := env.Ops.Track(ctx, ns, m.Target, name+"-canary", "canary", 0, change); err != nil {
		return err
	}
	env.Defer(func(ctx context.Context) { _ = env.Ops.Delete(ctx, ns, canary, 2*time.Minute) })
	timeout := timeoutOf(m)
	var gates []verify.Result
	rollBack := func(why string) (time.Duration, error) {
		env.Log("canary %s: %s; rolling back", st.Name, why)
		rec.Set("breach_detected_at_s", sinceStart(env, time.Now()))
		took, err := restore(ctx, env, ns, []scaleTo{{m.Target, n}, {canary, 0}}, timeout)
		rec.Set("breach", why)
		rec.Set("time_to_restore_s", math.Round(took.Seconds()*10)/10)
		rec.Set("outcome", RolledBack)
		if stableVersion != "" {
			rec.Set("serves", stableVersion)
		}
		return took, err
	}
	abort := func(why string) error {
		took, err := rollBack(why)
		return judgeRollback(why, took, err, expect, withinOf(m), rec)
	}
	// Acceptance before any traffic moves: the canary's first pod, kept out of the Service, is tried
	// alone; only then does it join, as the first weight's first pod.
	if err := acceptCanary(ctx, env, st, ns, name, canary, timeout, rec); err != nil {
		switch {
		case ctx.Err() != nil:
			return err
		case isAcceptFailure(err):
			refused(rec, err, stableVersion)
			env.Log("canary %s: %v; no user reached it", st.Name, err)
			if expect == RolledBack {
				rec.SetOutcome(RolledBack)
				return nil
			}
			return workloads.Failed(fmt.Errorf("the canary failed its acceptance, no user reached it: %w", err))
		}
		rec.Set("outcome", "aborted")
		return err
	}
	var live steps.Live = env.Live
	if m.Gate.Probe != nil {
		svc := m.Service
		if svc == "" && env.Sample != nil {
			svc = sampleService
		}
		read, stop, err := probeVersions(ctx, env, m, ns, name, svc, stableVersion)
		if err != nil {
			return fmt.Errorf("gate probes: %w", err)
		}
		defer stop()
		live = read
		rec.Set("attribution", fmt.Sprintf("GET %s at %s to Services of the canary's pods alone and of the stable pods alone", m.Gate.Probe.Path, fmt.Sprintf("%g/s", m.Gate.Probe.Rate.PerSecond)))
	}
	for i, w := range m.Weights {
		c := max(1, int(math.Round(float64(n)*float64(w)/100)))
		if c > n {
			c = n
		}
		env.Log("canary %s: weight %d%%: %d canary, %d stable", st.Name, w, c, n-c)
		// The gate watches from before the canary grows: its pods take traffic as soon as they are
		// ready, and the stable Deployment shrinks (a drain of many seconds) while they do.
		from := time.Now()
		sctx, stopScaling := context.WithCancel(ctx)
		scaled := make(chan error, 1)
		go func() {
			if err := env.Ops.Scale(sctx, ns, canary, c, timeout); err != nil {
				scaled <- fmt.Errorf("weight %d%%: the canary's pods did not become ready: %v", w, firstLine(err))
				return
			}
			if err := env.Ops.Scale(sctx, ns, m.Target, n-c, timeout); err != nil {
				scaled <- fmt.Errorf("weight %d%%: the stable Deployment did not scale to %d: %v", w, n-c, firstLine(err))
				return
			}
			scaled <- nil
		}()
		res, serr, err := watch(ctx, live, fmt.Sprintf("gate %d (%d%%)", i+1, w), from, scaled, holdOf(m), m.Version, gateSpec(m, false))
		stopScaling()
		if err != nil {
			return err
		}
		if serr != nil {
			return abort(serr.Error())
		}
		if res.Status == verify.Fail {
			if t, ok := firstFailure(env, from, m.Version); ok {
				rec.Set("first_failure_at_s", sinceStart(env, t))
			}
		}
		gates = append(gates, res)
		rec.Set("gates", gates)
		switch res.Status {
		case verify.Fail:
			return abort(res.Message)
		case verify.Error:
			// A gate that could not judge is no safety net, whatever was expected: roll back, and
			// say the rehearsal could not measure.
			if _, err := rollBack(res.Message); err != nil {
				return fmt.Errorf("could not judge the canary: %s; rolling back did not restore the stable version: %w", res.Message, err)
			}
			return fmt.Errorf("could not judge the canary (rolled back): %s", res.Message)
		}
	}
	// Promote: the stable Deployment takes the release, then the canary goes.
	env.Log("canary %s: every gate passed; promoting %s", st.Name, m.Version)
	before, _ := env.Ops.Revision(ctx, ns, m.Target)
	rec.Set("revision_before", before)
	if err := promote(ctx, env, ns, m.Target, canary, n, timeout, change); err != nil {
		return err
	}
	after, _ := env.Ops.Revision(ctx, ns, m.Target)
	rec.Set("revision_after", after)
	rec.Set("outcome", Promoted)
	rec.Set("serves", m.Version)
	if expect != Promoted {
		return workloads.Failed(fmt.Errorf("every gate passed a release expected to be rolled back: promoted %s", m.Version))
	}
	rec.SetOutcome(Promoted)
	return nil
}

// promote moves the release into the stable Deployment: the pods it still has take the change (its
// own rolling update), then it grows back to n replicas at the pace of its own maxSurge while the
// canary gives up as many pods as each step added, and finally the canary is gone. Growing the stable
// Deployment from none to all at once starts every pod at the same moment: on a small cluster that
// burst starves the database its requests wait on (a sound canary on a two-core machine failed
// requests in exactly that second, and only there).
func promote(ctx context.Context, env *steps.Env, ns, stable, canary string, n int, timeout time.Duration, change workloads.Change) error {
	if err := env.Ops.SetContainer(ctx, ns, stable, change); err != nil {
		return err
	}
	if err := env.Ops.WaitRollout(ctx, ns, stable, timeout); err != nil {
		return err
	}
	have, err := env.Ops.Replicas(ctx, ns, stable)
	if err != nil {
		return err
	}
	inCanary, err := env.Ops.Replicas(ctx, ns, canary)
	if err != nil {
		return err
	}
	surge, err := env.Ops.Surge(ctx, ns, stable)
	if err != nil {
		return err
	}
	for have < n {
		k := min(surge, n-have)
		have += k
		if err := env.Ops.SetReplicas(ctx, ns, stable, have); err != nil {
			return err
		}
		if err := env.Ops.WaitServing(ctx, ns, stable, have, timeout); err != nil {
			return err
		}
		// The canary's pods drain (out of the endpoints, then stopped) while the next ones start.
		inCanary = max(0, inCanary-k)
		if err := env.Ops.SetReplicas(ctx, ns, canary, inCanary); err != nil {
			return err
		}
	}
	if err := env.Ops.Scale(ctx, ns, canary, 0, timeout); err != nil {
		return err
	}
	return env.Ops.WaitRollout(ctx, ns, stable, timeout)
}

// acceptCanary tries the canary alone before any user reaches it, when the Service it joins is known
// (the sample's, or migrate.service): the Service is pinned to the stable pods (by their
// pod-template-hash), the canary gets its first pod, and the smoke test and acceptance run on a
// Service of the canary's own, as a blue-green's green's do. Passed, the Service gets its
// selector back and the pod joins it; failed, the pod goes first. Without a known Service there is
// nothing to keep the pod out of, and no acceptance: the record says so.
func acceptCanary(ctx context.Context, env *steps.Env, st scenarios.Step, ns, name, canary string, timeout time.Duration, rec *steps.Record) error {
	m := st.Migrate
	svc := m.Service
	if svc == "" && env.Sample != nil {
		svc = sampleService
	}
	if svc == "" {
		rec.Set("acceptance", "none: name the Service the canary joins (migrate.service) to try it alone first")
		return nil
	}
	if m.Smoke != nil && m.Smoke.Skip && m.Accept != nil && m.Accept.Skip {
		return accept(ctx, env, "", st.Name, m, rec) // records that there was none
	}
	orig, err := env.Ops.Selector(ctx, ns, svc)
	if err != nil {
		return err
	}
	stableHash, err := env.Ops.PodTemplateHash(ctx, ns, m.Target)
	if err != nil {
		return err
	}
	if err := env.Ops.SetSelector(ctx, ns, svc, pinned(orig, stableHash)); err != nil {
		return err
	}
	cctx := context.WithoutCancel(ctx)
	restore := func(cause error) error {
		if err := env.Ops.SetSelector(cctx, ns, svc, orig); err != nil {
			if cause != nil {
				return fmt.Errorf("%w; and the Service could not be given its selector back: %v", cause, err)
			}
			return err
		}
		return cause
	}
	// The first pod is out of the Service; a pod that failed goes before the selector is restored.
	goAway := func(cause error) error {
		_ = env.Ops.Scale(cctx, ns, canary, 0, timeout)
		return restore(cause)
	}
	if err := env.Ops.Scale(ctx, ns, canary, 1, timeout); err != nil {
		return goAway(workloads.Failed(fmt.Errorf("the canary's first pod did not become ready, no user reached it: %v", firstLine(err))))
	}
	hash, err := env.Ops.PodTemplateHash(ctx, ns, canary)
	if err != nil {
		return goAway(err)
	}
	if err := smoke(ctx, env, ns, svc, name+"-canary-smoke", st.Name, pinned(orig, hash), m, rec); err != nil {
		if !isAcceptFailure(err) && ctx.Err() == nil {
			// A smoke test the canary failed is a rejection before any traffic, like an acceptance.
			err = acceptFailed("smoke test: %v", err)
		}
		return goAway(err)
	}
	return restore(nil)
}

// judgeRollback is a step's outcome after an automatic rollback: ok (rolled-back) only when one was
// expected and it restored service within its bound.
func judgeRollback(why string, took time.Duration, err error, expect string, within time.Duration, rec *steps.Record) error {
	switch {
	case err != nil:
		return workloads.Failed(fmt.Errorf("%s, and the rollback did not restore the previous version: %w", why, err))
	case expect != RolledBack:
		return workloads.Failed(fmt.Errorf("rolled back: %s (restored in %s)", why, took.Round(100*time.Millisecond)))
	case took > within:
		return workloads.Failed(fmt.Errorf("rolled back as expected (%s), but restoring took %s, over the %s bound", why, took.Round(100*time.Millisecond), within))
	}
	rec.SetOutcome(RolledBack)
	return nil
}

type scaleTo struct {
	target string
	n      int
}

// restore scales several targets at once, and returns when service is restored: each target has
// exactly its number of ready pods and none of the others serves (pods that are terminating are out
// of the endpoints already). Then it waits, outside the time it reports, until the surplus pods
// are gone.
func restore(ctx context.Context, env *steps.Env, ns string, to []scaleTo, timeout time.Duration) (time.Duration, error) {
	ctx = context.WithoutCancel(ctx)
	start := time.Now()
	for _, s := range to {
		if err := env.Ops.SetReplicas(ctx, ns, s.target, s.n); err != nil {
			return time.Since(start), err
		}
	}
	errs := make(chan error, len(to))
	for _, s := range to {
		go func() { errs <- env.Ops.WaitServing(ctx, ns, s.target, s.n, timeout) }()
	}
	var first error
	for range to {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	took := time.Since(start)
	if first != nil {
		return took, first
	}
	for _, s := range to {
		if err := env.Ops.WaitRollout(ctx, ns, s.target, timeout); err != nil {
			return took, err
		}
	}
	return took, nil
}

// sinceStart is t in seconds from the load's start, to a tenth.
func sinceStart(env *steps.Env, t time.Time) float64 {
	return math.Round(t.Sub(env.Start).Seconds()*10) / 10
}

// firstFailure is the start of the first whole second since from in which version, or no version,
// failed a request: where a gate's breach began.
func firstFailure(env *steps.Env, from time.Time, version string) (time.Time, bool) {
	k := math.Ceil(from.Sub(env.Start).Seconds())
	for t := env.Start.Add(time.Duration(k) * time.Second); t.Add(time.Second).Before(time.Now()); t = t.Add(time.Second) {
		w := env.Live.Versions(t, t.Add(time.Second))
		if w.By[version].Failed > 0 || w.Unversioned.Failed > 0 {
			return t, true
		}
	}
	return time.Time{}, false
}

func firstLine(err error) string {
	first, _, _ := strings.Cut(err.Error(), "\n")
	return first
}
