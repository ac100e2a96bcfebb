package runner

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"k8s.io/client-go/rest"

	"github.com/rehearse-dev/rehearse/clusters"
	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/replay"
	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/steps"
	"github.com/rehearse-dev/rehearse/verify"
	"github.com/rehearse-dev/rehearse/workloads"
)

// Run rehearses a scenario: a short pipeline of phases (prepare, cluster, deploy, record and load,
// steps, tail, judge, report), each a small method of run. The runner knows no step kind (Kinds) and
// no check (verify.Table). It returns the summary (nil when the run could not reach a verdict) and
// a HarnessError for what kept the harness from measuring.
func Run(ctx context.Context, sc *scenarios.Loaded, opts Options) (*reports.Summary, error) {
	if ps := Check(sc); len(ps) > 0 {
		return nil, &HarnessError{ps}
	}
	r := &run{ctx: ctx, cleanup: context.WithoutCancel(ctx), sc: sc, opts: opts}
	defer r.unwind()
	for _, phase := range []func() error{r.prepare, r.cluster, r.deploy, r.startLoad, r.steps, r.tail} {
		if err := phase(); err != nil {
			return nil, err
		}
	}
	sum := r.judge()
	return sum, r.report(sum)
}

// run is one rehearsal's state as its phases fill it in.
type run struct {
	ctx, cleanup context.Context
	sc           *scenarios.Loaded
	opts         Options
	undo         []func() // run in reverse order when the run ends, however it ends

	out    string
	seed   uint64
	runID  string
	bundle *replay.Run

	cfg    *rest.Config
	kc     *kindCluster
	sys    *system
	base   string
	rec    *clusters.Recorder
	recErr error

	metrics      *reports.Metrics
	from         string // where the load is sent from: host or cluster
	host         *load.HostMonitor
	lr           *load.Run
	started      time.Time
	stopProgress func()
	env          *steps.Env
	ran          []reports.Step

	agg      *load.Aggregator
	finished time.Time
	hostLoad load.HostLoad
	timeline []verify.Change // the cluster's, with the steps', on the run's clock
}

// later keeps f to run when the run ends (the last kept runs first).
func (r *run) later(f func()) { r.undo = append(r.undo, f) }

func (r *run) unwind() {
	for i := len(r.undo) - 1; i >= 0; i-- {
		r.undo[i]()
	}
}

func (r *run) progress(format string, args ...any) { progress(r.opts.Progress, format, args...) }

// prepare makes the run's directory, chooses the seed and writes the replay bundle.
//
// The seed chooses the load's sequence of requests and the steps' victims; the run ID prefixes the
// request ids. A replay takes its bundle's seed but, like every run, a run ID of its own: the same
// targets in the same order, numbered alike (<run ID>-<n>), with ids that cannot collide with the
// rows the replayed run left in a store that outlived it (a kept cluster, a database outside the
// rehearsal's namespace). With the run's ids such a store would read the replay's writes as stored
// even when they never landed — the sample even acknowledges a repeated write as idempotent — and
// acked-writes-durable would pass on the first run's rows.
func (r *run) prepare() error {
	r.out = r.opts.RunDir(r.sc.Metadata.Name)
	if err := os.MkdirAll(r.out, 0o755); err != nil {
		return harness("%v", err)
	}
	r.seed = chooseSeed(r.opts.Seed)
	r.runID = load.NewRunID(r.sc.Metadata.Name, r.seed)
	r.bundle = newBundle(r.sc, r.opts, r.seed, r.runID)
	if err := replay.Write(r.out, r.sc, r.bundle); err != nil {
		return harness("replay bundle: %v", err)
	}
	return nil
}

// cluster finds or creates the cluster (deleted at the end when the run created it) and refuses,
// before anything is deployed, a step that needs more than its API (node-loss: its node containers).
func (r *run) cluster() error {
	cfg, kc, err := getCluster(r.ctx, r.sc, r.opts)
	if err != nil {
		return err
	}
	r.cfg, r.kc = cfg, kc
	if r.deletesCluster() {
		r.later(func() {
			r.progress("deleting kind cluster %s", kc.Name)
			_ = kc.Delete(r.cleanup)
		})
	}
	if err := recordCluster(r.ctx, r.out, r.bundle, r.sc, r.opts, kc); err != nil {
		return harness("replay bundle: %v", err)
	}
	if err := Kinds.Preflight(r.sc, kc.machines()); err != nil {
		return harness("%v", err)
	}
	if kc != nil && kc.Cluster != nil && kc.NodePortsOrDefault().UserlandProxied("/proc") {
		r.progress("warning: Docker's userland proxy (docker-proxy) carries the load to 127.0.0.1: it loses a SYN now and then (1 s stalls, rare resets that fail zero-failed-requests for a sound system); set \"userland-proxy\": false in /etc/docker/daemon.json and restart dockerd (make docker does)")
	}
	return nil
}

func (r *run) deletesCluster() bool { return r.kc != nil && r.kc.created && !r.opts.KeepCluster }

// deploy deploys the workload (its namespace deleted at the end, unless the cluster goes with it:
// waiting for the namespace first only made the run ~12 s longer) and serves the run's metrics.
func (r *run) deploy() error {
	sys, teardown, err := deploy(r.ctx, r.sc, r.cfg, r.kc, r.opts.Progress)
	r.sys = sys
	if teardown != nil && !r.deletesCluster() {
		r.later(func() {
			r.progress("deleting the workload (namespace %s)", sys.ns)
			teardown(r.cleanup)
		})
	}
	if err != nil {
		return err
	}
	r.metrics = reports.NewMetrics(r.sc.Metadata.Name)
	if r.opts.MetricsAddr != "" {
		addr, stop, err := r.metrics.Serve(r.opts.MetricsAddr)
		if err != nil {
			return harness("metrics: %v", err)
		}
		r.later(stop)
		r.progress("metrics on http://%s/metrics", addr)
	}
	return nil
}

// startLoad starts the cluster's recorder and then the load for the whole timeline, with the host
// sampled beside it (a saturated host is named in the report).
func (r *run) startLoad() error {
	r.from = loadFrom(r.sc, r.kc)
	var agents []load.Agent
	lcfg := loadConfig(r.sc, "", r.out, r.seed, r.runID)
	if r.from == "cluster" {
		var err error
		if agents, err = r.loadAgents(&lcfg); err != nil {
			return err
		}
	} else {
		r.base = r.sc.Load.BaseURL
		if r.base == "" {
			r.base = r.sys.url
		}
		lcfg.BaseURL = r.base
		if err := load.WaitAnswering(r.ctx, r.base, time.Minute); err != nil {
			return harness("load target: %v", err)
		}
	}
	// The cluster is recorded from before the load to after its tail: how each pod that left the
	// Service stopped (graceful-termination), and what explains a failure burst.
	r.rec, r.recErr = startRecorder(r.ctx, r.sys, r.base, r.opts.Progress)
	if r.rec != nil {
		r.later(r.rec.Stop)
	}
	runCtx, stopLoad := context.WithCancel(r.ctx)
	r.later(stopLoad)
	r.host = load.StartHostMonitor(time.Second)
	var lr *load.Run
	var err error
	if agents != nil {
		lr, err = load.StartAgents(runCtx, lcfg, agents)
	} else {
		lr, err = load.Start(runCtx, lcfg)
	}
	if err != nil {
		r.host.Stop(0, 0)
		return harness("load: %v", err)
	}
	r.lr = lr
	// Second 0 of the load's results: every window a step or check reads is counted from it. Load
	// agents start a moment from now, together: the steps wait for it.
	r.started = lr.Started()
	sleep(r.ctx, time.Until(r.started))
	r.metrics.LoadStarted(lr.Aggregates(), r.sc.Load.Rate.PerSecond)
	r.stopProgress = startProgress(r.opts.Progress, lr, r.started, r.metrics)
	return nil
}

// loadAgents starts the load agent pods (load.from: cluster) in the rehearsal's namespace, aims the
// load at the Service by its in-cluster name, and reaches the Service from here (read-backs) through
// the API server's service proxy: no node port is needed.
func (r *run) loadAgents(lcfg *load.Config) ([]load.Agent, error) {
	ops, ns, svc := r.sys.ops, r.sys.svcNS, r.sys.svc
	if svc == "" {
		return nil, harness("load.from: cluster: no Service to send the load to (name it in load.service)")
	}
	port, inCluster, err := ops.ServicePort(r.ctx, ns, svc)
	if err != nil {
		return nil, harness("load.service: %v", err)
	}
	lcfg.BaseURL = inCluster
	base, stop, err := ops.ServiceProxy(r.ctx, ns, svc, port)
	if err != nil {
		return nil, harness("load: reaching service %s through the API server: %v", svc, err)
	}
	r.later(stop)
	r.base = base
	if r.kc != nil && r.sys.sample == nil {
		done := phase(r.opts.Progress, fmt.Sprintf("loading the load agents' image into %s", r.kc.Name), nil)
		err := r.kc.LoadImages(r.ctx, workloads.OrdersImage)
		done(err)
		if err != nil {
			return nil, harness("load agents' image (build it with `rehearse images build`): %v", err)
		}
	}
	n := max(r.sc.Load.Generators, 1)
	done := phase(r.opts.Progress, fmt.Sprintf("starting %d load agent pods in %s", n, r.sys.ns), func() string { return ops.PodsStatus(r.ctx, r.sys.ns) })
	agents, remove, err := ops.LoadAgents(r.ctx, r.sys.ns, workloads.OrdersImage, n, 2*time.Minute)
	if remove != nil {
		r.later(func() { remove(r.cleanup) })
	}
	done(err)
	if err != nil {
		return nil, harness("load agents: %v", err)
	}
	for _, a := range agents {
		r.progress("load agent %s on %s sends to %s", a.Name, a.Node, inCluster)
	}
	return agents, nil
}

// steps runs the timeline of steps under the load.
func (r *run) steps() error {
	sys := r.sys
	env := &steps.Env{Ops: sys.ops, Sample: sys.sample, Own: sys.own, Release: sys.helm, Namespace: sys.ns, Dir: r.sc.CommandDir(), Relocated: r.sc.Relocated,
		Live:    r.lr.Aggregates(),
		Version: r.sc.Load.VersionReader(), Machines: r.kc.machines(), Seed: r.seed, RunID: r.lr.RunID(), Start: r.started,
		Logf: func(f string, a ...any) { r.progress(f, a...) }}
	env.Accept = acceptance(r.sc, r.lr.RunID())
	r.env = env
	if slices.ContainsFunc(r.sc.Steps, func(st scenarios.Step) bool { return st.Run != nil }) {
		remove, err := hostTools(r.ctx, env, r.cfg, r.kc, r.out, r.opts.Progress)
		r.later(remove)
		if err != nil {
			return harness("host commands: %v", err)
		}
	}
	r.later(func() { env.Cleanup(r.cleanup) })
	r.ran = runSteps(r.ctx, env, r.sc, r.opts.Progress, r.metrics)
	return nil
}

// tail keeps the load on after the last step, stops it, and waits (bounded) for pods still stopping.
func (r *run) tail() error {
	tail := scenarios.DefaultTail
	if r.sc.Load.Tail != nil {
		tail = r.sc.Load.Tail.Duration
	}
	if tail > 0 && r.ctx.Err() == nil {
		r.progress("steps done at %s; load goes on for the %s tail", time.Since(r.started).Round(time.Second), tail)
		sleep(r.ctx, tail)
	}
	r.lr.Stop()
	agg, lerr := r.lr.Wait()
	r.stopProgress()
	r.agg, r.finished = agg, time.Now()
	r.hostLoad = r.host.Stop(r.started.Sub(r.host.Started()), r.finished.Sub(r.host.Started()))
	if r.rec != nil && r.ctx.Err() == nil {
		// Pods that left the Service near the end (a last rollout) are still draining: see how they
		// stop (bounded by the longest termination grace this system is likely to ask for).
		if n := r.rec.Stopping(); n > 0 {
			r.progress("waiting up to %s for %d pods that left the Service to stop", settleMax, n)
			r.rec.Settle(r.ctx, settleMax)
		}
	}
	if r.ctx.Err() != nil {
		return harness("interrupted")
	}
	if lerr != nil {
		return harness("load: %v", lerr)
	}
	return nil
}

// judge asks the check table to judge the evidence, adds a check for each step the system failed
// or the harness could not carry out, and explains the failure bursts by the cluster's timeline.
func (r *run) judge() *reports.Summary {
	tot := r.agg.Totals()
	var windows []verify.Window
	for _, s := range r.ran {
		windows = append(windows, verify.Window{Name: windowName(s), Kind: s.Kind, Start: s.Started, End: s.Finished})
	}
	ev := &verify.Evidence{Ctx: r.ctx, Scenario: r.sc, Env: r.env, Started: r.started, Finished: r.finished, Totals: tot,
		Seconds: r.agg.Seconds(), Failures: r.agg.Failures(), Window: r.agg.Window, Windows: windows,
		Served: servedWindows(r.ran, r.finished), Faults: faultEvidence(r.ran), Drills: drills(r.sc, r.ran, r.finished),
		Watched: r.rec != nil || r.recErr != nil, TermErr: r.recErr, Out: r.out, BaseURL: r.base, RunID: r.lr.RunID()}
	if r.rec != nil {
		ev.Terminations, ev.TermErr = r.rec.Terminations()
	}
	checks := verify.Table.Judge(ev)
	for _, s := range r.ran {
		switch s.Status {
		case "failed":
			checks = append(checks, verify.Result{Name: "step-" + s.Name, Status: verify.Fail, Message: "the system failed the step: " + s.Error})
		case "error":
			checks = append(checks, verify.Result{Name: "step-" + s.Name, Status: verify.Error, Message: "the step could not be carried out: " + s.Error})
		}
	}
	stepLoads(r.ran, r.agg.Window)

	// The cluster's timeline beside the requests: every failure burst explained by what it did.
	changes, notes := clusterTimeline(r.rec, r.ran, r.started)
	var explanations []verify.Explanation
	switch {
	case tot.Failed > 0 && r.rec != nil:
		explanations = verify.Explain(verify.Bursts(ev.Seconds), changes, ev.Failures, r.started)
		for i := range checks {
			if checks[i].Name == "zero-failed-requests" && checks[i].Status == verify.Fail {
				checks[i].Explained = verify.ExplanationLines(explanations)
			}
		}
	case tot.Failed > 0 && r.recErr != nil:
		notes = append(notes, fmt.Sprintf("the failures are not explained: watching the cluster failed: %v", r.recErr))
	case tot.Failed > 0:
		notes = append(notes, "the failures are not explained: the load's Service was not watched (load.baseURL names none of the rehearsal's node ports)")
	}

	nodeImage := ""
	if r.kc != nil {
		nodeImage = r.kc.Image
	}
	if nodeImage == "" && r.bundle.NodeImage != nil {
		nodeImage = r.bundle.NodeImage.Ref // a kind cluster found, not created: the image its nodes run
	}
	replayOf := ""
	if r.bundle.ReplayOf != nil {
		replayOf = r.bundle.ReplayOf.RunID
	}
	sc := r.sc
	sum := &reports.Summary{
		Scenario: sc.Metadata.Name, Verdict: reports.Verdict(checks), Started: r.started, Finished: r.finished, Seed: r.seed,
		ScenarioHash: sc.Hash, ScenarioFile: RelativeFile(sc.File), NodeImage: nodeImage, Replay: BundleFile, ReplayOf: replayOf,
		Load: reports.LoadSummary{Requests: tot.Requests, Succeeded: tot.Succeeded, Failed: tot.Failed,
			NotSent: tot.NotSent, Retried: tot.Retried, ClientRetries: sc.Load.ClientRetries == "allow", Scheduled: math.Round(tot.Scheduled), TargetRate: targetRate(tot, sc.Load.Rate.PerSecond),
			AchievedRate: tot.AchievedRate, LatencyMS: tot.LatencyMS, From: r.from, Agents: r.lr.Agents()},
		Steps: r.ran, Checks: checks, Host: &r.hostLoad, Explanations: explanations, ClusterNotes: notes,
	}
	// A lost load agent's share failed: say which agent, when, and how many requests.
	sum.Warnings = append(sum.Warnings, load.LostAgents(sum.Load.Agents)...)
	if r.hostLoad.Warning != "" {
		sum.Warnings = append(sum.Warnings, r.hostLoad.Warning)
		r.progress("warning: %s (%s)", r.hostLoad.Warning, r.hostLoad.Line())
	}
	r.timeline = changes
	return sum
}

// report keeps the workload's logs of a run that did not pass (the database's log of a stall, an
// app's panic: OUT/pods/POD_CONTAINER.log, before its namespace goes) and writes the cluster's
// timeline, the reports and the metrics.
func (r *run) report(sum *reports.Summary) error {
	if sum.Verdict != reports.VerdictPass && r.sys.ops != nil {
		nss := []string{r.sys.ns}
		if r.sys.own != nil {
			nss = r.sys.own.Namespaces()
		}
		if n, err := r.sys.ops.SaveLogs(r.cleanup, nss, filepath.Join(r.out, "pods"), 512<<10); n > 0 || err != nil {
			r.progress("kept %d container logs in %s%s", n, filepath.Join(r.out, "pods"), errSuffix(err))
		}
	}
	if err := writeTimeline(filepath.Join(r.out, ClusterFile), r.timeline, sum.ClusterNotes); err != nil {
		return harness("cluster timeline: %v", err)
	}
	r.metrics.Verified(sum.Checks, sum.Verdict)
	if err := reports.Write(r.out, &reports.Run{Summary: *sum, Timeline: r.agg.Seconds(), Failures: r.agg.Failures(), Cluster: r.timeline}); err != nil {
		return harness("reports: %v", err)
	}
	if err := r.metrics.WriteFile(filepath.Join(r.out, "metrics.prom")); err != nil {
		return harness("metrics: %v", err)
	}
	return nil
}
