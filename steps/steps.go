// Package steps owns the step engine's contract. A step kind is a small type that says which steps
// are its own, checks their settings (validate and run read the same table, so they agree on what
// exists), and carries a step out against an Env; kinds are listed in a table, and the runner
// schedules steps on the timeline without knowing any kind — as kind's create loop runs actions it
// knows nothing of. The runbook kinds every workload has (wait, scale, exec) live here; migrations
// live in migrate/, faults in faults/.
package steps

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/workloads"
)

// Env is what a step acts on and reads.
type Env struct {
	Ops    *workloads.Ops
	Sample *workloads.Sample // the sample workload, or nil
	Own    *workloads.Own    // one's own manifests, or nil
	// Release is one's own workload's Helm release, when a chart installed it (nil otherwise).
	Release *workloads.HelmInstalled
	// Namespace is the sample's namespace (one's own manifests name theirs through Own).
	Namespace string
	// Dir is the scenario file's directory: files a step names are relative to it, unless Relocated
	// names where they are (scenarios.Loaded.Relocated: a replay bundle's files).
	Dir       string
	Relocated map[string]string
	// Live is the load's results so far, split by the version that answered (gates read it).
	Live Live
	// Seed makes the steps' random choices (victims, nodes) reproducible; RunID names this run on
	// what it marks in the cluster (a cordoned node).
	Seed  uint64
	RunID string
	// Version is where an answer says which version answered (load.version).
	Version load.Version
	// Accept is the default acceptance of a new version before users reach it (nil: the load has no
	// ledger write target, or no read rule is known).
	Accept *Acceptance
	// Machines stops and starts the cluster's nodes; nil unless it is a local kind cluster.
	Machines Machines
	Start    time.Time
	Logf     func(format string, args ...any)
	// Kubeconfig is a file that holds the rehearsal's cluster only, for host commands (never the
	// user's own); ToolDirs go in front of their PATH (kubectl's); OutDir is the run's directory,
	// where each host command's output is kept (OUT/steps/NAME.log).
	Kubeconfig string
	ToolDirs   []string
	OutDir     string

	mu       sync.Mutex
	undo     map[string][]Undo
	deferred []func(context.Context)
}

// Acceptance is how a new version is tried alone by default: items written the way the load's
// ledger target writes them, each read back by the durability check's rule.
type Acceptance struct {
	Write    load.Target
	ReadPath string
	Found    load.Found
	// RunID prefixes the acceptance's own ids (never the ledger's, never its control ids).
	RunID string
}

// Live is what a step can read of the load while it runs.
type Live interface {
	// Versions splits the requests scheduled in the whole seconds within [from, to] by the version
	// that answered them.
	Versions(from, to time.Time) load.VersionWindow
	// Known is the time up to which the load's results have all reached the run, and why it stays
	// behind for good ("" while it keeps up): a live judgement reads no window past it.
	Known() (time.Time, string)
}

// Undo reverses a migration of a target (a blue-green switch-back): a rollback drill of that target
// runs the latest one instead of going back a revision. It returns what it restored from and to.
type Undo struct {
	Kind string // the migration's kind, e.g. migrate/blue-green
	Do   func(ctx context.Context, rec *Record) error
}

// PushUndo registers how to reverse the migration just made of target.
func (e *Env) PushUndo(target string, u Undo) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.undo == nil {
		e.undo = map[string][]Undo{}
	}
	e.undo[target] = append(e.undo[target], u)
}

// PopUndo takes the latest migration of target that knows how to reverse itself.
func (e *Env) PopUndo(target string) (Undo, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	us := e.undo[target]
	if len(us) == 0 {
		return Undo{}, false
	}
	e.undo[target] = us[:len(us)-1]
	return us[len(us)-1], true
}

// Defer registers clean-up for the end of the run (objects a step made outside what the workload's
// teardown deletes); Cleanup runs them, latest first.
func (e *Env) Defer(f func(context.Context)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.deferred = append(e.deferred, f)
}

// Cleanup runs what steps deferred, latest first.
func (e *Env) Cleanup(ctx context.Context) {
	e.mu.Lock()
	fs := e.deferred
	e.deferred = nil
	e.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i](ctx)
	}
}

// Log writes a progress line, if anyone listens.
func (e *Env) Log(format string, args ...any) {
	if e.Logf != nil {
		e.Logf(format, args...)
	}
}

// NamespaceOf is where target (KIND/NAME) lives.
func (e *Env) NamespaceOf(target string) string {
	if e.Own != nil {
		return e.Own.NamespaceOf(target)
	}
	return e.Namespace
}

// Namespaces are every namespace of the workload.
func (e *Env) Namespaces() []string {
	if e.Own != nil {
		return e.Own.Namespaces()
	}
	return []string{e.Namespace}
}

// Path resolves a path written in the scenario file.
func (e *Env) Path(p string) string { return scenarios.ResolvePath(e.Relocated, e.Dir, p) }

// Kind is one kind of step.
type Kind interface {
	// Name is how reports name the kind: wait, scale, exec, migrate/rolling, ...
	Name() string
	// Takes says whether st is of this kind.
	Takes(st scenarios.Step) bool
	// Check returns what is wrong with st's settings in scenario sc (fields relative to the step).
	Check(st scenarios.Step, sc *scenarios.Loaded) []Problem
	// Run carries st out, noting in rec what it did. An error wrapped by workloads.Failed means the
	// system under rehearsal failed the step; any other error, that the harness could not act.
	Run(ctx context.Context, env *Env, st scenarios.Step, rec *Record) error
}

// Describer is a kind that says what a step of it is before it runs: what a report shows of a step
// that never started (a runbook's block after a failed one), and what its record starts with.
type Describer interface {
	Describe(st scenarios.Step) map[string]any
}

// Machines stops and starts a cluster's nodes: a local kind cluster's node containers.
type Machines interface {
	// StopNode stops a node as a crash would (no graceful shutdown, no eviction).
	StopNode(ctx context.Context, node string) error
	// StartNode starts it again.
	StartNode(ctx context.Context, node string) error
}

// Preflight is implemented by a kind that needs more of the cluster than its API (node-loss needs
// Machines): the runner asks every step before the workload is deployed and refuses the run (exit 2)
// with the error, instead of failing halfway through the load.
type Preflight interface {
	Preflight(st scenarios.Step, m Machines) error
}

// Preflight asks each step whose kind implements Preflight whether it can run with m.
func (t Table) Preflight(sc *scenarios.Loaded, m Machines) error {
	for _, st := range sc.Steps {
		if p, ok := t.Find(st).(Preflight); ok {
			if err := p.Preflight(st, m); err != nil {
				return fmt.Errorf("step %s: %w", st.Name, err)
			}
		}
	}
	return nil
}

// Problem is what Check found wrong, at a field below the step (e.g. migrate.version).
type Problem struct{ Field, Msg string }

// Problemf makes a Problem.
func Problemf(field, format string, args ...any) Problem {
	return Problem{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Record is what a step did (revisions, pods, times), for summary.json. Safe for concurrent use.
type Record struct {
	mu      sync.Mutex
	data    map[string]any
	outcome string
	marks   []Mark
}

// Mark is a change a step made to the cluster itself (a database member fenced, promoted), put on
// the cluster's timeline beside what the recorder saw, where explanations and the report read it.
type Mark struct {
	At                   time.Time
	Object, What, Detail string
}

// Mark notes a change the step made to object, now.
func (r *Record) Mark(object, what, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.marks = append(r.marks, Mark{At: time.Now(), Object: object, What: what, Detail: detail})
}

// Marks are the changes noted, in order.
func (r *Record) Marks() []Mark {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Mark(nil), r.marks...)
}

// SetOutcome names how a step that returned no error ended, when "ok" says too little (a canary:
// promoted or rolled-back).
func (r *Record) SetOutcome(o string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcome = o
}

// Outcome is what SetOutcome set, or "".
func (r *Record) Outcome() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.outcome
}

// Set notes key = value.
func (r *Record) Set(key string, value any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.data == nil {
		r.data = map[string]any{}
	}
	r.data[key] = value
}

// Data is a copy of what was noted (nil when nothing was).
func (r *Record) Data() map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.data == nil {
		return nil
	}
	out := make(map[string]any, len(r.data))
	for k, v := range r.data {
		out[k] = v
	}
	return out
}

// Table is the step kinds a rehearsal knows.
type Table []Kind

// Find is the kind that takes st, or nil.
func (t Table) Find(st scenarios.Step) Kind {
	for _, k := range t {
		if k.Takes(st) {
			return k
		}
	}
	return nil
}

// Names are the kinds' names.
func (t Table) Names() []string {
	var out []string
	for _, k := range t {
		out = append(out, k.Name())
	}
	return out
}

// Check checks every step of sc against the table: a step no kind takes is not implemented; the
// kind's own problems are reported at their file:line.
func (t Table) Check(sc *scenarios.Loaded) scenarios.Problems {
	var ps scenarios.Problems
	for i, st := range sc.Steps {
		f := fmt.Sprintf("steps[%d]", i)
		k := t.Find(st)
		if k == nil {
			ps = append(ps, sc.Problem(f, "step %s: %s steps are not implemented yet (known: %s)", st.Name, what(st), strings.Join(t.Names(), ", ")))
			continue
		}
		for _, p := range k.Check(st, sc) {
			ps = append(ps, sc.Problem(f+"."+p.Field, "%s", p.Msg))
		}
	}
	return ps
}

// what names the kind of step st is asking for, for a step no kind takes.
func what(st scenarios.Step) string {
	switch {
	case st.Fault != nil:
		return "fault/" + st.Fault.Type
	case st.Migrate != nil:
		return "migrate/" + st.Migrate.Strategy
	case st.Rollback != nil:
		return "rollback"
	case st.Run != nil:
		return "run"
	}
	return "such"
}

// Builtin are the runbook kinds every workload has.
var Builtin = Table{Wait{}, Scale{}, Exec{}, Host{}}

// Wait holds the timeline for a while; it changes nothing, so it is never blamed for a failure.
type Wait struct{}

func (Wait) Name() string                                      { return "wait" }
func (Wait) Takes(st scenarios.Step) bool                      { return st.Wait.Duration > 0 }
func (Wait) Check(scenarios.Step, *scenarios.Loaded) []Problem { return nil }
func (Wait) Run(ctx context.Context, _ *Env, st scenarios.Step, _ *Record) error {
	t := time.NewTimer(st.Wait.Duration)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Scale sets a Deployment's or StatefulSet's replicas and waits until exactly that many pods are left
// and ready.
type Scale struct{}

func (Scale) Name() string                                      { return "scale" }
func (Scale) Takes(st scenarios.Step) bool                      { return st.Scale != nil }
func (Scale) Check(scenarios.Step, *scenarios.Loaded) []Problem { return nil } // scenarios checks target and replicas
func (Scale) Run(ctx context.Context, env *Env, st scenarios.Step, _ *Record) error {
	return env.Ops.Scale(ctx, env.NamespaceOf(st.Scale.Target), st.Scale.Target, *st.Scale.Replicas, 5*time.Minute)
}

// Exec runs a runbook command in every pod a selector picks; it fails when the command failed
// anywhere, and cannot act when it ran nowhere.
type Exec struct{}

func (Exec) Name() string                                      { return "exec" }
func (Exec) Takes(st scenarios.Step) bool                      { return st.Exec != nil }
func (Exec) Check(scenarios.Step, *scenarios.Loaded) []Problem { return nil } // scenarios checks command and selector
func (Exec) Run(ctx context.Context, env *Env, st scenarios.Step, rec *Record) error {
	res, err := RunEverywhere(ctx, env, st.Exec)
	if len(res) > 0 {
		pods := make([]string, len(res))
		for i, r := range res {
			pods[i] = r.Pod
		}
		rec.Set("pods", pods)
	}
	return err
}

// RunEverywhere runs e in every running pod its selector picks: an error when it ran nowhere, a
// system failure when it failed in any pod.
func RunEverywhere(ctx context.Context, env *Env, e *scenarios.Exec) ([]workloads.ExecResult, error) {
	res, err := env.Ops.Exec(ctx, env.Namespaces(), e.Selector, e.Container, e.Command)
	if err != nil {
		return nil, err
	}
	var failed []string
	for _, r := range res {
		if r.Err != "" {
			failed = append(failed, fmt.Sprintf("%s: %s: %s", r.Pod, r.Err, strings.TrimSpace(r.Stderr)))
		}
	}
	if len(failed) > 0 {
		return res, workloads.Failed(fmt.Errorf("%s failed in %d of %d pods:\n%s", strings.Join(e.Command, " "), len(failed), len(res), strings.Join(failed, "\n")))
	}
	return res, nil
}
