package verify

import (
	"fmt"
	"strings"
)

// Kill is one round of a pod kill: the evidence a pod-kill fault leaves.
type Kill struct {
	AtS      float64  `json:"at_s"` // seconds since the load started
	Pods     []string `json:"pods"`
	Matched  int      `json:"matched"`
	Gone     bool     `json:"gone"`     // every victim went away
	Replaced bool     `json:"replaced"` // as many pods running and ready as before, within the wait
	// ReplacedInS is how long after the kill the pods were back (when Replaced).
	ReplacedInS float64 `json:"replaced_in_s,omitempty"`
}

func (k Kill) String() string {
	switch {
	case k.Matched == 0:
		return fmt.Sprintf("at %.1fs: matched no pod", k.AtS)
	case k.Replaced:
		return fmt.Sprintf("at %.1fs killed %s (of %d), replaced in %.1fs", k.AtS, strings.Join(k.Pods, ", "), k.Matched, k.ReplacedInS)
	case k.Gone:
		return fmt.Sprintf("at %.1fs killed %s (of %d), not replaced", k.AtS, strings.Join(k.Pods, ", "), k.Matched)
	}
	return fmt.Sprintf("at %.1fs killed %s (of %d), still there", k.AtS, strings.Join(k.Pods, ", "), k.Matched)
}

// Drain is what a node drain did: the evidence a node-drain fault leaves.
type Drain struct {
	Node       string   `json:"node"`
	Evicted    []string `json:"evicted"`
	Refused429 int      `json:"refused_429"` // evictions a PodDisruptionBudget refused (each retried)
	DrainS     float64  `json:"drain_s"`
	Emptied    bool     `json:"emptied"` // no evictable pod left on the node
	Left       []string `json:"left,omitempty"`
	Error      string   `json:"error,omitempty"`
	Uncordoned bool     `json:"uncordoned"`
}

func (d Drain) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d pods evicted in %.1fs", d.Node, len(d.Evicted), d.DrainS)
	if d.Refused429 > 0 {
		fmt.Fprintf(&b, ", %d evictions refused by a disruption budget", d.Refused429)
	}
	if d.Emptied {
		b.WriteString(", emptied")
	} else {
		fmt.Fprintf(&b, ", left %s", strings.Join(d.Left, ", "))
	}
	if d.Uncordoned {
		b.WriteString(", uncordoned")
	}
	if d.Error != "" {
		b.WriteString("; " + firstLine(d.Error))
	}
	return b.String()
}

// Loss is what a node loss did: the evidence a node-loss fault leaves. Times are seconds since the
// node was stopped.
type Loss struct {
	Node string `json:"node"`
	// AtS is when the node was stopped, in seconds since the load started.
	AtS float64 `json:"at_s"`
	// NotReadyAfterS is when the control plane first saw the node NotReady (when it did).
	NotReadyAfterS *float64 `json:"not_ready_after_s,omitempty"`
	// StartedAfterS is when the node was started again; ReadyAfterS when it was Ready again (a
	// heartbeat after the start).
	StartedAfterS *float64 `json:"started_after_s,omitempty"`
	ReadyAfterS   *float64 `json:"ready_after_s,omitempty"`
	// Pods are the pods that ran on the node when it was lost.
	Pods []string `json:"pods"`
	// Restarted are those of Pods whose containers were seen killed with the node once it was back
	// (a container restarted, or the pod replaced): the proof of a loss too short for the control
	// plane to see the node NotReady.
	Restarted []string `json:"restarted,omitempty"`
	Error     string   `json:"error,omitempty"`
}

func (l Loss) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s stopped at %.1fs (%d pods on it)", l.Node, l.AtS, len(l.Pods))
	for _, t := range []struct {
		what string
		at   *float64
	}{{"NotReady", l.NotReadyAfterS}, {"started", l.StartedAfterS}, {"Ready", l.ReadyAfterS}} {
		if t.at != nil {
			fmt.Fprintf(&b, ", %s after %.1fs", t.what, *t.at)
		} else {
			fmt.Fprintf(&b, ", never %s", t.what)
		}
	}
	if l.Error != "" {
		b.WriteString("; " + l.Error)
	}
	return b.String()
}

// Fault is one fault step as the check sees it: its outcome and its evidence.
type Fault struct {
	Step, Kind    string
	Status, Error string
	Kills         []Kill
	Drain         *Drain
	Loss          *Loss
}

// FaultTookEffect passes when every fault shows that it happened: a pod kill killed pods that went
// away and were replaced; a drain evicted pods and left the node with none to evict; a lost node was
// seen NotReady and was Ready again after it was started. A fault that
// did nothing fails by name (a selector that matched no pod, a drain a budget blocked); a fault the
// harness could not carry out, or no fault at all, is an error.
func FaultTookEffect(faults []Fault) Result {
	const name = "fault-took-effect"
	if len(faults) == 0 {
		return result(name, Error, nil, "no fault ran: nothing took effect")
	}
	var fails, errs, oks []string
	obs := map[string]any{}
	for _, f := range faults {
		switch {
		case f.Status == "error":
			errs = append(errs, fmt.Sprintf("%s could not be carried out: %s", f.Step, firstLine(f.Error)))
		case strings.HasSuffix(f.Kind, "pod-kill"):
			killed := 0
			for i, k := range f.Kills {
				round := f.Step
				if len(f.Kills) > 1 {
					round = fmt.Sprintf("%s (round %d at %.0fs)", f.Step, i+1, k.AtS)
				}
				switch {
				case k.Matched == 0:
					fails = append(fails, round+": pod-kill matched no pod")
				case !k.Gone:
					fails = append(fails, fmt.Sprintf("%s: the pods killed (%s) did not go away", round, strings.Join(k.Pods, ", ")))
				case !k.Replaced:
					fails = append(fails, fmt.Sprintf("%s: the pods killed (%s) were not replaced by ready ones", round, strings.Join(k.Pods, ", ")))
				default:
					killed += len(k.Pods)
				}
			}
			switch {
			case len(f.Kills) == 0:
				errs = append(errs, f.Step+": no kill was recorded")
			case killed > 0:
				oks = append(oks, fmt.Sprintf("%s: %d pods killed and replaced", f.Step, killed))
			}
			obs[f.Step] = f.Kills
		case strings.HasSuffix(f.Kind, "node-drain"):
			d := f.Drain
			switch {
			case d == nil:
				errs = append(errs, f.Step+": no drain was recorded")
			case len(d.Evicted) == 0 && d.Error != "":
				fails = append(fails, fmt.Sprintf("%s: drain of %s evicted nothing (%d evictions refused by a PodDisruptionBudget): %s", f.Step, d.Node, d.Refused429, firstLine(d.Error)))
			case len(d.Evicted) == 0:
				fails = append(fails, fmt.Sprintf("%s: drain of %s evicted nothing: the node ran no evictable pod", f.Step, d.Node))
			case !d.Emptied:
				fails = append(fails, fmt.Sprintf("%s: drain of %s left evictable pods (%s)%s", f.Step, d.Node, strings.Join(d.Left, ", "), orErr(d.Error)))
			default:
				oks = append(oks, fmt.Sprintf("%s: %s drained in %.1fs, %d pods evicted", f.Step, d.Node, d.DrainS, len(d.Evicted)))
			}
			obs[f.Step] = d
		case strings.HasSuffix(f.Kind, "node-loss"):
			l := f.Loss
			switch {
			case l == nil:
				errs = append(errs, f.Step+": no node loss was recorded")
			case l.NotReadyAfterS == nil && len(l.Restarted) > 0 && l.ReadyAfterS != nil:
				oks = append(oks, fmt.Sprintf("%s: %s down%s, too short to be seen NotReady; %d of its %d pods were killed with it and restarted", f.Step, l.Node, downFor(l), len(l.Restarted), len(l.Pods)))
			case l.NotReadyAfterS == nil:
				fails = append(fails, fmt.Sprintf("%s: %s was never seen NotReady while it was down%s, and none of its pods was seen restarted (the control plane marks a node NotReady after its node-monitor-grace-period, 50s by default: lengthen for)", f.Step, l.Node, downFor(l)))
			case l.ReadyAfterS == nil:
				fails = append(fails, fmt.Sprintf("%s: %s was lost (NotReady %.0fs after it stopped) but never Ready again%s", f.Step, l.Node, *l.NotReadyAfterS, orErr(l.Error)))
			default:
				oks = append(oks, fmt.Sprintf("%s: %s NotReady %.0fs after it stopped, Ready %.0fs after it started, %d pods lost with it", f.Step, l.Node, *l.NotReadyAfterS, *l.ReadyAfterS-*l.StartedAfterS, len(l.Pods)))
			}
			obs[f.Step] = l
		default:
			errs = append(errs, fmt.Sprintf("%s: no evidence is known for %s", f.Step, f.Kind))
		}
	}
	return judged(name, obs, fails, errs, oks)
}

func downFor(l *Loss) string {
	if l.StartedAfterS == nil {
		return ""
	}
	return fmt.Sprintf(" (%.0fs)", *l.StartedAfterS)
}

func orErr(s string) string {
	if s == "" {
		return ""
	}
	return ": " + firstLine(s)
}
