//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/verify"
)

// stepByName is the step of that name in a summary (zero when absent).
func stepByName(sum *reports.Summary, name string) reports.Step {
	for _, s := range sum.Steps {
		if s.Name == name {
			return s
		}
	}
	return reports.Step{}
}

// migrationCase is a rehearsal of TestMigrations and the verdict it must get.
type migrationCase struct {
	file  string
	code  int
	wants []migrationWant
	steps []stepWant
	check func(t *testing.T, sum *reports.Summary)
	// inLane runs it in the fault lane (one at a time, before the lane's drains) instead of the
	// pool: the lane has a quarter of the suite's rehearsal time, the pool the rest, and the pool's
	// two slots set the suite's wall time. The longest migrations even them out.
	inLane bool
}

type migrationWant struct {
	check  string
	status verify.Status
	text   string
}

type stepWant struct{ step, status, did string }

var migrationCases = []migrationCase{
	{file: "../scenarios/rolling-orders.yaml", code: 0, inLane: true,
		wants: []migrationWant{{"rollback-drill", verify.Pass, "restored to v1 in"}, {"served-version", verify.Pass, "all v2"}, {"zero-failed-requests", verify.Pass, ""},
			{"fault-took-effect", verify.Pass, "1 pods killed and replaced"}},
		steps: []stepWant{{"rollout-v2", "ok", "revision_after"}, {"rollback-drill", "ok", "revision_to"}, {"kill-a-pod", "ok", "kills"}},
		check: func(t *testing.T, sum *reports.Summary) {
			// The runbook command ran while the rollout was in flight.
			ro, db := stepByName(sum, "rollout-v2"), stepByName(sum, "db-check")
			if !db.Started.After(ro.Started) || !db.Started.Before(ro.Finished) {
				t.Errorf("db-check started at %s, not within rollout-v2 [%s, %s]", db.Started, ro.Started, ro.Finished)
			}
			if d := db.Started.Sub(db.Planned); d < 0 || d > 2*time.Second {
				t.Errorf("db-check started %s after its planned start", d)
			}
		}},
	{file: "../scenarios/blue-green-orders.yaml", code: 0, inLane: true,
		wants: []migrationWant{{"rollback-drill", verify.Pass, "restored to v1 in"}, {"served-version", verify.Pass, "all v2"}, {"zero-failed-requests", verify.Pass, ""}},
		steps: []stepWant{{"switch-to-v2", "promoted", "switched_at_s"}, {"switch-to-v2", "promoted", "acceptance_s"}, {"switch-back", "ok", "undoes"}}},
	// canary-orders with every canary pod killed during a gate (the same canary and gates): the
	// shipped fault scenario stands for both, to keep the suite's time.
	{file: "../scenarios/pod-kill-during-canary.yaml", code: 0,
		wants: []migrationWant{{"served-version", verify.Pass, "all v2"}, {"zero-failed-requests", verify.Pass, ""}, {"fault-took-effect", verify.Pass, "killed and replaced"}},
		steps: []stepWant{{"canary-v2", "promoted", "gates"}, {"kill-the-canary", "ok", "kills"}}},
	{file: "../scenarios/canary-bad-release.yaml", code: 0,
		wants: []migrationWant{{"served-version", verify.Pass, "all v1"}, {"acked-writes-durable", verify.Pass, ""}},
		steps: []stepWant{{"canary-v2-bad", "rolled-back", "time_to_restore_s"}},
		check: func(t *testing.T, sum *reports.Summary) {
			s := stepByName(sum, "canary-v2-bad")
			t.Logf("canary-v2-bad: breach %v; restored in %v s", s.Did["breach"], s.Did["time_to_restore_s"])
		}},
	{file: "../scenarios/schema-expand-contract.yaml", code: 0, inLane: true,
		wants: []migrationWant{{"served-version", verify.Pass, "all v3"}, {"acked-writes-durable", verify.Pass, ""}, {"zero-failed-requests", verify.Pass, ""},
			{"rollback-drill", verify.Pass, "restored to v3"}},
		steps: []stepWant{{"contract", "ok", "schema_step"}, {"undo-contract", "ok", "schema_step"}}},
	{file: "../scenarios/postgres-rolling.yaml", code: 0,
		wants: []migrationWant{{"acked-writes-durable", verify.Pass, ""}, {"replica-checksums", verify.Pass, "identical"}, {"rollback-drill", verify.Pass, "restored to v1"}},
		steps: []stepWant{{"db-config", "ok", "partition_0_s"}, {"undo-db-config", "ok", "revision_to"}},
		check: func(t *testing.T, sum *reports.Summary) {
			s := stepByName(sum, "db-config")
			t.Logf("db-config: replicas in %v s, primary in %v s; %d requests failed", s.Did["partition_1_s"], s.Did["partition_0_s"], sum.Load.Failed)
		}},
	{file: "testdata/migrate/contract-while-v1-broken.yaml", code: 1,
		wants: []migrationWant{{"step-contract", verify.Fail, "contract refused"}}},
	{file: "../scenarios/own-web/own-web.yaml", code: 0,
		wants: []migrationWant{{"rollback-drill", verify.Pass, "restored to v2"}, {"served-version", verify.Pass, "all v3"}, {"zero-failed-requests", verify.Pass, ""}},
		steps: []stepWant{{"to-v2", "ok", "revision_after"}, {"canary-v3", "promoted", "gates"}}},
	{file: "../scenarios/own-web/own-web-blue-green.yaml", code: 0,
		wants: []migrationWant{{"rollback-drill", verify.Pass, "restored to v1"}, {"served-version", verify.Pass, "all v2"}, {"zero-failed-requests", verify.Pass, ""}},
		steps: []stepWant{{"switch-to-v2", "promoted", "smoke"}}},
	{file: "testdata/migrate/rolling-unready-broken.yaml", code: 1,
		wants: []migrationWant{{"zero-failed-requests", verify.Fail, "to-v2"}}},
	{file: "testdata/migrate/rolling-ready-sound.yaml", code: 0,
		wants: []migrationWant{{"zero-failed-requests", verify.Pass, ""}, {"served-version", verify.Pass, "all v4"}},
		steps: []stepWant{{"to-v2", "ok", "revision_after"}, {"to-v3", "ok", "revision_after"}, {"to-v4", "ok", "revision_after"}}},
	{file: "testdata/migrate/bluegreen-unready-broken.yaml", code: 1,
		wants: []migrationWant{{"zero-failed-requests", verify.Fail, "switch-to-v2"}, {"step-switch-to-v2", verify.Fail, "rolled back"}}},
	{file: "testdata/migrate/bluegreen-ready-sound.yaml", code: 0,
		wants: []migrationWant{{"zero-failed-requests", verify.Pass, ""}, {"served-version", verify.Pass, "all v2"}}},
	// Acceptance before the switch: a green that acknowledges writes and keeps none is never
	// switched to (every acknowledged write stays durable on blue); its sound twin is promoted.
	{file: "testdata/migrate/bluegreen-ackonly-broken.yaml", code: 1,
		wants: []migrationWant{{"step-switch-to-v2", verify.Fail, "green failed its acceptance"}, {"acked-writes-durable", verify.Pass, ""}, {"zero-failed-requests", verify.Pass, ""}},
		steps: []stepWant{{"switch-to-v2", "failed", "breach"}}},
	{file: "testdata/migrate/bluegreen-durable-sound.yaml", code: 0,
		wants: []migrationWant{{"zero-failed-requests", verify.Pass, ""}, {"served-version", verify.Pass, "all v2"}},
		steps: []stepWant{{"switch-to-v2", "promoted", "acceptance_s"}}},
	// Acceptance before the first weight: a canary that acknowledges writes and keeps none never
	// joins the Service; its sound twin joins and is promoted.
	{file: "testdata/migrate/canary-ackonly-broken.yaml", code: 1,
		wants: []migrationWant{{"step-canary-v2", verify.Fail, "the canary failed its acceptance, no user reached it"}, {"zero-failed-requests", verify.Pass, ""}},
		steps: []stepWant{{"canary-v2", "failed", "breach"}}},
	{file: "testdata/migrate/canary-durable-sound.yaml", code: 0,
		wants: []migrationWant{{"zero-failed-requests", verify.Pass, ""}, {"served-version", verify.Pass, "all v2"}},
		steps: []stepWant{{"canary-v2", "promoted", "acceptance_s"}}},
	{file: "testdata/migrate/canary-blind-broken.yaml", code: 1,
		wants: []migrationWant{{"step-canary-v2", verify.Error, "could not judge the canary"}}},
}

// Migrations on one timeline: every shipped scenario runs as it stands with the verdict it claims,
// and rehearsals built to be broken fail the named check beside their sound twins. The rehearsals
// are independent (own namespaces, free node ports), so they run side by side on the shared cluster;
// the longest three run in the fault lane instead (migrationCase.inLane).
func TestMigrations(t *testing.T) {
	t.Parallel() // beside the other tests; node-level faults run in their own lane (TestFaultLane)
	f := features.New("migrations").
		Assess("shipped scenarios get the verdict they claim; broken twins fail the named check", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			for _, c := range migrationCases {
				if c.inLane {
					continue
				}
				t.Run(caseName(c.file), func(t *testing.T) {
					t.Parallel()
					runMigration(t, ctx, c, "")
				})
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

// migrationsInLane runs the migrations marked inLane one after another in the fault lane
// (TestFaultLane runs it first).
func migrationsInLane(t *testing.T) {
	f := features.New("migrations in the lane").
		Assess("shipped scenarios get the verdict they claim", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			for _, c := range migrationCases {
				if c.inLane {
					t.Run(caseName(c.file), func(t *testing.T) { runMigration(t, ctx, c, faultLane) })
				}
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}

func caseName(file string) string {
	return strings.TrimSuffix(file[strings.LastIndex(file, "/")+1:], ".yaml")
}

// runMigration rehearses c (in lane, or in the pool when lane is "") and checks its verdict, checks
// and steps.
func runMigration(t *testing.T, ctx context.Context, c migrationCase, lane string) {
	name := caseName(c.file)
	start := time.Now()
	sum, _, code := rehearseIn(t, ctx, c.file, lane)
	t.Logf("%s: exit %d in %s", name, code, time.Since(start).Round(time.Second))
	for _, s := range sum.Steps {
		t.Logf("  step %-16s %-12s %5.1fs  %v %s", s.Name, s.Status, s.Finished.Sub(s.Started).Seconds(), s.Did, reports.FirstLine(s.Error))
	}
	if code != c.code {
		t.Errorf("exit %d, verdict %s; want exit %d", code, sum.Verdict, c.code)
	}
	for _, w := range c.wants {
		if got := checkByName(sum, w.check); got.Status != w.status || !strings.Contains(got.Message, w.text) {
			t.Errorf("%s: %s %q; want %s containing %q", w.check, got.Status, got.Message, w.status, w.text)
		}
	}
	for _, w := range c.steps {
		s := stepByName(sum, w.step)
		if s.Status != w.status || s.Did[w.did] == nil {
			t.Errorf("step %s: %s %v; want %s with %s", w.step, s.Status, s.Did, w.status, w.did)
		}
	}
	if c.check != nil {
		c.check(t, sum)
	}
}
