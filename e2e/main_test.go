//go:build e2e

// Package e2e holds rehearse's end-to-end tests: they build images offline, create a real kind
// cluster through package clusters, share it across the tests, and delete it at the end.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/e2e-framework/pkg/env"
	"sigs.k8s.io/e2e-framework/pkg/envconf"

	"github.com/rehearse-dev/rehearse/clusters"
	"github.com/rehearse-dev/rehearse/images"
	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/workloads"
)

// e2eNodePorts keeps the suite's published ports clear of a default-range cluster a developer may have.
// The API server hands out its lowest 16 (31000-31015) last (the static band of a NodePort range):
// the suite's Services that name their port take them, and do not meet one handed to another
// rehearsal running beside them.
var e2eNodePorts = clusters.PortRange{First: 31000, Count: 40}

const (
	clusterName = "rehearse-e2e"
	// e2eWorkers serve the rehearsals that run side by side (the pool of tests): two rehearsals of
	// the orders-postgres sample at once ask for 4.2 CPUs (three database members at 500m, three app
	// pods at 200m, each), and each node offers the host's 2 CPUs less its system pods (with two
	// workers a database pod stayed Pending).
	e2eWorkers = 3
	// faultLane is the pool of workers set apart for node-level faults (drains, node losses): a
	// rehearsal runs there when its namespace asks for it (clusters.PoolAnnotations), nothing else
	// does, so that a drain or a lost node there touches no other rehearsal. Three workers, as the
	// node-level rehearsals had the whole cluster before: a drained node's pods (a whole sample, 2.1
	// CPUs) need two others to go to.
	faultLane        = "faults"
	faultLaneWorkers = 3
	probeImage       = "rehearse.local/e2e-probe:dev"
)

// poolSlots bounds the rehearsals that run at once beside the fault lane: E2E_POOL (make e2e passes
// it; default 2). go test's -parallel is set above the number of tests, so that the lane never
// waits for a slot the pool's waiting tests hold; this is the limit that counts. With three beside
// the lane (and four pool workers) the host was saturated 20 % of the load's seconds (run queue p90
// 35 on two cores, 15 of 52 rehearsals warned): two, and three workers, keep it healthy.
var poolSlots = make(chan struct{}, poolSize())

func poolSize() int {
	if n, err := strconv.Atoi(os.Getenv("E2E_POOL")); err == nil && n > 0 {
		return n
	}
	return 2
}

// inPool runs f in one of the pool's slots (waiting for one).
func inPool(f func()) { inPoolUntil(func(func()) { f() }) }

// inPoolUntil runs f in one of the pool's slots, which f may give back before it returns (release):
// a rehearsal does once its teardown begins, as its pods are deleted at once and what is left is
// waiting for its namespace to go (~6 s each, the namespace controller waits 5 s before it
// starts), which takes no share of the host the next rehearsal's deploy needs.
func inPoolUntil(f func(release func())) {
	poolSlots <- struct{}{}
	done := occupied("pool")
	var once sync.Once
	release := func() { once.Do(func() { done(); <-poolSlots }) }
	defer release()
	f(release)
}

// holdPoolSlot holds a slot of the pool for the rest of test t: for a test that deploys a workload
// without rehearse (which takes its slot itself).
func holdPoolSlot(t *testing.T) {
	poolSlots <- struct{}{}
	done := occupied("pool")
	t.Cleanup(func() { <-poolSlots; done() })
}

// slots records when the pool's slots and the fault lane were taken, for the recap's occupancy
// lines: where the suite's wall time had a slot standing idle.
var slots struct {
	sync.Mutex
	start time.Time // the suite's tests began (the cluster was ready)
	busy  map[string][][2]time.Time
}

// occupied records that a slot of kind ("pool" or "lane") is taken from now until the returned
// func is called.
func occupied(kind string) func() {
	from := time.Now()
	return func() {
		slots.Lock()
		defer slots.Unlock()
		if slots.busy == nil {
			slots.busy = map[string][][2]time.Time{}
		}
		slots.busy[kind] = append(slots.busy[kind], [2]time.Time{from, time.Now()})
	}
}

var (
	testenv env.Environment
	shared  *clusters.Cluster
	// volumesBefore are the docker volumes that existed before the suite made its cluster.
	volumesBefore map[string]bool
)

func TestMain(m *testing.M) {
	cfg := envconf.New()
	testenv = env.NewWithConfig(cfg)
	testenv.Setup(createCluster, loadImages, waitTurn)
	testenv.Finish(func(ctx context.Context, cfg *envconf.Config) (context.Context, error) {
		if shared != nil {
			printThrottled(os.Stdout)
			return ctx, shared.Delete(ctx)
		}
		return ctx, nil
	})
	host := load.StartHostMonitor(time.Second)
	code := testenv.Run(m)
	// The host's load from the first test on: not the set-up, which overlaps the unit tests.
	slots.Lock()
	from := max(0, slots.start.Sub(host.Started()))
	slots.Unlock()
	printRecap(os.Stdout, host.Stop(from, 0))
	// The cluster was deleted when the last test ended (Finish): nothing of it may be left. This
	// runs here, not as a test, because the tests run side by side and none of them is last.
	if left := leftAfterDelete(); len(left) > 0 && volumesBefore != nil {
		fmt.Printf("--- FAIL: the deleted cluster %s left:\n  %s\n", clusterName, strings.Join(left, "\n  "))
		code = 1
	} else if volumesBefore != nil {
		fmt.Printf("e2e: cluster %s deleted; no container, network or volume of it is left\n", clusterName)
	}
	if cli.bin != "" {
		_ = os.RemoveAll(filepath.Dir(cli.bin))
	}
	os.Exit(code)
}

func createCluster(ctx context.Context, cfg *envconf.Config) (context.Context, error) {
	volumesBefore = map[string]bool{}
	for _, v := range dockerLines("volume", "ls", "-q") {
		volumesBefore[v] = true
	}
	if names, _ := clusters.List(); slices.Contains(names, clusterName) {
		fmt.Printf("e2e: deleting cluster %s left by an earlier run\n", clusterName)
		if err := clusters.Delete(ctx, clusterName, ""); err != nil {
			return ctx, err
		}
	}
	dir, err := os.MkdirTemp("", "rehearse-e2e-")
	if err != nil {
		return ctx, err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	start := time.Now()
	c, err := clusters.Create(ctx, clusters.CreateOptions{
		Name: clusterName, Workers: e2eWorkers, Choice: clusters.ImageOffline, Kubeconfig: kubeconfig, Wait: 5 * time.Minute,
		NodePorts: e2eNodePorts, Pools: []clusters.Pool{{Name: faultLane, Workers: faultLaneWorkers}},
	})
	if err != nil {
		return ctx, err
	}
	shared = c
	fmt.Printf("e2e: cluster %s (1 control-plane + %d workers + %d in the %s lane) ready in %s\n", clusterName, e2eWorkers, faultLaneWorkers, faultLane, time.Since(start).Round(100*time.Millisecond))
	cfg.WithKubeconfigFile(kubeconfig)
	return ctx, nil
}

// loadImages builds the probe helper into a scratch image and loads it, with the sample workload's
// images, into every node with clusters.LoadImages (kind's own image loading, no registry).
func loadImages(ctx context.Context, cfg *envconf.Config) (context.Context, error) {
	dir, err := os.MkdirTemp("", "rehearse-probe-")
	if err != nil {
		return ctx, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "probe")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./probe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return ctx, fmt.Errorf("build probe: %w: %s", err, out)
	}
	if err := images.ImportFiles(ctx, images.Docker{}, probeImage, []string{`ENTRYPOINT ["/probe"]`},
		images.File{Path: "/probe", Mode: 0o755, HostPath: bin}, images.File{Path: "/tmp/.keep", Mode: 0o644}); err != nil {
		return ctx, err
	}
	start := time.Now()
	// The sample workload's images come from `rehearse images build` (make e2e runs it first).
	if err := shared.LoadImages(ctx, probeImage, workloads.OrdersImage, workloads.PostgresImage); err != nil {
		return ctx, err
	}
	fmt.Printf("e2e: probe, orders and postgres images loaded into every node in %s\n", time.Since(start).Round(100*time.Millisecond))
	return ctx, nil
}

// printThrottled says how often the control plane's controllers and scheduler waited on their own
// client's rate limit (client-go's "client-side throttling" lines in their logs): rollouts, endpoints
// and namespace deletions of side-by-side rehearsals queue there.
func printThrottled(w io.Writer) {
	for _, c := range []string{"kube-controller-manager", "kube-scheduler"} {
		out, _ := exec.Command("docker", "exec", clusterName+"-control-plane", "sh", "-c",
			"cat /var/log/pods/kube-system_"+c+"-*/*/*.log | grep -c 'client-side throttling'").Output()
		fmt.Fprintf(w, "e2e: %s waited on its client's rate limit %s times\n", c, strings.TrimSpace(string(out)))
	}
}

// waitTurn holds the tests back, the cluster ready, until the file E2E_AFTER names exists (make test
// writes the unit and integration tests' exit status to it when they end): the cluster's creation
// overlaps them, the rehearsals do not share the host with them. A non-zero status ends the suite
// here (its cluster is deleted): the e2e verdict would not count.
func waitTurn(ctx context.Context, _ *envconf.Config) (context.Context, error) {
	if gate := os.Getenv("E2E_AFTER"); gate != "" {
		start := time.Now()
		status, err := waitForFile(ctx, gate, 500*time.Millisecond)
		if err != nil {
			return ctx, err
		}
		if status != "0" {
			return ctx, fmt.Errorf("the unit or integration tests failed (exit %s): the e2e tests are not run", status)
		}
		fmt.Printf("e2e: the unit and integration tests passed; the rehearsals waited %s for them\n", time.Since(start).Round(100*time.Millisecond))
	}
	// No test compiles while the rehearsals run, and nothing compiles beside the integration tests
	// (a compile beside them starved the orders app's outage test, ci18): the CLI is built here.
	start := time.Now()
	if err := compileCLI(ctx); err != nil {
		return ctx, fmt.Errorf("rehearse CLI: %w", err)
	}
	fmt.Printf("e2e: the rehearse CLI built in %s\n", time.Since(start).Round(100*time.Millisecond))
	slots.Lock()
	slots.start = time.Now()
	slots.Unlock()
	return ctx, nil
}

// waitForFile polls for path until it exists and returns its content, trimmed.
func waitForFile(ctx context.Context, path string, every time.Duration) (string, error) {
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			return strings.TrimSpace(string(b)), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(every):
		}
	}
}

func dockerLines(args ...string) []string {
	out, err := exec.Command("docker", args...).Output()
	if err != nil {
		return nil
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}
