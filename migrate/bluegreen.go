package migrate

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/steps"
	"github.com/rehearse-dev/rehearse/verify"
	"github.com/rehearse-dev/rehearse/workloads"
)

// sampleService is the sample app's Service.
const sampleService = "orders"

// BlueGreen deploys the new release as green (NAME-green: a copy of the blue Deployment with the
// change made) beside blue, with the Service pinned to blue's pods (their pod-template-hash) so
// green gets no traffic before its time. Green must roll out, then pass a smoke test through a
// Service of its own (reached through the API server, trackService) answering 2xx from the new version every time. Then
// one update of the Service's selector switches all traffic to green's pods, and a gate watches the
// live load: green must answer, within its error and latency bounds, and no answer may come from
// another version. A breach switches back to blue at once (time to restore recorded); a good switch
// keeps blue for keep, then scales it to 0, and leaves a switch-back for a rollback drill.
type BlueGreen struct{}

func (BlueGreen) Name() string { return "migrate/blue-green" }
func (BlueGreen) Takes(st scenarios.Step) bool {
	return st.Migrate != nil && st.Migrate.Strategy == "blue-green"
}

func (BlueGreen) Check(st scenarios.Step, sc *scenarios.Loaded) []steps.Problem {
	m := st.Migrate
	ps := checkTracked(m, sc)
	if sc.Workload.Sample == "" && m.Service == "" {
		ps = append(ps, steps.Problemf("migrate.service", "the Service whose selector switches is required"))
	}
	if m.Manifest != "" && sc.Workload.Sample == "" {
		if _, err := greenManifest(sc.Path(m.Manifest), m.Target); err != nil {
			ps = append(ps, steps.Problemf("migrate.manifest", "%v", err))
		}
	}
	if m.Gate.Probe != nil {
		ps = append(ps, steps.Problemf("migrate.gate.probe", "is for the canary strategy: after a blue-green switch every answer is green's"))
	}
	if m.Smoke != nil && m.Smoke.Requests < 0 {
		ps = append(ps, steps.Problemf("migrate.smoke.requests", "must not be negative"))
	}
	if m.Smoke != nil && m.Smoke.Path != "" && !strings.HasPrefix(m.Smoke.Path, "/") {
		ps = append(ps, steps.Problemf("migrate.smoke.path", "%q: want a path such as /healthz", m.Smoke.Path))
	}
	ps = append(ps, acceptProblems(m.Accept)...)
	return append(ps, notFor(m, "blue-green")...)
}

func (BlueGreen) Run(ctx context.Context, env *steps.Env, st scenarios.Step, rec *steps.Record) error {
	m := st.Migrate
	ns := env.NamespaceOf(m.Target)
	expect := m.Expect
	if expect == "" {
		expect = Promoted
	}
	svc := m.Service
	if svc == "" {
		svc = sampleService
	}
	timeout := timeoutOf(m)
	n, err := env.Ops.Replicas(ctx, ns, m.Target)
	if err != nil {
		return err
	}
	blueVersion := servedBy(ctx, env, ns, m.Target)
	orig, err := env.Ops.Selector(ctx, ns, svc)
	if err != nil {
		return err
	}
	blueHash, err := env.Ops.PodTemplateHash(ctx, ns, m.Target)
	if err != nil {
		return err
	}
	_, name, _ := strings.Cut(m.Target, "/")
	green := "deployment/" + name + "-green"
	rec.Set("service", svc)
	rec.Set("blue_version", blueVersion)
	rec.Set("version", m.Version)
	rec.Set("green", green)
	// Pin the Service to blue's pods: the same endpoints as now, none of green's.
	if err := env.Ops.SetSelector(ctx, ns, svc, pinned(orig, blueHash)); err != nil {
		return err
	}
	if m.Manifest != "" {
		g, err := greenManifest(env.Path(m.Manifest), m.Target)
		if err != nil {
			return err
		}
		green = "deployment/" + g.Object.GetName()
		rec.Set("green", green)
		if err := env.Own.Apply(ctx, []workloads.Manifest{g}); err != nil {
			return err
		}
	} else if err := env.Ops.Track(ctx, ns, m.Target, name+"-green", "green", int32(n), release(env, m)); err != nil {
		return err
	}
	env.Defer(func(ctx context.Context) { _ = env.Ops.Delete(ctx, ns, green, 2*time.Minute) })
	// giveUp removes green and gives the Service its selector back (it picks only blue again).
	giveUp := func(cause error) error {
		cctx := context.WithoutCancel(ctx)
		_ = env.Ops.Delete(cctx, ns, green, timeout)
		if err := env.Ops.SetSelector(cctx, ns, svc, orig); err != nil {
			return fmt.Errorf("%w; and the Service could not be given its selector back: %v", cause, err)
		}
		return cause
	}
	if err := env.Ops.WaitRollout(ctx, ns, green, timeout); err != nil {
		rec.Set("outcome", "aborted")
		return giveUp(fmt.Errorf("green did not roll out, nothing was switched: %w", err))
	}
	greenHash, err := env.Ops.PodTemplateHash(ctx, ns, green)
	if err != nil {
		return giveUp(err)
	}
	if gd, err := env.Ops.Deployment(ctx, ns, green); err != nil {
		return giveUp(err)
	} else if !selects(orig, gd.Spec.Template.Labels) {
		return giveUp(workloads.Failed(fmt.Errorf("green's pods (%s) do not carry the labels Service %s selects (%v): a switch could never reach them", green, svc, orig)))
	}
	if err := smoke(ctx, env, ns, svc, name+"-green-smoke", st.Name, pinned(orig, greenHash), m, rec); err != nil {
		switch {
		case ctx.Err() != nil:
			rec.Set("outcome", "aborted")
			return giveUp(err)
		case isAcceptFailure(err):
			// Green failed its acceptance: no user ever reached it; the step is rolled back.
			refused(rec, err, blueVersion)
			env.Log("blue-green %s: %v; nothing was switched", st.Name, err)
			if cause := giveUp(err); cause != err {
				return cause
			}
			if expect == RolledBack {
				rec.SetOutcome(RolledBack)
				return nil
			}
			return workloads.Failed(fmt.Errorf("green failed its acceptance, nothing was switched: %w", err))
		}
		rec.Set("outcome", "aborted")
		return giveUp(workloads.Failed(fmt.Errorf("green failed its smoke test, nothing was switched: %w", err)))
	}
	switchBack := func(ctx context.Context) (time.Duration, error) {
		at := time.Now()
		if err := env.Ops.Scale(ctx, ns, m.Target, n, timeout); err != nil {
			return time.Since(at), err
		}
		if err := env.Ops.SetSelector(ctx, ns, svc, pinned(orig, blueHash)); err != nil {
			return time.Since(at), err
		}
		took := time.Since(at)
		_ = env.Ops.Delete(ctx, ns, green, timeout)
		return took, env.Ops.SetSelector(ctx, ns, svc, orig)
	}
	env.Log("blue-green %s: switching Service %s to green (%s)", st.Name, svc, m.Version)
	if err := env.Ops.SetSelector(ctx, ns, svc, pinned(orig, greenHash)); err != nil {
		return giveUp(err)
	}
	switched := time.Now()
	rec.Set("switched_at_s", math.Round(switched.Sub(env.Start).Seconds()*10)/10)
	// Connections are recycled within about a second and kube-proxy follows the switch within about
	// another; the gate judges from 3 s after the switch, so an answer from blue in its window means
	// the switch did not take.
	res, _, err := watch(ctx, env.Live, "after the switch", switched.Add(3*time.Second), nil, holdOf(m), m.Version, gateSpec(m, true))
	if err != nil {
		return err
	}
	rec.Set("gates", []verify.Result{res})
	if res.Status != verify.Pass {
		env.Log("blue-green %s: %s; switching back to blue", st.Name, res.Message)
		took, err := switchBack(context.WithoutCancel(ctx))
		rec.Set("breach", res.Message)
		rec.Set("time_to_restore_s", math.Round(took.Seconds()*10)/10)
		rec.Set("outcome", RolledBack)
		if blueVersion != "" {
			rec.Set("serves", blueVersion)
		}
		if res.Status == verify.Error {
			return fmt.Errorf("could not judge green after the switch (switched back): %s", res.Message)
		}
		return judgeRollback(res.Message, took, err, expect, withinOf(m), rec)
	}
	rec.Set("outcome", Promoted)
	rec.Set("serves", m.Version)
	if m.Keep.Duration > 0 {
		env.Log("blue-green %s: green serves; blue kept for %s", st.Name, m.Keep.Duration)
		t := time.NewTimer(m.Keep.Duration)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if err := env.Ops.Scale(ctx, ns, m.Target, 0, timeout); err != nil {
		return err
	}
	env.PushUndo(m.Target, steps.Undo{Kind: "migrate/blue-green", Do: func(ctx context.Context, rec *steps.Record) error {
		rec.Set("switch_back_to", m.Target)
		if blueVersion != "" {
			rec.Set("serves", blueVersion)
		}
		if _, err := switchBack(ctx); err != nil {
			return workloads.Failed(fmt.Errorf("switch back to blue: %w", err))
		}
		return nil
	}})
	if expect != Promoted {
		return workloads.Failed(fmt.Errorf("the gate passed a release expected to be switched back: green %s serves", m.Version))
	}
	rec.SetOutcome(Promoted)
	return nil
}

// smoke tests green alone before the switch: a Service of its own selecting only green's pods
// (trackService), then requests GETs of the smoke path, each of which must answer 2xx from the new version.
//
// Then, on the same Service, green's acceptance (accept): a failure there is an *errAccept.
func smoke(ctx context.Context, env *steps.Env, ns, like, name, stepName string, selector map[string]string, m *scenarios.Migrate, rec *steps.Record) error {
	skip := m.Smoke != nil && m.Smoke.Skip
	if skip {
		rec.Set("smoke", "skipped")
	}
	_, _, _, writes := acceptWrites(env, m.Accept)
	if skip && (m.Accept != nil && m.Accept.Skip || !writes && (m.Accept == nil || len(m.Accept.Requests) == 0)) {
		return accept(ctx, env, "", stepName, m, rec) // records that there was none
	}
	path, n := "/", 20
	if env.Sample != nil {
		path = "/orders?limit=1"
	}
	if m.Smoke != nil {
		if m.Smoke.Path != "" {
			path = m.Smoke.Path
		}
		if m.Smoke.Requests > 0 {
			n = m.Smoke.Requests
		}
	}
	base, done, err := trackService(ctx, env, ns, name, like, selector)
	if err != nil {
		return err
	}
	defer done()
	url := base + path
	client := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func() (int, string, error) {
		code, _, version, err := do(ctx, client, env.Version, http.MethodGet, url, "")
		return code, version, err
	}
	if err := firstAnswer(ctx, client, url); err != nil {
		return err
	}
	if skip {
		return accept(ctx, env, base, stepName, m, rec)
	}
	versionless := m.Gate.Probe != nil
	if versionless {
		rec.Set("smoke_version", "not read: the gate judges by probes (the app says no version); the smoke Service holds the new pods alone")
	}
	bad := smokeFaults(get, n, m.Version, versionless)
	rec.Set("smoke", fmt.Sprintf("%d of %d GET %s good", n-len(bad), n, path))
	if len(bad) > 0 {
		return fmt.Errorf("%d of %d GET %s failed: %s", len(bad), n, path, strings.Join(bad[:min(len(bad), 3)], "; "))
	}
	return accept(ctx, env, base, stepName, m, rec)
}

// trackService makes Service name of selector's pods alone (to like's port) and serves it on
// 127.0.0.1 through the API server (workloads.ServiceProxy): base is where, done stops and removes it.
func trackService(ctx context.Context, env *steps.Env, ns, name, like string, selector map[string]string) (base string, done func(), err error) {
	port, err := env.Ops.TrackService(ctx, ns, name, like, selector)
	if err != nil {
		return "", nil, err
	}
	remove := func() { _ = env.Ops.Delete(context.WithoutCancel(ctx), ns, "service/"+name, time.Minute) }
	base, stop, err := env.Ops.ServiceProxy(ctx, ns, name, port)
	if err != nil {
		remove()
		return "", nil, fmt.Errorf("Service %s: %w", name, err)
	}
	return base, func() { stop(); remove() }, nil
}

// firstAnswer waits (up to 30 s) until url reaches a pod: a new Service's endpoints take the
// endpoints controller a moment, and the API server's refusals before them (its Endpoints not found,
// "no endpoints available") are the harness's wait, not the release's. A pod that answers, whatever it answers, has answered: that is
// the release's to be judged by; so is a pod that refuses once its endpoint is listed.
func firstAnswer(ctx context.Context, client *http.Client, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var last string
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if !workloads.NotYetServed(resp.StatusCode, body) {
				return nil
			}
			last = fmt.Sprintf("status %d%s", resp.StatusCode, bodyLine(string(body)))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("GET %s never reached a pod: %s", url, last)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// smokeFaults sends n GETs and says what was wrong with each: an error, a status outside 2xx, or
// another version than want. versionless is a canary judged by its gate's probes, of an app that
// says its version nowhere: the smoke Service selects the canary's pods alone, so an answer without
// a version is the new version's by construction, but a version it does say must still be want.
func smokeFaults(get func() (int, string, error), n int, want string, versionless bool) []string {
	var bad []string
	for range n {
		code, version, err := get()
		switch {
		case err != nil:
			bad = append(bad, err.Error())
		case code < 200 || code > 299:
			bad = append(bad, fmt.Sprintf("status %d", code))
		case version == "" && versionless:
		case version != want:
			bad = append(bad, fmt.Sprintf("answered by version %q, not %q", version, want))
		}
	}
	return bad
}

// pinned is a Service selector narrowed to the pods of one ReplicaSet (by pod-template-hash).
func pinned(selector map[string]string, hash string) map[string]string {
	s := maps.Clone(selector)
	s[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	return s
}

// refused records a new version rejected before any user reached it: rolled back, the breach, and
// the version that still serves.
func refused(rec *steps.Record, err error, serves string) {
	rec.Set("outcome", RolledBack)
	rec.Set("breach", err.Error())
	if serves != "" {
		rec.Set("serves", serves)
	}
}

// selects says whether a Service selector picks pods with these labels.
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// greenManifest reads green's Deployment from file: exactly one Deployment, not named as blue.
func greenManifest(file, blue string) (workloads.Manifest, error) {
	ms, err := workloads.ReadManifests([]string{file})
	if err != nil {
		return workloads.Manifest{}, err
	}
	if len(ms) != 1 || ms[0].Object.GetKind() != "Deployment" {
		return workloads.Manifest{}, fmt.Errorf("%s: want exactly one Deployment (green), found %d objects", file, len(ms))
	}
	if "deployment/"+ms[0].Object.GetName() == blue {
		return workloads.Manifest{}, fmt.Errorf("%s: green is named as blue (%s); give it a name of its own", file, blue)
	}
	return ms[0], nil
}
