package verify

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/steps"
)

// Check is one kind of check in the table, as a step kind is one kind of step: its name, the
// options it takes (and their validation, at the scenario's file:line), when it is judged without
// being asked, and how it judges the run's evidence. The runner knows no check: it gathers the
// evidence and asks the table.
type Check interface {
	Name() string
	// Doc is one line for README's table and the JSON Schema.
	Doc() string
	// Options are the options it takes, by their names in a scenario file (CheckArg's yaml names).
	Options() []string
	// Problems are its options' problems and what the scenario lacks for it, fields named from
	// verify.NAME (options it does not take are the table's to refuse).
	Problems(arg scenarios.CheckArg, sc *scenarios.Loaded) []steps.Problem
	// Implied says whether it is judged though the scenario does not ask for it.
	Implied(sc *scenarios.Loaded, ev *Evidence) bool
	// Judge judges the run (asked: the scenario named it).
	Judge(ev *Evidence, arg scenarios.CheckArg, asked bool) Result
}

// Evidence is what a run gathered for its checks: the load's results, what the steps did, what the
// pod watch saw, and the means to read the system back.
type Evidence struct {
	Ctx      context.Context
	Scenario *scenarios.Loaded
	Env      *steps.Env
	Started  time.Time // the load's second 0
	Finished time.Time
	Totals   load.Totals
	Seconds  []load.Second
	Failures []load.Failure
	Window   func(from, to time.Time) load.WindowStats
	Windows  []Window // the steps', for attributing failures
	Served   []Served
	Faults   []Fault
	Drills   []Drill
	// Watched says the pods behind the load's Service were watched; Terminations is what the watch
	// saw (TermErr: why it could not see).
	Watched      bool
	Terminations []Termination
	TermErr      error
	Out          string // the run's directory (ledger.tsv)
	BaseURL      string
	RunID        string
	// Done are the checks judged before this one, by name (rollback-drill reads the data checks).
	Done map[string]Result
}

// Checks is the table of checks, in the order they are judged.
type Checks []Check

// Table is every check a scenario may ask for.
var Table = Checks{zeroFailed{}, ackedWrites{}, replicaChecksums{}, rollbackDrill{}, latencySLO{}, loadAchieved{},
	servedVersion{}, faultTookEffect{}, gracefulTermination{}}

// Names are the checks' names, in the table's order.
func (t Checks) Names() []string {
	var out []string
	for _, c := range t {
		out = append(out, c.Name())
	}
	return out
}

// Find is the check of name (nil: none).
func (t Checks) Find(name string) Check {
	for _, c := range t {
		if c.Name() == name {
			return c
		}
	}
	return nil
}

// Problems are the scenario's verify section's problems: no check at all, unknown checks, options a
// check does not take, and each check's own.
func (t Checks) Problems(sc *scenarios.Loaded) []steps.Problem {
	var ps []steps.Problem
	if len(sc.Verify) == 0 {
		ps = append(ps, steps.Problemf("verify", "no checks: a rehearsal that verifies nothing cannot fail"))
	}
	names := make([]string, 0, len(sc.Verify))
	for name := range sc.Verify {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		arg := sc.Verify[name]
		c := t.Find(name)
		if c == nil {
			ps = append(ps, steps.Problemf("verify."+name, "unknown check; known: %s", strings.Join(t.Names(), ", ")))
			continue
		}
		for _, opt := range SetOptions(arg) {
			if !slices.Contains(c.Options(), opt) {
				takes := "no option"
				if len(c.Options()) > 0 {
					takes = "only " + strings.Join(c.Options(), ", ")
				}
				ps = append(ps, steps.Problemf("verify."+name+"."+opt, "%s takes %s: %s would be ignored", name, takes, opt))
			}
		}
		if slices.Contains(c.Options(), "minRequests") && arg.MinSamples < 0 {
			ps = append(ps, steps.Problemf("verify."+name+".minRequests", "must not be negative"))
		}
		ps = append(ps, c.Problems(arg, sc)...)
	}
	return ps
}

// Judge judges every check the scenario asks for, and those implied, in the table's order.
func (t Checks) Judge(ev *Evidence) []Result {
	var out []Result
	if ev.Done == nil {
		ev.Done = map[string]Result{}
	}
	for _, c := range t {
		arg, asked := ev.Scenario.Verify[c.Name()]
		if !asked && !c.Implied(ev.Scenario, ev) {
			continue
		}
		r := c.Judge(ev, arg, asked)
		out = append(out, r)
		ev.Done[c.Name()] = r
	}
	return out
}

// SetOptions are the options given in arg, by their names in a scenario file.
func SetOptions(arg scenarios.CheckArg) []string {
	var out []string
	v := reflect.ValueOf(arg)
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" && !v.Field(i).IsZero() {
			out = append(out, name)
		}
	}
	return out
}

// OptionDocs are the docs of CheckArg's options, by name (for the schema and README).
func OptionDocs() map[string]string {
	out := map[string]string{}
	t := reflect.TypeOf(scenarios.CheckArg{})
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		out[name] = t.Field(i).Tag.Get("doc")
	}
	return out
}

// Schema is the table as the JSON Schema describes the verify section.
func (t Checks) Schema() []scenarios.CheckSchema {
	var out []scenarios.CheckSchema
	for _, c := range t {
		out = append(out, scenarios.CheckSchema{Name: c.Name(), Doc: c.Doc(), Options: c.Options()})
	}
	return out
}

func hasStep(sc *scenarios.Loaded, f func(scenarios.Step) bool) bool {
	return slices.ContainsFunc(sc.Steps, f)
}

func isFaultStep(st scenarios.Step) bool { return st.Fault != nil }

// never is Implied for checks judged only when asked.
type never struct{}

func (never) Implied(*scenarios.Loaded, *Evidence) bool { return false }

type zeroFailed struct{ never }

func (zeroFailed) Name() string { return "zero-failed-requests" }
func (zeroFailed) Doc() string {
	return "no request failed beyond the budget (max), each failure attributed to the step in flight and explained by what the cluster did"
}
func (zeroFailed) Options() []string { return []string{"max", "minRequests"} }
func (zeroFailed) Problems(arg scenarios.CheckArg, _ *scenarios.Loaded) []steps.Problem {
	if arg.Max != nil && *arg.Max < 0 {
		return []steps.Problem{steps.Problemf("verify.zero-failed-requests.max", "must not be negative")}
	}
	return nil
}
func (zeroFailed) Judge(ev *Evidence, arg scenarios.CheckArg, _ bool) Result {
	max := 0
	if arg.Max != nil {
		max = *arg.Max
	}
	minRequests := arg.MinSamples
	if minRequests == 0 {
		minRequests = DefaultMinRequests(ev.Totals)
	}
	return ZeroFailedRequests(ev.Totals, ev.Failures, ev.Windows, max, minRequests)
}

// DefaultMinRequests is zero-failed-requests' fewest requests to judge: one per second of the run,
// or half the schedule under 2/s.
func DefaultMinRequests(t load.Totals) int {
	n := t.Duration.Seconds()
	if t.Scheduled > 0 {
		n = min(n, t.Scheduled/2)
	}
	return max(int(math.Ceil(n)), 1)
}

type ackedWrites struct{ never }

func (ackedWrites) Name() string { return "acked-writes-durable" }
func (ackedWrites) Doc() string {
	return "every write the system acknowledged reads back as stored, and ids never written read as missing"
}
func (ackedWrites) Options() []string { return []string{"readPath", "found", "minAcked"} }
func (ackedWrites) Problems(arg scenarios.CheckArg, sc *scenarios.Loaded) []steps.Problem {
	var ps []steps.Problem
	const f = "verify.acked-writes-durable.readPath"
	switch {
	case sc.Workload.Own() && arg.ReadPath == "":
		ps = append(ps, steps.Problemf(f, "your own workload needs a readPath (GET, 200 when the write {{.ID}} is stored, 404 when not)"))
	case arg.ReadPath == "":
	case !strings.HasPrefix(arg.ReadPath, "/"):
		ps = append(ps, steps.Problemf(f, "%q must start with /", arg.ReadPath))
	case !strings.Contains(arg.ReadPath, "{{.ID}}"):
		ps = append(ps, steps.Problemf(f, "%q must contain {{.ID}}: a path that names no id reads nothing back", arg.ReadPath))
	default:
		if _, err := load.ParseTemplate(f, arg.ReadPath); err != nil {
			ps = append(ps, steps.Problemf(f, "%v", err))
		}
	}
	if arg.Found != nil {
		for _, c := range arg.Found.Status {
			if c < 100 || c > 599 {
				ps = append(ps, steps.Problemf("verify.acked-writes-durable.found.status", "%d is not an HTTP status", c))
			}
		}
	}
	if arg.MinAcked < 0 {
		ps = append(ps, steps.Problemf("verify.acked-writes-durable.minAcked", "must not be negative"))
	}
	return ps
}
func (ackedWrites) Judge(ev *Evidence, arg scenarios.CheckArg, _ bool) Result {
	const name = "acked-writes-durable"
	l, err := ReadLedger(filepath.Join(ev.Out, "ledger.tsv"))
	if err != nil {
		return Result{Name: name, Status: Error, Message: err.Error()}
	}
	d := Durability{Ledger: l, MinAcked: arg.MinAcked}
	for i := range 5 { // ids this run never wrote: the read-back must call them missing
		d.Controls = append(d.Controls, fmt.Sprintf("%s-never-%d", ev.RunID, i))
	}
	if arg.ReadPath != "" {
		var found load.Found
		if arg.Found != nil {
			found = load.Found{Status: arg.Found.Status, BodyHasID: arg.Found.BodyHasID}
		}
		d.Missing = func(ids []string) ([]string, error) {
			return load.ReadBack(ev.Ctx, ev.BaseURL, arg.ReadPath, found, ids, 8)
		}
	} else {
		d.Missing = func(ids []string) ([]string, error) { return ev.Env.Sample.MissingIDs(ev.Ctx, ids) }
	}
	return AckedWritesDurable(d)
}

type replicaChecksums struct{ never }

func (replicaChecksums) Name() string { return "replica-checksums" }
func (replicaChecksums) Doc() string {
	return "every replica holds the same data (the sample's table checksums, or workload.checksum's output in each replica)"
}
func (replicaChecksums) Options() []string { return nil }
func (replicaChecksums) Problems(_ scenarios.CheckArg, sc *scenarios.Loaded) []steps.Problem {
	if sc.Workload.Own() && sc.Workload.Checksum == nil {
		return []steps.Problem{steps.Problemf("verify.replica-checksums", "your own workload needs workload.checksum: the command whose output each replica must agree on")}
	}
	return nil
}
func (replicaChecksums) Judge(ev *Evidence, _ scenarios.CheckArg, _ bool) Result {
	if ev.Env.Own != nil {
		return ownChecksums(ev.Ctx, ev.Env, ev.Scenario.Workload.Checksum)
	}
	sums, err := ev.Env.Sample.Checksums(ev.Ctx, time.Minute)
	return ReplicaChecksums(sums, err)
}

// ownChecksums lets the replicas settle (a pause, a barrier command in each), then reads the
// checksum command's output in every replica beside how many replicas there should be.
func ownChecksums(ctx context.Context, env *steps.Env, c *scenarios.Checksum) Result {
	select {
	case <-ctx.Done():
	case <-time.After(c.Settle.Duration):
	}
	nss := env.Namespaces()
	if len(c.Barrier) > 0 {
		if _, err := steps.RunEverywhere(ctx, env, &scenarios.Exec{Command: c.Barrier, Selector: c.Selector, Container: c.Container}); err != nil {
			return Result{Name: "replica-checksums", Status: Error, Message: "the barrier command did not settle the replicas: " + err.Error()}
		}
	}
	expected := 0
	if c.Replicas != nil {
		expected = *c.Replicas
	} else {
		n, err := env.Ops.ExpectedReplicas(ctx, nss, c.Selector)
		if err != nil {
			return ReplicaOutputs(0, nil, nil, err)
		}
		expected = n
	}
	pods, err := env.Ops.PodStates(ctx, nss, c.Selector)
	if err != nil {
		return ReplicaOutputs(expected, nil, nil, err)
	}
	outs, err := env.Ops.Exec(ctx, nss, c.Selector, c.Container, c.Command)
	return ReplicaOutputs(expected, pods, outs, err)
}

type rollbackDrill struct{ never }

func (rollbackDrill) Name() string { return "rollback-drill" }
func (rollbackDrill) Doc() string {
	return "each rollback step restored the version before it within its bound, served it alone after, and (on the sample) lost no acknowledged write"
}
func (rollbackDrill) Options() []string { return nil }
func (rollbackDrill) Problems(_ scenarios.CheckArg, sc *scenarios.Loaded) []steps.Problem {
	var ps []steps.Problem
	if sc.Workload.Sample != "" {
		for _, need := range []string{"acked-writes-durable", "replica-checksums"} {
			if _, ok := sc.Verify[need]; !ok {
				ps = append(ps, steps.Problemf("verify.rollback-drill", "needs %s too: a drill passes only when no acknowledged write was lost and the replicas agree after it", need))
			}
		}
	}
	if !hasStep(sc, func(st scenarios.Step) bool { return st.Rollback != nil }) {
		ps = append(ps, steps.Problemf("verify.rollback-drill", "no rollback step to judge"))
	}
	return ps
}
func (rollbackDrill) Judge(ev *Evidence, _ scenarios.CheckArg, _ bool) Result {
	var data []Result
	for _, n := range []string{"acked-writes-durable", "replica-checksums"} {
		if d, ok := ev.Done[n]; ok {
			data = append(data, d)
		}
	}
	return RollbackDrill(ev.Drills, ev.Seconds, ev.Started, data...)
}

type latencySLO struct{ never }

func (latencySLO) Name() string { return "latency-slo" }
func (latencySLO) Doc() string {
	return "p50/p99 latency from the scheduled send within bounds, over the run (and in every step window with per: step)"
}
func (latencySLO) Options() []string { return []string{"p50", "p99", "per"} }
func (latencySLO) Problems(arg scenarios.CheckArg, sc *scenarios.Loaded) []steps.Problem {
	var ps []steps.Problem
	timeout := sc.Load.Timeout.Duration
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	for _, b := range []struct {
		field string
		d     time.Duration
	}{{"p50", arg.P50.Duration}, {"p99", arg.P99.Duration}} {
		if b.d >= timeout {
			ps = append(ps, steps.Problemf("verify.latency-slo."+b.field, "%s is not under load.timeout (%s): a request slower than the timeout fails instead, so this bound can never fail", b.d, timeout))
		}
	}
	if arg.P50.Duration == 0 && arg.P99.Duration == 0 {
		ps = append(ps, steps.Problemf("verify.latency-slo", "needs p50 or p99: a bound that is not set cannot fail"))
	}
	if arg.Per != "" && arg.Per != "step" {
		ps = append(ps, steps.Problemf("verify.latency-slo.per", "%q: want step", arg.Per))
	}
	return ps
}
func (latencySLO) Judge(ev *Evidence, arg scenarios.CheckArg, _ bool) Result {
	return LatencySLO(ev.Totals, ev.Windows, ev.Window, arg.P50.Duration, arg.P99.Duration, arg.Per == "step")
}

type loadAchieved struct{ never }

func (loadAchieved) Name() string { return "load-achieved" }
func (loadAchieved) Doc() string {
	return "every second the client sent at least minShare of the requests due: a rehearsal that did not load the system proves nothing"
}
func (loadAchieved) Options() []string { return []string{"minShare", "minRequests"} }
func (loadAchieved) Problems(arg scenarios.CheckArg, _ *scenarios.Loaded) []steps.Problem {
	if arg.MinShare < 0 || arg.MinShare > 1 {
		return []steps.Problem{steps.Problemf("verify.load-achieved.minShare", "must be between 0 and 1")}
	}
	return nil
}
func (loadAchieved) Judge(ev *Evidence, arg scenarios.CheckArg, _ bool) Result {
	return LoadAchieved(ev.Totals, ev.Seconds, arg.MinShare, arg.MinSamples)
}

type servedVersion struct{ never }

func (servedVersion) Name() string { return "served-version" }
func (servedVersion) Doc() string {
	return "after each step that moves the workload to a version, every answer that names a version names that one"
}
func (servedVersion) Options() []string { return []string{"minRequests"} }
func (servedVersion) Problems(_ scenarios.CheckArg, sc *scenarios.Loaded) []steps.Problem {
	if !hasStep(sc, func(st scenarios.Step) bool {
		return st.Rollback != nil || (st.Migrate != nil && st.Migrate.Strategy != "schema")
	}) {
		return []steps.Problem{steps.Problemf("verify.served-version", "no step moves the workload to a version")}
	}
	return nil
}
func (servedVersion) Judge(ev *Evidence, arg scenarios.CheckArg, _ bool) Result {
	return ServedVersion(ev.Served, ev.Seconds, ev.Started, arg.MinSamples, 2*time.Second)
}

type faultTookEffect struct{}

func (faultTookEffect) Name() string { return "fault-took-effect" }
func (faultTookEffect) Doc() string {
	return "every fault step did what it says (pods killed and replaced, a node drained, a node NotReady): judged whenever a fault runs"
}
func (faultTookEffect) Options() []string { return nil }
func (faultTookEffect) Problems(_ scenarios.CheckArg, sc *scenarios.Loaded) []steps.Problem {
	if !hasStep(sc, isFaultStep) {
		return []steps.Problem{steps.Problemf("verify.fault-took-effect", "no fault step to judge")}
	}
	return nil
}

// A fault is always proved to have happened, asked or not.
func (faultTookEffect) Implied(sc *scenarios.Loaded, _ *Evidence) bool {
	return hasStep(sc, isFaultStep)
}
func (faultTookEffect) Judge(ev *Evidence, _ scenarios.CheckArg, _ bool) Result {
	return FaultTookEffect(ev.Faults)
}

type gracefulTermination struct{}

func (gracefulTermination) Name() string { return "graceful-termination" }
func (gracefulTermination) Doc() string {
	return "every pod that left the load's Service while ready kept serving at least minServe after its deletion began: judged whenever one did"
}
func (gracefulTermination) Options() []string { return []string{"max", "minServe"} }
func (gracefulTermination) Problems(arg scenarios.CheckArg, _ *scenarios.Loaded) []steps.Problem {
	if arg.Max != nil && *arg.Max < 0 {
		return []steps.Problem{steps.Problemf("verify.graceful-termination.max", "must not be negative")}
	}
	return nil
}

// Judged whenever a pod left the load's Service while it served (or the watch broke), asked or not.
func (gracefulTermination) Implied(_ *scenarios.Loaded, ev *Evidence) bool {
	return ev.Watched && (len(ev.Terminations) > 0 || ev.TermErr != nil)
}
func (gracefulTermination) Judge(ev *Evidence, arg scenarios.CheckArg, asked bool) Result {
	max := 0
	if arg.Max != nil {
		max = *arg.Max
	}
	err := ev.TermErr
	if !ev.Watched && err == nil {
		err = fmt.Errorf("the load goes to no Service of the rehearsal's (load.baseURL names none of its node ports)")
	}
	return GracefulTermination(ev.Terminations, ev.Started, arg.MinServe.Duration, max, asked, err)
}
