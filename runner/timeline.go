package runner

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rehearse-dev/rehearse/reports"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/steps"
	"github.com/rehearse-dev/rehearse/verify"
)

// timeline runs steps on one timeline. A step without at starts once every earlier step has ended;
// a step with at starts at its offset from the load's start (start), or from another step's start or
// end, concurrently with whatever is in flight. do carries a step out; began and ended see each step
// as it starts and ends (for progress and metrics). It returns, in file order, every step that
// started, once all of them have ended (or ctx ended).
func timeline(ctx context.Context, list []scenarios.Step, start time.Time, kinds steps.Table,
	do func(context.Context, scenarios.Step, *steps.Record) error, began, ended func(reports.Step)) []reports.Step {
	n := len(list)
	index := map[string]int{}
	startedCh, endedCh := make([]chan struct{}, n), make([]chan struct{}, n)
	for i, st := range list {
		index[st.Name] = i
		startedCh[i], endedCh[i] = make(chan struct{}), make(chan struct{})
	}
	var mu sync.Mutex
	events := make([]*reports.Step, n)
	// waitFor blocks until ch is closed; false when ctx ended first.
	waitFor := func(ch chan struct{}) bool {
		select {
		case <-ch:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var wg sync.WaitGroup
	for i, st := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(endedCh[i])
			planned, ok := plannedStart(st.At, start, index, events, &mu, startedCh, endedCh, i, waitFor)
			if !ok {
				close(startedCh[i])
				return
			}
			sleep(ctx, time.Until(planned))
			if ctx.Err() != nil {
				close(startedCh[i])
				return
			}
			kind := "unknown"
			k := kinds.Find(st)
			if k != nil {
				kind = k.Name()
			}
			ev := &reports.Step{Name: st.Name, Kind: kind, Planned: planned, Started: time.Now(), Status: "ok"}
			mu.Lock()
			events[i] = ev
			if broke := brokenChain(list, events, i); broke != "" {
				// An operator stops at the failed block: what comes after it in the runbook is not run.
				ev.Finished, ev.Status, ev.Error = ev.Started, reports.StepNotRun, "not run: "+broke
				if d, ok := k.(steps.Describer); ok {
					ev.Did = d.Describe(st)
				}
				done := *ev
				mu.Unlock()
				close(startedCh[i])
				began(done)
				ended(done)
				return
			}
			mu.Unlock()
			close(startedCh[i])
			began(*ev)
			var rec steps.Record
			err := do(ctx, st, &rec)
			mu.Lock()
			ev.Finished, ev.Did = time.Now(), rec.Data()
			for _, m := range rec.Marks() {
				ev.Actions = append(ev.Actions, verify.Change{At: m.At, Kind: verify.KindAction, Object: m.Object, What: m.What, Detail: "step " + st.Name + ": " + m.Detail})
			}
			switch {
			case err != nil:
				ev.Status, ev.Error = outcome(err), err.Error()
			case rec.Outcome() != "":
				ev.Status = rec.Outcome()
			}
			done := *ev
			mu.Unlock()
			ended(done)
		}()
	}
	wg.Wait()
	var out []reports.Step
	for _, ev := range events {
		if ev != nil {
			out = append(out, *ev)
		}
	}
	return out
}

// brokenChain names the earlier step of step i's chain that failed or erred ("" when none has, or
// step i is in no chain); events are the steps started so far (mu held).
func brokenChain(list []scenarios.Step, events []*reports.Step, i int) string {
	c := list[i].Chain
	if c == "" {
		return ""
	}
	for j := range i {
		ev := events[j]
		if list[j].Chain != c || ev == nil || ev.Finished.IsZero() {
			continue
		}
		if ev.Status == "failed" || ev.Status == "error" {
			return fmt.Sprintf("%s %s before it, and a runbook stops at its first failed block", list[j].Name, ev.Status)
		}
	}
	return ""
}

// plannedStart waits until step i's reference has happened and says when it is due: after every
// earlier step has ended (no at), or at an offset from the load's start or from a step's start or end.
func plannedStart(at scenarios.At, start time.Time, index map[string]int, events []*reports.Step, mu *sync.Mutex,
	startedCh, endedCh []chan struct{}, i int, waitFor func(chan struct{}) bool) (time.Time, bool) {
	if !at.Set {
		for j := range i {
			if !waitFor(endedCh[j]) {
				return time.Time{}, false
			}
		}
		return time.Now(), true
	}
	if at.Step == "" {
		return start.Add(at.Offset), true
	}
	j := index[at.Step]
	ch := startedCh[j]
	if at.End {
		ch = endedCh[j]
	}
	if !waitFor(ch) {
		return time.Time{}, false
	}
	mu.Lock()
	defer mu.Unlock()
	ref := events[j]
	if ref == nil { // it never started (the run was interrupted)
		return time.Time{}, false
	}
	if at.End {
		return ref.Finished.Add(at.Offset), true
	}
	return ref.Started.Add(at.Offset), true
}
