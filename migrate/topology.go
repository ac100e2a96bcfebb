package migrate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/steps"
	"github.com/rehearse-dev/rehearse/workloads"
)

// The sample's database topology changes: a planned switchover and a failover after the primary is
// gone. Both promote a replica with pg_promote and move the topology (the ConfigMap the members read
// when they start and the write Service's selector); the former primary rejoins as a replica by
// itself (pg-entrypoint: pg_rewind onto the new primary, which copies only the blocks changed since
// the timelines diverged — a fresh base backup would copy the whole database, and is kept for when
// pg_rewind cannot run). Each records its topology changes as `topology`, one line each, with
// times on the run's clock.

const (
	defaultSwitchoverWithin = 30 * time.Second
	defaultRejoin           = 2 * time.Minute
	defaultFailoverAfter    = 3 * time.Second
	defaultFailoverWithin   = 2 * time.Minute
)

// topologyLog is what a topology step did, in order, on the run's clock.
type topologyLog struct {
	env   *steps.Env
	rec   *steps.Record
	mu    sync.Mutex
	lines []string
}

// add notes what the step did to member (pod/NAME on the cluster's timeline).
func (l *topologyLog) add(member, what, format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	line := fmt.Sprintf("+%.1fs ", time.Since(l.env.Start).Seconds()) + text
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	l.rec.Set("topology", slices.Clone(l.lines))
	l.rec.Mark("pod/"+member, what, text)
	l.env.Log("%s", line)
}

func checkSampleTopology(field string, sc *scenarios.Loaded) []steps.Problem {
	if sc.Workload.Sample == "" {
		return []steps.Problem{steps.Problemf(field, "changes the sample's database primary; for your own database, run your runbook's commands (run or exec steps)")}
	}
	return nil
}

func checkMember(field, member string, sc *scenarios.Loaded) []steps.Problem {
	if member == "" {
		return nil
	}
	n := sc.Workload.Replicas.DBOr(3)
	i, ok := strings.CutPrefix(member, "orders-db-")
	var ord int
	if _, err := fmt.Sscanf(i, "%d", &ord); !ok || err != nil || fmt.Sprint(ord) != i || ord < 0 || ord >= n {
		return []steps.Problem{steps.Problemf(field, "%q: want a member of the sample's database, orders-db-0 to orders-db-%d", member, n-1)}
	}
	return nil
}

// mostAdvanced is the replica with the furthest replayed WAL among states (in recovery only), or "".
func mostAdvanced(states []workloads.MemberState) string {
	best := ""
	var bestLSN string
	for _, st := range states {
		if !st.InRecovery {
			continue
		}
		if best == "" || !workloads.LSNAtLeast(bestLSN, st.LSN) {
			best, bestLSN = st.Member, st.LSN
		}
	}
	return best
}

// states asks each member but skip for its state, each within a few seconds; a member that does not
// answer is left out.
func states(ctx context.Context, s *workloads.Sample, skip string) []workloads.MemberState {
	var out []workloads.MemberState
	for _, m := range s.Members() {
		if m == skip {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := s.State(cctx, m)
		cancel()
		if err == nil {
			out = append(out, st)
		}
	}
	return out
}

// waitPrimaryReady waits until member is ready as the write Service's endpoint; it returns when.
func waitPrimaryReady(ctx context.Context, s *workloads.Sample, member string, timeout time.Duration) (time.Time, error) {
	ready, err := poll(ctx, 200*time.Millisecond, timeout, func() bool {
		ok, err := s.WriteServiceReady(ctx, member)
		return err == nil && ok
	})
	switch {
	case err != nil:
		return time.Time{}, err
	case !ready:
		return time.Time{}, workloads.Failed(fmt.Errorf("the new primary %s is not ready after %s", member, timeout))
	}
	return time.Now(), nil
}

// poll calls done every `every` until it says so (true) or timeout has passed (false); an ended ctx
// ends it with ctx's error. done is called at least once.
func poll(ctx context.Context, every, timeout time.Duration, done func() bool) (bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		if done() {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(every):
		}
	}
}

// Switchover is a planned change of primary. The primary is fenced (new transactions read-only, the
// app's sessions ended); the new primary waits until it has replayed everything the old one wrote;
// the old one is demoted (standby.signal) and shut down cleanly, its last WAL (the shutdown
// checkpoint) streamed to every replica; the new one replays that too, is promoted, and the topology
// names it (ConfigMap, write Service). The old one restarts as its replica, and the others follow it
// through the write Service. It records the time without a writable primary: from the fence until
// the new primary is ready. Called off before the demotion (the new primary could not catch up), the
// fence is taken back.
type Switchover struct{}

func (Switchover) Name() string                 { return "switchover" }
func (Switchover) Takes(st scenarios.Step) bool { return st.Switchover != nil }

func (Switchover) Check(st scenarios.Step, sc *scenarios.Loaded) []steps.Problem {
	ps := checkSampleTopology("switchover", sc)
	if ps != nil {
		return ps
	}
	return checkMember("switchover.to", st.Switchover.To, sc)
}

func (Switchover) Run(ctx context.Context, env *steps.Env, st scenarios.Step, rec *steps.Record) error {
	s := env.Sample
	if s == nil {
		return errors.New("switchover: the workload is not the sample")
	}
	o := st.Switchover
	within := cmp.Or(o.Within.Duration, defaultSwitchoverWithin)
	rejoin := cmp.Or(o.Rejoin.Duration, defaultRejoin)
	old, err := s.Primary(ctx)
	if err != nil {
		return err
	}
	if err := switchover(ctx, env, st.Name, old, o.To, within, rejoin, rec); err != nil {
		return err
	}
	// A rollback drill of the database (rollback: {target: statefulset/orders-db}) switches back.
	env.PushUndo(sampleDB, steps.Undo{Kind: "switchover", Do: func(ctx context.Context, rec *steps.Record) error {
		if v := servedBy(ctx, env, env.Namespace, sampleApp); v != "" {
			rec.Set("serves", v)
		}
		now, err := s.Primary(ctx)
		if err != nil {
			return err
		}
		return switchover(ctx, env, st.Name+"-back", now, old, within, rejoin, rec)
	}})
	return nil
}

// sampleDB is the sample's database, as a rollback drill names it.
const sampleDB = "statefulset/orders-db"

// switchover moves the primary from old to to ("": the replica that has replayed the most).
func switchover(ctx context.Context, env *steps.Env, name, old, to string, within, rejoin time.Duration, rec *steps.Record) error {
	s := env.Sample
	log := &topologyLog{env: env, rec: rec}
	others := states(ctx, s, old)
	if to == "" {
		if to = mostAdvanced(others); to == "" {
			return workloads.Failed(errors.New("switchover: no replica answers"))
		}
	}
	if to == old {
		return fmt.Errorf("switchover: %s is the primary already", to)
	}
	rec.Set("from", old)
	rec.Set("to", to)

	if err := s.Fence(ctx, old); err != nil {
		return err
	}
	fenced := time.Now()
	rec.Set("fenced_at_s", sinceStart(env, fenced))
	log.add(old, "fenced", "%s fenced: new transactions read-only, the app's sessions ended", old)
	unfence := func(cause error) error {
		if err := s.Unfence(context.WithoutCancel(ctx), old); err != nil {
			return errors.Join(cause, err)
		}
		log.add(old, "unfenced", "switchover called off: %s takes writes again", old)
		return cause
	}
	ost, err := s.State(ctx, old)
	if err != nil {
		return unfence(err)
	}
	// The new primary must have everything the old one wrote before it was fenced.
	if _, err := waitReplayed(ctx, s, to, ost.LSN, within); err != nil {
		return unfence(workloads.Failed(err))
	}
	log.add(to, "caught-up", "%s replayed up to %s, the old primary's position once fenced", to, ost.LSN)
	// The old primary becomes a replica at its next start and is shut down cleanly: its last WAL (the
	// shutdown checkpoint) is streamed to every replica, so that all of them, and it, can follow the
	// new primary's timeline. From here on no member takes writes until the new one is promoted.
	if err := s.Demote(ctx, old); err != nil {
		return unfence(err)
	}
	log.add(old, "demoted", "%s demoted: standby.signal written, shut down (fast); it restarts as a replica", old)
	// Once the old primary's stream has ended, what the new one received is everything: it replays
	// it all before it is promoted.
	if err := waitStreamEnded(ctx, s, to, within); err != nil {
		return workloads.Failed(err)
	}
	ready, err := promoteAndPoint(ctx, s, to, "", within, log)
	if err != nil {
		return err
	}
	gap := ready.Sub(fenced)
	rec.Set("no_writable_primary_s", roundTenth(gap.Seconds()))
	rec.Set("summary", fmt.Sprintf("primary %s → %s, %.1fs without a writable primary", old, to, gap.Seconds()))
	log.add(to, "ready", "%s ready as the primary: %.1fs without a writable primary", to, gap.Seconds())
	if at, measured, err := writesResumed(ctx, env, name, fenced, within); err != nil {
		return err
	} else if measured {
		d := at.Sub(fenced).Seconds()
		rec.Set("fence_to_writes_s", roundTenth(d))
		rec.Set("summary", fmt.Sprintf("primary %s → %s, %.1fs without a writable primary; writes acknowledged again %.1fs after the fence", old, to, gap.Seconds(), d))
		log.add(to, "writes-resumed", "a write acknowledged through the app again, %.1fs after the fence", d)
	}
	return rejoinAll(ctx, s, to, rejoin, log, rec)
}

// writesResumed writes, every quarter second from since, one item the way the load's ledger target
// does (ids of its own, outside the ledger) through the app, until one is acknowledged: when writes
// resumed as a user sees them. ok is false when the load has no ledger write target to write like.
func writesResumed(ctx context.Context, env *steps.Env, step string, since time.Time, timeout time.Duration) (at time.Time, ok bool, err error) {
	if env.Accept == nil || env.Sample == nil {
		return time.Time{}, false, nil
	}
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := since.Add(timeout)
	for i := 0; ; i++ {
		if _, err := writeItems(ctx, client, env, env.Sample.URL(), fmt.Sprintf("%s-%d", step, i), 1, &scenarios.Migrate{}); err == nil {
			return time.Now(), true, nil
		} else if !isAcceptFailure(err) {
			return time.Time{}, true, err
		}
		if time.Now().After(deadline) {
			return time.Time{}, true, workloads.Failed(fmt.Errorf("writes had not resumed %s after +%.1fs", timeout, since.Sub(env.Start).Seconds()))
		}
		select {
		case <-ctx.Done():
			return time.Time{}, true, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// promoteAndPoint promotes to, moves the topology to it, and waits until it is ready as the write
// Service's endpoint; it returns when.
func promoteAndPoint(ctx context.Context, s *workloads.Sample, to, why string, within time.Duration, log *topologyLog) (time.Time, error) {
	if err := s.Promote(ctx, to); err != nil {
		return time.Time{}, workloads.Failed(err)
	}
	log.add(to, "promoted", "%s promoted%s", to, why)
	if err := s.Designate(ctx, to); err != nil {
		return time.Time{}, err
	}
	log.add(to, "designated", "topology: %s is the primary; the write Service points at it", to)
	return waitPrimaryReady(ctx, s, to, within)
}

// rejoinAll waits until every member but primary streams from it.
func rejoinAll(ctx context.Context, s *workloads.Sample, primary string, timeout time.Duration, log *topologyLog, rec *steps.Record) error {
	start := time.Now()
	var errs []error
	for _, m := range s.Members() {
		if m == primary {
			continue
		}
		if _, err := s.WaitStreaming(ctx, m, timeout-time.Since(start)); err != nil {
			errs = append(errs, err)
			continue
		}
		log.add(m, "rejoined", "%s streams from %s", m, primary)
	}
	if len(errs) > 0 {
		return workloads.Failed(errors.Join(errs...))
	}
	rec.Set("rejoined_in_s", roundTenth(time.Since(start).Seconds()))
	return nil
}

// waitReplayed waits until member has replayed WAL up to lsn.
func waitReplayed(ctx context.Context, s *workloads.Sample, member, lsn string, timeout time.Duration) (workloads.MemberState, error) {
	var st workloads.MemberState
	var stErr error
	ok, err := poll(ctx, 100*time.Millisecond, timeout, func() bool {
		st, stErr = s.State(ctx, member)
		return stErr == nil && workloads.LSNAtLeast(st.LSN, lsn)
	})
	switch {
	case err != nil:
		return st, err
	case ok:
		return st, nil
	case stErr != nil:
		return st, fmt.Errorf("%s: %w", member, stErr)
	}
	return st, fmt.Errorf("%s replayed up to %s, not %s, within %s", member, st.LSN, lsn, timeout)
}

// waitStreamEnded waits until member's WAL receiver has lost its primary (it shut down) and member
// has replayed all it received.
func waitStreamEnded(ctx context.Context, s *workloads.Sample, member string, timeout time.Duration) error {
	var st workloads.MemberState
	ok, err := poll(ctx, 100*time.Millisecond, timeout, func() bool {
		var stErr error
		st, stErr = s.State(ctx, member)
		return stErr == nil && st.Receiver != "streaming" && workloads.LSNAtLeast(st.LSN, st.Received)
	})
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("%s still streams from the old primary, or has not replayed what it received, after %s (receiver %s, received %s, replayed %s)", member, timeout, st.Receiver, st.Received, st.LSN)
	}
	return nil
}

// Failover promotes a replica after the primary is gone: the primary not answering for `after`
// (asked every half second, through its pod) is gone; the replica that has replayed the most is
// promoted and the topology names it. It records the detection and the time from it to the new
// primary being ready, and, when asked to wait, when the former primary streams again as a replica.
type Failover struct{}

func (Failover) Name() string                 { return "failover" }
func (Failover) Takes(st scenarios.Step) bool { return st.Failover != nil }

func (Failover) Check(st scenarios.Step, sc *scenarios.Loaded) []steps.Problem {
	return checkSampleTopology("failover", sc)
}

func (Failover) Run(ctx context.Context, env *steps.Env, st scenarios.Step, rec *steps.Record) error {
	s := env.Sample
	if s == nil {
		return errors.New("failover: the workload is not the sample")
	}
	o := st.Failover
	after := cmp.Or(o.After.Duration, defaultFailoverAfter)
	within := cmp.Or(o.Within.Duration, defaultFailoverWithin)
	log := &topologyLog{env: env, rec: rec}
	old, err := s.Primary(ctx)
	if err != nil {
		return err
	}
	rec.Set("from", old)
	gone, err := waitGone(ctx, s, old, after, within)
	if err != nil {
		return err
	}
	detected := time.Now()
	rec.Set("detected_at_s", sinceStart(env, detected))
	log.add(old, "gone", "%s has not answered since +%.1fs: the primary is gone", old, gone.Sub(env.Start).Seconds())
	to := mostAdvanced(states(ctx, s, old))
	if to == "" {
		return workloads.Failed(errors.New("failover: no replica answers"))
	}
	rec.Set("to", to)
	ready, err := promoteAndPoint(ctx, s, to, " (the replica that had replayed the most)", within, log)
	if err != nil {
		return err
	}
	rec.Set("detection_to_ready_s", roundTenth(ready.Sub(detected).Seconds()))
	log.add(to, "ready", "%s ready as the primary, %.1fs after the detection", to, ready.Sub(detected).Seconds())
	summary := fmt.Sprintf("primary %s gone at +%.1fs, detected at +%.1fs; %s promoted, ready %.1fs after the detection", old, gone.Sub(env.Start).Seconds(), detected.Sub(env.Start).Seconds(), to, ready.Sub(detected).Seconds())
	rec.Set("summary", summary)
	// Writes resume as a user sees them (with synchronous replication, only once a standby is back),
	// measured beside the former primary's rejoin.
	var rejoinErr error
	rejoined := make(chan struct{})
	go func() {
		defer close(rejoined)
		if o.Rejoin.Duration > 0 {
			rejoinErr = rejoinAll(ctx, s, to, o.Rejoin.Duration, log, rec)
		}
	}()
	at, measured, werr := writesResumed(ctx, env, st.Name, detected, within)
	if measured && werr == nil {
		d := at.Sub(detected).Seconds()
		rec.Set("detection_to_writes_s", roundTenth(d))
		rec.Set("summary", fmt.Sprintf("%s; writes acknowledged again %.1fs after the detection", summary, d))
		log.add(to, "writes-resumed", "a write acknowledged through the app again, %.1fs after the detection", d)
	}
	<-rejoined
	return errors.Join(werr, rejoinErr)
}

// waitGone asks, every half second, whether member answers as a primary, from another member (as
// its peers would see it), and returns since when it has not, once that is after long; a member
// that answers throughout within fails the step. No observer answering is a harness error.
func waitGone(ctx context.Context, s *workloads.Sample, member string, after, within time.Duration) (time.Time, error) {
	deadline := time.Now().Add(within)
	var silent time.Time
	for {
		asked := time.Now()
		answered, err := askFromPeers(ctx, s, member)
		if err != nil {
			return time.Time{}, err
		}
		// Silent since the first question it did not answer was asked (a question that gets no
		// answer takes the connection timeout, 2 s at least, to tell).
		if answered {
			silent = time.Time{}
		} else if silent.IsZero() {
			silent = asked
		}
		if !silent.IsZero() && time.Since(silent) >= after {
			return silent, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, workloads.Failed(fmt.Errorf("failover: the primary %s kept answering for %s; nothing to fail over from", member, within))
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// askFromPeers asks whether member answers as a primary from the first other member that can ask.
func askFromPeers(ctx context.Context, s *workloads.Sample, member string) (bool, error) {
	var errs []error
	for _, obs := range s.Members() {
		if obs == member {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		ok, err := s.AnswersAsPrimary(cctx, obs, member)
		cancel()
		if err == nil {
			return ok, nil
		}
		errs = append(errs, err)
	}
	return false, fmt.Errorf("failover: no member could ask whether %s answers: %w", member, errors.Join(errs...))
}

func roundTenth(f float64) float64 { return math.Round(f*10) / 10 }
