//go:build integration

package orders

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The orders app is the harness's own sample: whatever its database does, its memory stays bounded
// and it serves again as soon as the database does. A database that stops answering (a frozen
// container: every packet to it unanswered, the harshest outage) for 60 s under 200 req/s must
// leave the app's RSS under outageRSSBound, and once the database answers again every request must
// succeed within outageRecovery.
//
// Measured here: RSS 22 MiB healthy, 31 MiB at most while frozen; every request succeeds again 7–8 s
// after the database is thawed (it first works through the connection attempts queued in its
// listen backlog while it was frozen). Before AcquireTimeout and statement_timeout, the memory
// stayed bounded but the app never recovered: a 15 s stall under 200 req/s left it answering 503 to every request for as long as the
// load went on, with the database healthy and idle.
const (
	outageRate     = 200
	outageFor      = 60 * time.Second
	outageRSSBound = 96 << 20 // three quarters of the sample's memory limit (128Mi)
	outageRecovery = 15 * time.Second
)

// TestOrdersServeHelper is the app under test when run by TestMemoryBoundedAndRecoversAfterOutage
// (a process of its own, so its RSS is the app's alone); otherwise it does nothing.
func TestOrdersServeHelper(t *testing.T) {
	dsn := os.Getenv("ORDERS_HELPER_DSN")
	if dsn == "" {
		t.Skip("run by TestMemoryBoundedAndRecoversAfterOutage")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := Main(ctx, []string{"serve", "--listen", os.Getenv("ORDERS_HELPER_LISTEN"), "--dsn", dsn, "--version", "v1", "--drain", "0s", "--grace", "1s"}); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryBoundedAndRecoversAfterOutage(t *testing.T) {
	t.Parallel()
	dsn, ctr := startPostgresContainer(t)
	ctx := context.Background()
	pool := connectPool(t, dsn)
	if err := (&Migrator{Pool: pool}).Up(ctx, "create"); err != nil {
		t.Fatal(err)
	}
	pool.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	app := exec.Command(os.Args[0], "-test.run=^TestOrdersServeHelper$", "-test.v")
	app.Env = append(os.Environ(), "ORDERS_HELPER_DSN="+dsn, "ORDERS_HELPER_LISTEN="+addr)
	app.Stdout, app.Stderr = os.Stderr, os.Stderr
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Process.Signal(syscall.SIGTERM); app.Wait() })
	base := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the app never became ready")
		}
	}

	// 200 req/s, three writes to one read, each on the schedule whatever the answers (an open
	// model, as rehearse's load): the outcome of each second is counted by its send time.
	type second struct {
		ok, failed atomic.Int64
		firstErr   atomic.Value
	}
	var secs [200]second
	client := &http.Client{Timeout: 5 * time.Second}
	start := time.Now()
	var wg sync.WaitGroup
	stopLoad := make(chan struct{})
	go func() {
		tick := time.NewTicker(time.Second / outageRate)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopLoad:
				return
			case <-tick.C:
			}
			sec := &secs[min(int(time.Since(start)/time.Second), len(secs)-1)]
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				var resp *http.Response
				var err error
				if i%4 == 3 {
					resp, err = client.Get(fmt.Sprintf("%s/orders/o-%d", base, i-1))
				} else {
					resp, err = client.Post(base+"/orders", "application/json", strings.NewReader(fmt.Sprintf(`{"id":"o-%d","name":"n","amount_cents":1}`, i)))
				}
				var body []byte
				if err == nil {
					body, _ = io.ReadAll(io.LimitReader(resp.Body, 512))
					resp.Body.Close()
				}
				if err == nil && resp.StatusCode < 300 || err == nil && resp.StatusCode == 404 && i%4 == 3 {
					sec.ok.Add(1)
					return
				}
				sec.failed.Add(1)
				if err != nil {
					sec.firstErr.CompareAndSwap(nil, err.Error())
				} else {
					sec.firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body))))
				}
			}(i)
		}
	}()
	defer func() { close(stopLoad); wg.Wait() }()

	rssMax := int64(0)
	sample := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			rssMax = max(rssMax, rss(t, app.Process.Pid))
		}
	}
	sample(10 * time.Second)
	before := rssMax
	t.Logf("healthy, 10 s at %d req/s: RSS max %d MiB", outageRate, before>>20)

	id := ctr.GetContainerID()
	if out, err := exec.Command("docker", "pause", id).CombinedOutput(); err != nil {
		t.Fatalf("docker pause: %v: %s", err, out)
	}
	pausedAt := time.Since(start)
	sample(outageFor)
	during := rssMax
	if out, err := exec.Command("docker", "unpause", id).CombinedOutput(); err != nil {
		t.Fatalf("docker unpause: %v: %s", err, out)
	}
	resumedAt := time.Since(start)
	sample(outageRecovery + 10*time.Second)
	for s := int(resumedAt.Seconds()) - 1; s < int(resumedAt.Seconds())+16 && s < len(secs); s++ {
		t.Logf("  +%ds: %d ok, %d failed %v", s, secs[s].ok.Load(), secs[s].failed.Load(), secs[s].firstErr.Load())
	}
	t.Logf("database frozen from +%.0fs to +%.0fs: RSS max %d MiB (bound %d MiB); after: %d MiB",
		pausedAt.Seconds(), resumedAt.Seconds(), during>>20, outageRSSBound>>20, rss(t, app.Process.Pid)>>20)
	if during > outageRSSBound {
		t.Errorf("RSS reached %d MiB while the database was frozen; bound %d MiB", during>>20, outageRSSBound>>20)
	}
	for s := 0; s < 10; s++ {
		if f := secs[s].failed.Load(); f > 0 {
			t.Errorf("second %d, database healthy: %d requests failed", s, f)
		}
	}
	if f := secs[int(pausedAt.Seconds())+5].failed.Load(); f == 0 {
		t.Errorf("5 s into the outage no request failed: the database was not frozen")
	}
	from := int((resumedAt + outageRecovery).Seconds()) + 1
	for s := from; s < from+9; s++ {
		if f, ok := secs[s].failed.Load(), secs[s].ok.Load(); f > 0 || ok == 0 {
			t.Errorf("second %d, %s after the database came back: %d failed (%v), %d ok; want every request to succeed",
				s, time.Duration(s)*time.Second-resumedAt, f, secs[s].firstErr.Load(), ok)
		}
	}
}

// rss is a process's resident set, from /proc.
func rss(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
