//go:build e2e

package e2e

import (
	"testing"

	"github.com/rehearse-dev/rehearse/verify"
)

// Losing a node stops its container and starts it again. Rehearsals that ran after that restart on
// the shared cluster failed where they pass otherwise (CI, stop 27: drain-during-rolling and
// primary-node-drain right after node-loss-replica, then TestMigrations), although the node had a
// fresh Ready heartbeat and its system pods were back (waitSettled). So the tests that restart a
// node run last in the fault lane (TestFaultLane), on its workers only: no other test has a pod on
// a node that restarts.
func nodeLoss(t *testing.T) {
	runFaultCases(t, "node loss", faultLane, []faultCase{
		// Requests to the lost node's pods time out until the control plane sees it NotReady (40-55 s):
		// the explanation names the fault acting. Only the new connections that land on the lost
		// replica's pods fail, a few at a time, so whether one fails in the seconds around the
		// NotReady (and the explanation names it too) is chance: two runs of the fault lane had their
		// last failures 2 and 3 s before it. fault-took-effect states it.
		{"../scenarios/node-loss-replica.yaml", 0, []faultWant{{"fault-took-effect", verify.Pass, "NotReady"}, {"acked-writes-durable", verify.Pass, ""}, {"replica-checksums", verify.Pass, ""}},
			[]string{"the fault lose-replica-node (fault/node-loss) was acting"}},
		// Its only pod's node lost: once the control plane marks the pod not ready, the Service has no
		// ready endpoint at all; the explanation names the node and that window.
		{"testdata/faults/node-loss-single-broken.yaml", 1, []faultWant{{"zero-failed-requests", verify.Fail, ""}, {"fault-took-effect", verify.Pass, "NotReady"}},
			[]string{"the fault lose-its-node (fault/node-loss) was acting", "node/rehearse-e2e-worker", "NotReady at +", "the load's Service had no ready endpoint from +"}},
		// Failover after the primary's node is lost, with its replica behind: asynchronous
		// replication loses what the primary alone acknowledged (named, with when); the synchronous
		// twin acknowledged none of it, and loses nothing.
		{"../scenarios/failover-async-loses-writes.yaml", 1, []faultWant{{"acked-writes-durable", verify.Fail, "acknowledged writes are missing (lost), acknowledged from +"},
			{"replica-checksums", verify.Pass, "2 members"}, {"fault-took-effect", verify.Pass, "killed with it"}},
			[]string{"step fail-over acted: orders-db-0 has not answered since +"}},
		{"../scenarios/failover-sync-keeps-writes.yaml", 0, []faultWant{{"acked-writes-durable", verify.Pass, "all "},
			{"replica-checksums", verify.Pass, "2 members"}, {"fault-took-effect", verify.Pass, "killed with it"}},
			[]string{"step fail-over acted: orders-db-0 has not answered since +"}},
	})
}
