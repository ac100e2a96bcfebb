package runner

import (
	"context"
	"os"
	"path"
	"slices"
	"time"

	"github.com/rehearse-dev/rehearse/clusters"
	"github.com/rehearse-dev/rehearse/replay"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/workloads"
)

// What a run's replay bundle records of the cluster comes from the local docker engine; the tests
// replace these.
var (
	localImageID = clusters.LocalImageID
	nodeImageOf  = (*clusters.Cluster).NodeImage
	currentBuild = replay.CurrentBuild
)

// BundleFile is the replay bundle's run.json, relative to the run's directory (summary.json's
// replay).
var BundleFile = path.Join(replay.Dir, replay.RunFile)

// chooseSeed is the run's seed: the one given (a replay's is its bundle's), else one from the clock.
func chooseSeed(given uint64) uint64 {
	if given != 0 {
		return given
	}
	return uint64(time.Now().UnixNano())
}

// newBundle is what a run's replay bundle records before the cluster is known.
func newBundle(sc *scenarios.Loaded, opts Options, seed uint64, runID string) *replay.Run {
	wd, _ := os.Getwd()
	b := &replay.Run{Format: replay.Format, Scenario: sc.Metadata.Name, ScenarioFile: RelativeFile(sc.File),
		ScenarioHash: sc.Hash, Seed: seed, RunID: runID, Started: time.Now(), Rehearse: currentBuild(),
		Args: opts.Args, Command: replay.ShellQuote(opts.Args), WorkingDir: wd,
		Options: replay.Options{Out: opts.OutDir, KeepCluster: opts.KeepCluster, Kubeconfig: opts.Kubeconfig,
			Context: opts.Context, AllowContexts: slices.Clone(opts.AllowContexts), MetricsAddr: opts.MetricsAddr}}
	if opts.Replay != nil {
		b.ReplayOf = &replay.Origin{RunID: opts.Replay.Run.RunID, Bundle: opts.Replay.Dir}
	}
	return b
}

// recordCluster adds the cluster to the run's bundle — on a local kind cluster, the image its nodes
// run and the docker image IDs of the workload's images it is given — and, for a replay, warns of
// (and records) what differs from the run it replays, then rewrites run.json.
func recordCluster(ctx context.Context, out string, b *replay.Run, sc *scenarios.Loaded, opts Options, kc *kindCluster) error {
	switch {
	case opts.Context != "":
		b.Cluster = &replay.Cluster{Context: opts.Context}
	case sc.Cluster.Provider == "existing":
		b.Cluster = &replay.Cluster{Context: sc.Cluster.Context}
	}
	if kc != nil && kc.Cluster != nil {
		if b.Cluster == nil {
			b.Cluster = &replay.Cluster{}
		}
		b.Cluster.Kind, b.Cluster.Created = kc.Name, kc.created
		ref, id, err := nodeImageOf(kc.Cluster, ctx)
		if err != nil && kc.Image != "" {
			ref, id = kc.Image, localImageID(ctx, kc.Image)
		}
		if ref != "" {
			b.NodeImage = &replay.Image{Ref: ref, ID: id}
		}
		for _, ref := range workloadImages(sc) {
			b.Images = append(b.Images, replay.Image{Ref: ref, ID: localImageID(ctx, ref)})
		}
	}
	if opts.Replay != nil {
		b.ReplayOf.Differences = replay.Differences(&opts.Replay.Run, b)
		for _, d := range b.ReplayOf.Differences {
			progress(opts.Progress, "warning: replay: %s", d)
		}
	}
	return replay.Update(out, b)
}

// workloadImages are the local images a run loads into a kind cluster's nodes.
func workloadImages(sc *scenarios.Loaded) []string {
	if sc.Workload.Sample != "" {
		return []string{workloads.OrdersImage, workloads.PostgresImage}
	}
	return sc.Workload.LocalImages
}
