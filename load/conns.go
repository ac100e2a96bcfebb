package load

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// connPool is the client population's connections: an http.Transport that is replaced by a fresh
// one every MaxAge, so no connection takes new requests for longer than that. A retired transport
// finishes the requests it has in flight; its idle connections are closed then and once more after
// a request timeout. Through kube-proxy every new connection picks an endpoint anew, which is what
// lets a pod that joined a Service during the run receive traffic (and fail it, if it is not really
// ready) within about MaxAge.
type connPool struct {
	timeout time.Duration
	maxAge  time.Duration // <0: never retire
	fresh   bool

	mu     sync.Mutex
	cur    *http.Transport
	born   time.Time
	closed bool
}

func newConnPool(timeout time.Duration, c Connections) *connPool {
	p := &connPool{timeout: timeout, maxAge: c.MaxAge, fresh: c.Fresh}
	if p.maxAge == 0 {
		p.maxAge = DefaultMaxConnAge
	}
	p.cur, p.born = p.newTransport(), time.Now()
	return p
}

func (p *connPool) newTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: p.timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 10000,
		IdleConnTimeout:     30 * time.Second,
		DisableKeepAlives:   p.fresh,
	}
}

func (p *connPool) RoundTrip(req *http.Request) (*http.Response, error) {
	return p.transport().RoundTrip(req)
}

// transport is the current transport, replaced when it is older than maxAge.
func (p *connPool) transport() *http.Transport {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.maxAge > 0 && !p.closed && time.Since(p.born) >= p.maxAge {
		old := p.cur
		p.cur, p.born = p.newTransport(), time.Now()
		old.CloseIdleConnections()
		// Connections busy now go idle within a request timeout; close them then.
		time.AfterFunc(p.timeout+time.Second, old.CloseIdleConnections)
	}
	return p.cur
}

// close closes every idle connection (the run is over).
func (p *connPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.cur.CloseIdleConnections()
}
