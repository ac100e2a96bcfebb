package migrate

import (
	"context"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/rehearse-dev/rehearse/load"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/steps"
	"github.com/rehearse-dev/rehearse/workloads"
)

// trackProbe sends GETs at a steady rate to a Service of one track's pods alone (the canary's, or the
// stable's) and keeps, per whole second, how many it sent, how many failed and how long they took:
// answers attributed to a release with nothing from the app (no version header, no version in the
// body), as Flagger's load tester targets NAME-canary.
//
// The Service is reached through the API server's service proxy (workloads.ServiceProxy), never a
// node port that could still route to another Service's pods. A probe counts from the first answer a
// pod gave on: before the track has a ready pod (a canary's first pods come with its first weight),
// the API server's "no endpoints available" says nothing of the release. After it, every failure
// counts, a refused connection too. A track no pod ever answers for is never counted, and a gate with
// none of its answers cannot pass.
type trackProbe struct {
	mu        sync.Mutex
	secs      map[int64]*probeSecond
	ok        func(code int) bool
	connected time.Time // send time of the earliest request a pod answered
}

type probeSecond struct {
	n, failed int
	lats      []time.Duration
}

// startProbe probes url at rate (GETs a second) until ctx ends. The API server picks one of the
// Service's ready pods for each.
func startProbe(ctx context.Context, url string, rate float64, ok func(int) bool) *trackProbe {
	p := &trackProbe{secs: map[int64]*probeSecond{}, ok: ok}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	go func() {
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case at := <-t.C:
				go p.one(ctx, client, url, at)
			}
		}
	}()
	return p
}

func (p *trackProbe) one(ctx context.Context, client *http.Client, url string, at time.Time) {
	failed, reached := true, false
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err == nil {
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			failed = !p.ok(resp.StatusCode)
			reached = !workloads.APIServerRefusal(resp.StatusCode, body)
		}
	}
	if ctx.Err() != nil {
		return // cut short by the end of the watch: not the release's doing
	}
	took := time.Since(at)
	p.mu.Lock()
	defer p.mu.Unlock()
	if reached && (p.connected.IsZero() || at.Before(p.connected)) {
		p.connected = at
	}
	if !reached && (p.connected.IsZero() || at.Before(p.connected)) {
		return // sent before the Service first reached a pod
	}
	s := p.secs[at.Unix()]
	if s == nil {
		s = &probeSecond{}
		p.secs[at.Unix()] = s
	}
	s.n++
	s.lats = append(s.lats, took)
	if failed {
		s.failed++
	}
}

// window is the probes sent in the whole seconds within [from, to].
func (p *trackProbe) window(from, to time.Time) load.VersionStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	var st load.VersionStats
	var lats []time.Duration
	first := int64(math.Ceil(float64(from.UnixNano()) / 1e9))
	for sec := first; sec+1 <= to.Unix(); sec++ {
		if s := p.secs[sec]; s != nil {
			st.Requests += s.n
			st.Failed += s.failed
			lats = append(lats, s.lats...)
		}
	}
	if len(lats) > 0 {
		slices.Sort(lats)
		i := int(math.Ceil(0.99*float64(len(lats)))) - 1
		st.P99MS = float64(lats[max(i, 0)]) / float64(time.Millisecond)
	}
	return st
}

// probeVersions starts the probes of a canary gate's probe setting: a Service of the canary's
// pods alone (reached through the API server, trackService) and one of the stable pods alone, probed at rate each. The gate then judges
// the canary by its probe's answers (and every failure of the live load no version answered), and
// reports the stable's beside it. It returns how to read a window, and what to stop and remove.
func probeVersions(ctx context.Context, env *steps.Env, m *scenarios.Migrate, ns, name, svc, stableVersion string) (steps.Live, func(), error) {
	pr := m.Gate.Probe
	orig, err := env.Ops.Selector(ctx, ns, svc)
	if err != nil {
		return nil, nil, err
	}
	stableHash, err := env.Ops.PodTemplateHash(ctx, ns, m.Target)
	if err != nil {
		return nil, nil, err
	}
	canarySel := map[string]string{}
	for k, v := range orig {
		canarySel[k] = v
	}
	canarySel["rehearse.dev/track"] = "canary"
	pctx, stop := context.WithCancel(ctx)
	var made []func()
	cleanup := func() {
		stop()
		for _, done := range made {
			done()
		}
	}
	probes := map[string]*trackProbe{}
	ok := func(code int) bool { return code >= 200 && code < 400 }
	for _, t := range []struct {
		track string
		sel   map[string]string
	}{{"canary", canarySel}, {"stable", pinned(orig, stableHash)}} {
		sname := name + "-" + t.track + "-probe"
		base, done, err := trackService(ctx, env, ns, sname, svc, t.sel)
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		made = append(made, done)
		probes[t.track] = startProbe(pctx, base+pr.Path, pr.Rate.PerSecond, ok)
	}
	read := func(from, to time.Time) load.VersionWindow {
		w := env.Live.Versions(from, to)
		// The live load's versions cannot be told (the app says none): its answers are replaced by
		// the probes', its failures no version answered still count against the canary.
		by := map[string]load.VersionStats{m.Version: probes["canary"].window(from, to)}
		if stableVersion != "" && stableVersion != m.Version {
			by[stableVersion] = probes["stable"].window(from, to)
		} else {
			by["stable"] = probes["stable"].window(from, to)
		}
		w.By = by
		return w
	}
	return probedLive{read: read, Live: env.Live}, cleanup, nil
}

// probedLive is the live load with its versions told by the probes: known as far as the load is.
type probedLive struct {
	steps.Live
	read func(from, to time.Time) load.VersionWindow
}

func (p probedLive) Versions(from, to time.Time) load.VersionWindow { return p.read(from, to) }
