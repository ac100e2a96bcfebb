package faults

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/steps"
	"github.com/rehearse-dev/rehearse/verify"
)

// PodKill deletes pods a selector picks: one, a count, a percentage or all of the running ones,
// chosen with the run's seed, with their own grace period or the one given (0: SIGKILL), once or
// every so often for a while. For each round it records the pods killed and when, and as evidence
// that the fault took effect: whether every victim went away and whether as many pods as before
// were running and ready again afterwards (replaced by their controller).
type PodKill struct{}

func (PodKill) Name() string                 { return "fault/pod-kill" }
func (PodKill) Takes(st scenarios.Step) bool { return st.Fault != nil && st.Fault.Type == "pod-kill" }

func (PodKill) Check(st scenarios.Step, sc *scenarios.Loaded) []steps.Problem {
	f := st.Fault
	var ps []steps.Problem
	if f.Selector == "" {
		ps = append(ps, steps.Problemf("fault.selector", "pod-kill needs a label selector"))
	} else if _, err := labels.Parse(f.Selector); err != nil {
		ps = append(ps, steps.Problemf("fault.selector", "%q: %v", f.Selector, err))
	}
	switch mode(f) {
	case "one", "all":
	case "count":
		if f.Count < 1 {
			ps = append(ps, steps.Problemf("fault.count", "mode count needs a count of at least 1"))
		}
	case "percent":
		if f.Percent < 1 || f.Percent > 100 {
			ps = append(ps, steps.Problemf("fault.percent", "%d: want 1 to 100", f.Percent))
		}
	default:
		ps = append(ps, steps.Problemf("fault.mode", "%q: want one, count, percent or all", f.Mode))
	}
	if f.Grace != nil && f.Grace.Duration < 0 {
		ps = append(ps, steps.Problemf("fault.grace", "must not be negative"))
	}
	if (f.Every.Duration > 0) != (f.For.Duration > 0) {
		ps = append(ps, steps.Problemf("fault.every", "every and for go together: kill every 10s for 60s"))
	}
	return append(ps, notFor(f, "pod-kill")...)
}

// mode is how many pods a kill takes, as written or implied.
func mode(f *scenarios.Fault) string {
	switch {
	case f.Mode != "":
		return f.Mode
	case f.Count > 0:
		return "count"
	case f.Percent > 0:
		return "percent"
	}
	return "one"
}

// notFor refuses the settings of other fault types, so a misplaced one is not silently ignored.
func notFor(f *scenarios.Fault, typ string) []steps.Problem {
	var ps []steps.Problem
	const kill, drain, loss = "pod-kill", "node-drain", "node-loss"
	for _, s := range []struct {
		field string
		set   bool
		for_  []string
	}{
		{"selector", f.Selector != "", []string{kill}}, {"namespace", f.Namespace != "", []string{kill}},
		{"mode", f.Mode != "", []string{kill}}, {"count", f.Count != 0, []string{kill}}, {"percent", f.Percent != 0, []string{kill}},
		{"grace", f.Grace != nil, []string{kill}}, {"every", f.Every.Duration != 0, []string{kill}},
		{"for", f.For.Duration != 0, []string{kill, loss}},
		{"node", f.Node != "", []string{drain, loss}}, {"label", f.Label != "", []string{drain, loss}},
		{"running", f.Running != nil, []string{drain, loss}},
		{"keep", f.Keep, []string{drain}}, {"timeout", f.Timeout.Duration != 0, []string{drain, loss}},
	} {
		if s.set && !slices.Contains(s.for_, typ) {
			ps = append(ps, steps.Problemf("fault."+s.field, "is for %s, not %s", strings.Join(s.for_, " and "), typ))
		}
	}
	return ps
}

func (PodKill) Run(ctx context.Context, env *steps.Env, st scenarios.Step, rec *steps.Record) error {
	f := st.Fault
	sel, err := labels.Parse(f.Selector)
	if err != nil {
		return err
	}
	nss := env.Namespaces()
	if f.Namespace != "" {
		nss = []string{f.Namespace}
	}
	r := rng(env, st.Name)
	var kills []verify.Kill
	// Rounds are due every `every` from the step's start while within `for` (0, 10s, 20s, ... for
	// every: 10s, for: 60s); a round that waited long for its replacements delays the next one, never
	// drops it.
	start := time.Now()
	for round := 1; ; round++ {
		k, err := killOnce(ctx, env, nss, sel, f, r.Perm)
		kills = append(kills, k)
		rec.Set("kills", kills)
		if err != nil {
			return err
		}
		due := start.Add(time.Duration(round) * f.Every.Duration)
		if f.Every.Duration <= 0 || due.Sub(start) >= f.For.Duration {
			return nil
		}
		t := time.NewTimer(time.Until(due))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// killOnce kills the victims of one round and waits (up to their grace and a minute more) for them
// to go and for the pods to be back.
func killOnce(ctx context.Context, env *steps.Env, nss []string, sel labels.Selector, f *scenarios.Fault, perm func(int) []int) (verify.Kill, error) {
	cs := env.Ops.Clientset()
	var pods []corev1.Pod
	for _, ns := range nss {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return verify.Kill{}, err
		}
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
				pods = append(pods, p)
			}
		}
	}
	slices.SortFunc(pods, byName)
	k := verify.Kill{AtS: math.Round(time.Since(env.Start).Seconds()*10) / 10, Matched: len(pods)}
	if len(pods) == 0 {
		return k, nil // nothing to kill: fault-took-effect says so
	}
	n := 1
	switch mode(f) {
	case "count":
		n = min(f.Count, len(pods))
	case "percent":
		n = int(math.Ceil(float64(len(pods)) * float64(f.Percent) / 100))
	case "all":
		n = len(pods)
	}
	// Replaced means as many ready pods as before, or as many as their controllers want when that
	// is fewer (a rollout's surge pod killed with the old ones it was replacing).
	want := countReady(pods)
	if n, err := env.Ops.ExpectedReplicas(ctx, nss, sel.String()); err == nil && n > 0 {
		want = min(want, n)
	}
	opts := metav1.DeleteOptions{}
	wait := time.Minute
	if f.Grace != nil {
		g := int64(f.Grace.Duration / time.Second)
		opts.GracePeriodSeconds = &g
		wait += f.Grace.Duration
	} else if gp := pods[0].Spec.TerminationGracePeriodSeconds; gp != nil {
		wait += time.Duration(*gp) * time.Second
	}
	var victims []corev1.Pod
	for _, i := range perm(len(pods))[:n] {
		victims = append(victims, pods[i])
	}
	killed := time.Now()
	for _, v := range victims {
		if err := cs.CoreV1().Pods(v.Namespace).Delete(ctx, v.Name, opts); err != nil && !apierrors.IsNotFound(err) {
			return k, fmt.Errorf("kill pod %s/%s: %w", v.Namespace, v.Name, err)
		}
		k.Pods = append(k.Pods, v.Namespace+"/"+v.Name)
		env.Log("pod-kill: killed %s/%s", v.Namespace, v.Name)
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if !k.Gone {
			k.Gone = allGone(ctx, env, victims)
		}
		if k.Gone {
			now, err := matching(ctx, env, nss, sel)
			if err == nil && countReady(now) >= want {
				k.Replaced, k.ReplacedInS = true, math.Round(time.Since(killed).Seconds()*10)/10
				return k, nil
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	return k, ctx.Err()
}

// byName orders pods by namespace/name: the order seeded choices index into.
func byName(a, b corev1.Pod) int {
	return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
}

// selected lists the pods a label selector picks in the rehearsal's namespaces.
func selected(ctx context.Context, env *steps.Env, selector string) ([]corev1.Pod, error) {
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, err
	}
	return matching(ctx, env, env.Namespaces(), sel)
}

func matching(ctx context.Context, env *steps.Env, nss []string, sel labels.Selector) ([]corev1.Pod, error) {
	var out []corev1.Pod
	for _, ns := range nss {
		list, err := env.Ops.Clientset().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return nil, err
		}
		out = append(out, list.Items...)
	}
	return out, nil
}

// allGone says whether every victim is gone (or replaced by a new pod of the same name: a
// StatefulSet's).
func allGone(ctx context.Context, env *steps.Env, victims []corev1.Pod) bool {
	for _, v := range victims {
		p, err := env.Ops.Clientset().CoreV1().Pods(v.Namespace).Get(ctx, v.Name, metav1.GetOptions{})
		if err == nil && p.UID == v.UID {
			return false
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return false
		}
	}
	return true
}

func countReady(pods []corev1.Pod) int {
	n := 0
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n
}
