// Package runner owns one rehearsal from scenario to verdict: it gets the cluster (creates a kind
// cluster or reuses one), deploys the workload, runs load for the whole timeline while the steps
// execute, records every step as an event with start and end, verifies, writes the reports, and
// cleans up what it created — on success, on failure and on Ctrl-C.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/clusters"
	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/scenarios"
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
}

// HarnessError means the rehearsal could not run (exit 2), as opposed to a check failing (exit 1).
type HarnessError struct{ Err error }

func (e *HarnessError) Error() string { return e.Err.Error() }
func (e *HarnessError) Unwrap() error { return e.Err }

func harness(format string, args ...any) error { return &HarnessError{fmt.Errorf(format, args...)} }

// Run rehearses one scenario and returns its summary (reports are written to OutDir/<name>).
func Run(ctx context.Context, sc *scenarios.Loaded, opts Options) (sum *reports.Summary, err error) {
	if sc.Workload.Sample == "" {
		return nil, harness("%s: workloads from your own manifests are not supported yet; use sample: orders-postgres", sc.File)
	}
	for _, st := range sc.Steps {
		if st.Fault != nil || st.Rollback != nil || st.Exec != nil || (st.Migrate != nil && st.Migrate.Strategy != "rolling" && st.Migrate.Strategy != "schema") {
			return nil, harness("%s: step %s: only wait, rolling and schema steps are implemented so far", sc.File, st.Name)
		}
	}
	out := filepath.Join(opts.OutDir, sc.Metadata.Name)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, harness("%v", err)
	}
	cleanup := context.WithoutCancel(ctx)

	// Cluster: reuse a kind cluster of that name, or create one and delete it afterwards.
	name := sc.Cluster.Name
	if name == "" {
		name = clusters.DefaultName
	}
	if sc.Cluster.Provider != "kind" {
		return nil, harness("%s: cluster provider %q is not supported yet", sc.File, sc.Cluster.Provider)
	}
	cl, getErr := clusters.Get(name, sc.Cluster.Kubeconfig)
	if getErr != nil {
		workers := sc.Cluster.Workers
		if workers == 0 {
			workers = 2
		}
		progress(opts.Progress, "creating kind cluster %s (%d workers)", name, workers)
		cl, err = clusters.Create(ctx, clusters.CreateOptions{Name: name, Workers: workers, Kubeconfig: sc.Cluster.Kubeconfig})
		if err != nil {
			return nil, harness("cluster: %v", err)
		}
		if !opts.KeepCluster {
			defer func() { _ = cl.Delete(cleanup) }()
		}
	}
	cfg, err := cl.RESTConfig()
	if err != nil {
		return nil, harness("cluster: %v", err)
	}

	// Workload.
	progress(opts.Progress, "loading the sample's images into %s", name)
	if err := cl.LoadImages(ctx, workloads.OrdersImage, workloads.PostgresImage); err != nil {
		return nil, harness("load images (build them with `rehearse images build`): %v", err)
	}
	ns := "rehearse-" + sc.Metadata.Name
	_ = workloads.DeleteSample(ctx, cfg, ns, 3*time.Minute) // a namespace left by an interrupted run
	version := orders.Version(sc.Workload.Version)
	progress(opts.Progress, "deploying orders-postgres in namespace %s", ns)
	sample, err := workloads.DeploySample(ctx, cfg, workloads.SampleOptions{
		Namespace: ns, Version: version, NodePort: int32(cl.NodePortsOrDefault().First + 1),
	}, 6*time.Minute)
	defer func() { _ = workloads.DeleteSample(cleanup, cfg, ns, 3*time.Minute) }()
	if err != nil {
		return nil, harness("workload: %v", err)
	}

	// Load for the whole timeline.
	seed := opts.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	base := sc.Load.BaseURL
	if base == "" {
		base = sample.URL()
	}
	lcfg := load.Config{BaseURL: base, Rate: sc.Load.Rate.PerSecond, Timeout: sc.Load.Timeout.Duration, Seed: seed, Dir: out,
		RunID: fmt.Sprintf("%s-%d", sc.Metadata.Name, seed%1000000)}
	for _, st := range sc.Load.Stages {
		lcfg.Stages = append(lcfg.Stages, load.Stage{Rate: st.Rate.PerSecond, Duration: st.Duration.Duration})
	}
	for _, t := range sc.Load.Targets {
		lcfg.Targets = append(lcfg.Targets, load.Target{Name: t.Name, Method: t.Method, Path: t.Path, Body: t.Body, Weight: t.Weight, Ledger: t.Ledger})
	}
	runCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	started := time.Now()
	lr, err := load.Start(runCtx, lcfg)
	if err != nil {
		return nil, harness("load: %v", err)
	}
	stopProgress := startProgress(opts.Progress, lr, started)

	steps := runSteps(ctx, sc, sample, started, opts.Progress)
	lr.Stop()
	agg, lerr := lr.Wait()
	stopProgress()
	finished := time.Now()
	if ctx.Err() != nil {
		return nil, harness("interrupted")
	}
	if lerr != nil {
		return nil, harness("load: %v", lerr)
	}

	// Verify.
	tot := agg.Totals()
	var windows []verify.Window
	for _, s := range steps {
		windows = append(windows, verify.Window{Name: s.Name, Kind: s.Kind, Start: s.Started, End: s.Finished})
	}
	var checks []verify.Result
	for _, name := range scenarios.Checks {
		arg, ok := sc.Verify[name]
		if !ok {
			continue
		}
		checks = append(checks, check(ctx, name, arg, tot, agg, windows, sample, sc, out))
	}
	for _, s := range steps {
		if s.Status != "ok" {
			checks = append(checks, verify.Result{Name: "step-" + s.Name, Status: verify.Error, Message: "step failed: " + s.Error})
		}
	}
	sum = &reports.Summary{
		Scenario: sc.Metadata.Name, Verdict: reports.Verdict(checks), Started: started, Finished: finished, Seed: seed,
		ScenarioHash: sc.Hash, NodeImage: cl.Image,
		Load: reports.LoadSummary{Requests: tot.Requests, Succeeded: tot.Succeeded, Failed: tot.Failed,
			TargetRate: sc.Load.Rate.PerSecond, AchievedRate: tot.AchievedRate, LatencyMS: tot.LatencyMS},
		Steps: steps, Checks: checks,
	}
	if err := reports.Write(out, &reports.Run{Summary: *sum, Timeline: agg.Seconds(), Failures: agg.Failures()}); err != nil {
		return sum, harness("reports: %v", err)
	}
	return sum, nil
}

func check(ctx context.Context, name string, arg scenarios.CheckArg, tot load.Totals, agg *load.Aggregator,
	windows []verify.Window, sample *workloads.Sample, sc *scenarios.Loaded, out string) verify.Result {
	switch name {
	case "zero-failed-requests":
		max := 0
		if arg.Max != nil {
			max = *arg.Max
		}
		return verify.ZeroFailedRequests(tot, agg.Failures(), windows, max)
	case "load-achieved":
		return verify.LoadAchieved(tot, sc.Load.Rate.PerSecond, arg.MinShare, arg.MinSamples)
	case "latency-slo":
		return verify.LatencySLO(tot, arg.P50.Duration, arg.P99.Duration)
	case "acked-writes-durable":
		l, err := verify.ReadLedger(filepath.Join(out, "ledger.tsv"))
		if err != nil {
			return verify.Result{Name: name, Status: verify.Error, Message: err.Error()}
		}
		return verify.AckedWritesDurable(l, func(ids []string) ([]string, error) { return sample.MissingIDs(ctx, ids) })
	case "replica-checksums":
		sums, err := sample.Checksums(ctx, time.Minute)
		return verify.ReplicaChecksums(sums, err)
	}
	return verify.Result{Name: name, Status: verify.Error, Message: "this check is not implemented yet"}
}

// runSteps executes the steps in order (a step with `at` starts no earlier than its offset) and
// records each as an event.
func runSteps(ctx context.Context, sc *scenarios.Loaded, sample *workloads.Sample, start time.Time, progressW io.Writer) []reports.Step {
	var out []reports.Step
	startedAt := map[string]time.Time{}
	for _, st := range sc.Steps {
		if st.At != "" {
			if at, ok := atTime(st.At, start, startedAt); ok {
				sleep(ctx, time.Until(at))
			}
		}
		ev := reports.Step{Name: st.Name, Started: time.Now(), Status: "ok"}
		startedAt[st.Name] = ev.Started
		progress(progressW, "step %s", st.Name)
		var err error
		switch {
		case st.Wait.Duration > 0:
			ev.Kind = "wait"
			sleep(ctx, st.Wait.Duration)
			err = ctx.Err()
		case st.Migrate != nil && st.Migrate.Strategy == "rolling":
			ev.Kind = "migrate/rolling"
			err = sample.SetVersion(ctx, orders.Version(st.Migrate.Version), 5*time.Minute)
		case st.Migrate != nil && st.Migrate.Strategy == "schema":
			ev.Kind = "migrate/schema"
			err = sample.Migrate(ctx, "up", st.Migrate.Step, 5*time.Minute)
		}
		ev.Finished = time.Now()
		if err != nil {
			ev.Status, ev.Error = "failed", err.Error()
		}
		out = append(out, ev)
		if ctx.Err() != nil {
			break
		}
	}
	return out
}

func atTime(at string, start time.Time, startedAt map[string]time.Time) (time.Time, bool) {
	ref := start
	offset := at
	if step, off, ok := strings.Cut(at, "+"); ok {
		t, found := startedAt[step]
		if !found {
			return time.Time{}, false
		}
		ref, offset = t, off
	}
	d, err := time.ParseDuration(offset)
	if err != nil {
		return time.Time{}, false
	}
	return ref.Add(d), true
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

func startProgress(w io.Writer, lr *load.Run, start time.Time) (stop func()) {
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
				fmt.Fprintf(w, "rehearse: %s elapsed, %d requests (%.1f/s), %d failed\n",
					time.Since(start).Round(time.Second), t.Requests, t.AchievedRate, t.Failed)
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
