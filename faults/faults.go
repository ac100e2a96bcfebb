// Package faults owns the fault step kinds: pod kills, node drains and node losses, each a small type registered
// in the runner's table beside the migrations. A fault records what it did (pods killed and
// replaced, pods evicted, the node emptied) as the evidence the fault-took-effect check judges, and
// undoes itself (a drained node uncordoned, a lost node started) on every exit path through the
// Env's deferred clean-up; a node a crashed run left cordoned carries an annotation by which the
// next run finds and repairs it, and a node container it left stopped is started (Repair).
package faults

import (
	"hash/fnv"
	"math/rand/v2"

	"github.com/rehearse-dev/rehearse/steps"
)

// Kinds are the fault kinds, for the runner's table.
var Kinds = steps.Table{PodKill{}, NodeDrain{}, NodeLoss{}}

// rng is the step's own random source: the same seed and step name choose the same victims.
func rng(env *steps.Env, step string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(step))
	return rand.New(rand.NewPCG(env.Seed, h.Sum64()))
}
