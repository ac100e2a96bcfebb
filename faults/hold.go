package faults

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// A run that cordons or stops a node marks the Node object with itself and a time it renews while
// the fault holds (a lease on the node itself). Repair, at the start of every run, puts right only
// what a run left that no longer renews its mark: a crashed run's cordon or stopped node, never the
// drain or node loss another rehearsal on the same cluster is in the middle of.
const (
	// StoppedBy marks a node whose container a node-loss stopped, with the run that did it.
	StoppedBy = "rehearse.dev/stopped-by"
	// HeldUntil is when the run that marked the node last promised to be alive until (RFC 3339).
	HeldUntil = "rehearse.dev/held-until"
)

// Lease terms: a mark is renewed every holdRenew and promises holdTTL; a run that stops renewing
// (killed, crashed) leaves a mark Repair takes back at most holdTTL later.
var (
	holdTTL   = 30 * time.Second
	holdRenew = 10 * time.Second
)

// hold marks node with key=runID and a HeldUntil renewed until release is called; release only
// stops the renewal. The caller removes the mark and its lease itself (Uncordon, unmark), in the
// same patch that ends the fault, so that no moment shows the fault without its mark.
func hold(ctx context.Context, cs kubernetes.Interface, node, key, runID string) (release func(), err error) {
	if err := patchHold(ctx, cs, node, key, runID); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(holdRenew)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				// A failed renewal is retried at the next tick; the TTL covers two misses.
				_ = patchHold(ctx, cs, node, key, runID)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait() }) }, nil
}

func patchHold(ctx context.Context, cs kubernetes.Interface, node, key, runID string) error {
	until := time.Now().Add(holdTTL).UTC().Format(time.RFC3339)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q,%q:%q}}}`, key, runID, HeldUntil, until)
	_, err := cs.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "rehearse"})
	return err
}

// unmark removes key and the lease from node.
func unmark(ctx context.Context, cs kubernetes.Interface, node, key string) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:null,%q:null}}}`, key, HeldUntil)
	_, err := cs.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "rehearse"})
	return err
}

// heldBy says which live run holds n ("" when none does: no mark, or a lease that ran out, or a
// mark without a lease, as a run before leases wrote it).
func heldBy(n *corev1.Node, key string, now time.Time) (run string, until time.Time) {
	run = n.Annotations[key]
	if run == "" {
		return "", time.Time{}
	}
	until, err := time.Parse(time.RFC3339, n.Annotations[HeldUntil])
	if err != nil || !now.Before(until) {
		return "", time.Time{}
	}
	return run, until
}
