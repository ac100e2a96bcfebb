//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/features"

	"github.com/rehearse-dev/rehearse/workloads"
	"github.com/rehearse-dev/rehearse/workloads/orders"
)

// writeOrders POSTs n orders with ids prefix-0000.. through the app's NodePort, with up to 8 in flight,
// retrying a request that got no answer (writes are idempotent). It returns the acknowledged ids.
func writeOrders(t *testing.T, base, prefix string, n int) []string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	var mu sync.Mutex
	var acked []string
	var failures []string
	ids := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				body := fmt.Sprintf(`{"id":%q,"name":"customer %s","amount_cents":%d}`, id, id, len(id))
				var last string
				ok := false
				for attempt := 0; attempt < 5 && !ok; attempt++ {
					resp, err := client.Post(base+"/orders", "application/json", strings.NewReader(body))
					if err != nil {
						last = err.Error()
						time.Sleep(200 * time.Millisecond)
						continue
					}
					resp.Body.Close()
					ok = resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK
					last = resp.Status
				}
				mu.Lock()
				if ok {
					acked = append(acked, id)
				} else {
					failures = append(failures, id+": "+last)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		ids <- fmt.Sprintf("%s-%04d", prefix, i)
	}
	close(ids)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d writes failed, first: %v", len(failures), n, failures[0])
	}
	return acked
}

func sumsOf(cs []workloads.ReplicaChecksum) map[string]map[string]workloads.TableSum {
	out := map[string]map[string]workloads.TableSum{}
	for _, c := range cs {
		out[c.Pod] = c.Tables
	}
	return out
}

func TestSampleWorkload(t *testing.T) {
	t.Parallel() // beside the other tests; node-level faults run in their own lane (TestFaultLane)
	holdPoolSlot(t)
	var sample *workloads.Sample
	var acked []string
	f := features.New("orders-postgres sample").
		Setup(func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			start := time.Now()
			s, err := workloads.DeploySample(ctx, cfg.Client().RESTConfig(), workloads.SampleOptions{
				Namespace: envconf.RandomName("orders", 12), NodePort: int32(shared.NodePorts.First + 1),
			}, 6*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			sample = s
			t.Logf("sample deployed and ready in %s (empty namespace → 3 db members + 3 app replicas ready)", time.Since(start).Round(100*time.Millisecond))
			return ctx
		}).
		Assess("2000 orders written through the NodePort; all replicas converge to one checksum", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			start := time.Now()
			acked = writeOrders(t, sample.URL(), "e2e", 2000)
			t.Logf("2000 orders acknowledged in %s", time.Since(start).Round(100*time.Millisecond))
			sums, err := sample.Checksums(ctx, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range sums {
				if !c.CaughtUp {
					t.Errorf("%s did not catch up with the primary (replay %s)", c.Pod, c.ReplayLSN)
				}
				if c.Tables["orders"].Rows != 2000 {
					t.Errorf("%s holds %d orders, want 2000", c.Pod, c.Tables["orders"].Rows)
				}
			}
			for _, c := range sums[1:] {
				if diff := cmp.Diff(sums[0].Tables, c.Tables); diff != "" {
					t.Errorf("%s differs from the primary (-primary +replica):\n%s", c.Pod, diff)
				}
			}
			missing, err := sample.MissingIDs(ctx, acked)
			if err != nil || len(missing) != 0 {
				t.Fatalf("acknowledged ids missing on the primary: %v (%v)", missing, err)
			}
			if missing, _ := sample.MissingIDs(ctx, []string{"never-written"}); len(missing) != 1 {
				t.Errorf("MissingIDs did not report an id that was never written: %v", missing)
			}
			return ctx
		}).
		Assess("replica lag at 100 writes/s stays small and every replica streams", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			const rate, seconds = 100, 15
			client := &http.Client{Timeout: 5 * time.Second}
			tick := time.NewTicker(time.Second / rate)
			defer tick.Stop()
			done := make(chan struct{})
			var maxLag time.Duration
			var maxBytes int64
			samples := 0
			go func() {
				defer close(done)
				for i := 0; i < rate*seconds; i++ {
					<-tick.C
					body := fmt.Sprintf(`{"id":"lag-%05d","name":"n"}`, i)
					if resp, err := client.Post(sample.URL()+"/orders", "application/json", strings.NewReader(body)); err == nil {
						resp.Body.Close()
					}
				}
			}()
			for running := true; running; {
				select {
				case <-done:
					running = false
				case <-time.After(time.Second):
				}
				lags, err := sample.ReplicationLag(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(lags) != 2 {
					t.Fatalf("primary sees %d replicas, want 2: %+v", len(lags), lags)
				}
				samples++
				for _, l := range lags {
					if l.State != "streaming" {
						t.Errorf("replica %s is %s", l.Name, l.State)
					}
					maxLag = max(maxLag, l.ReplayLag)
					maxBytes = max(maxBytes, l.ReplayByte)
				}
			}
			t.Logf("replica lag at %d writes/s over %d s (%d samples): max replay_lag %s, max %d bytes behind", rate, seconds, samples, maxLag, maxBytes)
			if maxLag > 5*time.Second {
				t.Errorf("replay lag reached %s at %d writes/s", maxLag, rate)
			}
			return ctx
		}).
		// A probe or `kubectl exec` that times out leaves its children orphaned in the container. With
		// the postmaster as PID 1 they became its children, and one exiting non-zero (a `$(psql …)`
		// subshell dies of SIGPIPE: exit 141) was taken for a crashed backend: every connection killed,
		// crash recovery. The member's pod shares its process namespace, so the pause process reaps them.
		Assess("an orphan that exits non-zero in a member's pod does not restart the database", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			ops, err := workloads.NewOps(cfg.Client().RESTConfig())
			if err != nil {
				t.Fatal(err)
			}
			ns, sel := []string{sample.Options.Namespace}, "statefulset.kubernetes.io/pod-name=orders-db-0"
			run := func(cmd ...string) string {
				t.Helper()
				res, err := ops.Exec(ctx, ns, sel, "postgres", cmd)
				if err != nil || len(res) != 1 || res[0].Err != "" {
					t.Fatalf("%v: %v %+v", cmd, err, res)
				}
				return strings.TrimSpace(res[0].Stdout)
			}
			aux := "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE backend_type IN ('checkpointer', 'walwriter')"
			psql := []string{"psql", "-h", "/run/postgresql", "-U", "postgres", "-tAXc", aux}
			before := run(psql...)
			// The inner shell outlives the exec, is reparented to the pod's PID 1 and exits 141.
			run("sh", "-c", `sh -c 'sleep 1; exit 141' >/dev/null 2>&1 & exit 0`)
			time.Sleep(4 * time.Second)
			if after := run(psql...); after != before || before == "" {
				t.Errorf("the postmaster's checkpointer and WAL writer went from %q to %q: the database restarted", before, after)
			}
			return ctx
		}).
		Assess("a replica made to miss writes shows a different checksum", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			if err := sample.PauseReplay(ctx, "orders-db-2", true); err != nil {
				t.Fatal(err)
			}
			writeOrders(t, sample.URL(), "while-paused", 50)
			sums, err := sample.Checksums(ctx, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if sums[2].CaughtUp {
				t.Error("replica with replay paused reported caught up")
			}
			if cmp.Equal(sums[0].Tables["orders"], sums[2].Tables["orders"]) {
				t.Errorf("paused replica has the primary's checksum %+v", sums[2].Tables["orders"])
			}
			if !cmp.Equal(sums[0].Tables, sums[1].Tables) {
				t.Errorf("the healthy replica differs: %v", cmp.Diff(sums[0].Tables, sums[1].Tables))
			}
			if err := sample.PauseReplay(ctx, "orders-db-2", false); err != nil {
				t.Fatal(err)
			}
			sums, err = sample.Checksums(ctx, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(sums[0].Tables, sums[2].Tables); diff != "" || !sums[2].CaughtUp {
				t.Errorf("after resuming replay the replica still differs:\n%s", diff)
			}
			return ctx
		}).
		Assess("deleting an app pod under load fails no request (graceful shutdown)", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			var pods corev1.PodList
			if err := cfg.Client().Resources(sample.Options.Namespace).List(ctx, &pods, func(o *metav1.ListOptions) { o.LabelSelector = "app=orders" }); err != nil || len(pods.Items) == 0 {
				t.Fatalf("app pods: %v", err)
			}
			stop := make(chan struct{})
			var sent, failed atomic.Int64
			var firstFailure atomic.Value
			var wg sync.WaitGroup
			client := &http.Client{Timeout: 5 * time.Second}
			for w := 0; w < 4; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						body := fmt.Sprintf(`{"id":"drain-%d-%d","name":"n"}`, w, i)
						resp, err := client.Post(sample.URL()+"/orders", "application/json", bytes.NewReader([]byte(body)))
						sent.Add(1)
						if err != nil || resp.StatusCode >= 300 {
							failed.Add(1)
							if err == nil {
								err = fmt.Errorf("status %s", resp.Status)
							}
							firstFailure.CompareAndSwap(nil, err.Error())
						}
						if resp != nil {
							resp.Body.Close()
						}
						time.Sleep(50 * time.Millisecond)
					}
				}(w)
			}
			time.Sleep(3 * time.Second)
			victim := pods.Items[0]
			if err := cfg.Client().Resources().Delete(ctx, &victim); err != nil {
				t.Fatal(err)
			}
			if err := sample.WaitApp(ctx, 2*time.Minute); err != nil {
				t.Error(err)
			}
			time.Sleep(5 * time.Second)
			close(stop)
			wg.Wait()
			t.Logf("%d requests while pod %s was deleted, %d failed", sent.Load(), victim.Name, failed.Load())
			if sent.Load() < 100 {
				t.Errorf("only %d requests sent: the check measured too little", sent.Load())
			}
			if failed.Load() > 0 {
				t.Errorf("%d requests failed during a graceful pod deletion, first: %v", failed.Load(), firstFailure.Load())
			}
			return ctx
		}).
		Assess("expand, backfill and contract under v1 → v2 → v3 keep every order", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			// The order the pattern requires: contract only once no running version reads `name`.
			steps := []func() error{
				func() error { return sample.Migrate(ctx, "up", "expand", 2*time.Minute) },
				func() error { return sample.SetVersion(ctx, orders.V2, 3*time.Minute) },
				func() error { return sample.Migrate(ctx, "up", "backfill", 2*time.Minute) },
				func() error { return sample.SetVersion(ctx, orders.V3, 3*time.Minute) },
				func() error { return sample.Migrate(ctx, "up", "contract", 2*time.Minute) },
			}
			for _, step := range steps {
				if err := step(); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := http.Get(sample.URL() + "/orders/" + acked[0])
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get(orders.VersionHeader) != "v3" {
				t.Errorf("GET an old order after contract: %s, version %q", resp.Status, resp.Header.Get(orders.VersionHeader))
			}
			missing, err := sample.MissingIDs(ctx, acked)
			if err != nil || len(missing) != 0 {
				t.Fatalf("acknowledged ids missing after the schema change: %v (%v)", missing, err)
			}
			// A failed migration Job is reported as failed, with its logs.
			if err := sample.Migrate(ctx, "up", "no-such-step", time.Minute); err == nil || !strings.Contains(err.Error(), "unknown migration") {
				t.Errorf("a failing migration Job was not reported with its logs: %v", err)
			}
			return ctx
		}).
		Assess("bad input through the NodePort is a 4xx", func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			for _, body := range []string{`{"id":`, `{"name":"no id"}`, strings.Repeat("x", 64<<10)} {
				resp, err := http.Post(sample.URL()+"/orders", "application/json", strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode < 400 || resp.StatusCode >= 500 {
					t.Errorf("body %.20q answered %s", body, resp.Status)
				}
			}
			return ctx
		}).
		Teardown(func(ctx context.Context, t *testing.T, cfg *envconf.Config) context.Context {
			if sample != nil {
				if err := sample.Teardown(ctx, 3*time.Minute); err != nil {
					t.Errorf("teardown: %v", err)
				}
			}
			return ctx
		}).Feature()
	testenv.Test(t, f)
}
