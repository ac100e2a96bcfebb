package workloads

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pods refused at admission. A controller whose pods the API server refuses (Pod Security, a
// validating webhook) retries with back-off and never succeeds by itself: a wait for its rollout
// would run to its timeout and then say only that nothing became ready, with no pod to diagnose.
// These find the refusal in the controllers' FailedCreate events and say it at once.

// Refusal is a pod creation the API server refused, as a controller reported it.
type Refusal struct {
	Namespace, Kind, Name string // the controller: ReplicaSet, StatefulSet, Job, DaemonSet
	Message               string
	At                    time.Time
}

func (r Refusal) Error() string {
	return fmt.Sprintf("%s %s in namespace %s cannot create its pods, and will not by itself: %s", r.Kind, r.Name, r.Namespace, r.Message)
}

// hopelessRefusal says whether a FailedCreate message is one no retry can get past: a Pod Security
// violation, or an admission webhook's denial. A quota exceeded, a service account not made yet,
// may pass once something else changes, so they are only diagnosed.
func hopelessRefusal(msg string) bool {
	return strings.Contains(msg, "violates PodSecurity") ||
		strings.Contains(msg, "admission webhook") && strings.Contains(msg, "denied the request")
}

// Refused is the latest hopeless pod-creation refusal in namespace reported at or after since by a
// controller that owner names (its name, or for a Deployment its ReplicaSets' "NAME-..." names; ""
// takes any), or nil.
func (p *Ops) Refused(ctx context.Context, namespace, owner string, since time.Time) (*Refusal, error) {
	evs, err := p.cs.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "reason=FailedCreate"})
	if err != nil {
		return nil, err
	}
	var found *Refusal
	for _, e := range evs.Items {
		if e.Reason != "FailedCreate" || !hopelessRefusal(e.Message) {
			continue
		}
		name := e.InvolvedObject.Name
		if owner != "" && name != owner && !strings.HasPrefix(name, owner+"-") {
			continue
		}
		at := eventTime(e)
		if at.Before(since.Add(-time.Second)) {
			continue
		}
		if found == nil || at.After(found.At) {
			found = &Refusal{Namespace: namespace, Kind: e.InvolvedObject.Kind, Name: name, Message: strings.TrimPrefix(e.Message, "Error creating: "), At: at}
		}
	}
	return found, nil
}

func eventTime(e corev1.Event) time.Time {
	for _, t := range []time.Time{e.LastTimestamp.Time, e.EventTime.Time, e.FirstTimestamp.Time, e.CreationTimestamp.Time} {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

// UnlessRefused runs wait, and ends it early with the Refusal when a controller in one of namespaces
// has its pods refused at admission meanwhile (looked for every 2 s). Refusals before the call are
// not counted. The error otherwise is wait's.
func (p *Ops) UnlessRefused(ctx context.Context, namespaces func() []string, wait func(context.Context) error) error {
	since := time.Now()
	return giveUpOn(ctx, func(ctx context.Context) error {
		for _, ns := range namespaces() {
			if r, err := p.Refused(ctx, ns, "", since); err == nil && r != nil {
				return Failed(r)
			}
		}
		return nil
	}, wait)
}

// giveUpOn runs wait, and ends it early when hopeless, asked every 2 s meanwhile, says why it
// cannot succeed: then that is the error, not wait's own (unless ctx itself ended first).
func giveUpOn(ctx context.Context, hopeless func(context.Context) error, wait func(context.Context) error) error {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
				if why := hopeless(wctx); why != nil {
					cancel(why)
					return
				}
			}
		}
	}()
	err := wait(wctx)
	cancel(nil)
	<-stopped
	if cause := context.Cause(wctx); err != nil && cause != nil && cause != context.Canceled && ctx.Err() == nil {
		return cause
	}
	return err
}
