package load

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// connPool is the client population's connections: Clients independent clients, each an
// http.Transport that is replaced by a fresh one every MaxAge, so no connection takes new requests
// for longer than that; requests go to the clients in turn. A retired transport finishes the requests
// it has in flight; its idle connections are closed then and once more after a request timeout.
// Through kube-proxy every new connection picks an endpoint anew, which is what lets a pod that
// joined a Service during the run receive traffic (and fail it, if it is not really ready) within
// about MaxAge; many clients make that traffic a fair share rather than the luck of one or two
// connections (a canary gate judges that share).
type connPool struct {
	timeout time.Duration
	maxAge  time.Duration // <0: never retire
	fresh   bool
	next    atomic.Uint64
	clients []*client
}

type client struct {
	mu     sync.Mutex
	cur    *http.Transport
	born   time.Time
	closed bool
}

// DefaultClients is how many clients share the load when Connections.Clients is not set.
const DefaultClients = 16

func newConnPool(timeout time.Duration, c Connections) *connPool {
	p := &connPool{timeout: timeout, maxAge: c.MaxAge, fresh: c.Fresh}
	if p.maxAge == 0 {
		p.maxAge = DefaultMaxConnAge
	}
	n := c.Clients
	if n <= 0 {
		n = DefaultClients
	}
	for range n {
		p.clients = append(p.clients, &client{cur: p.newTransport(), born: time.Now()})
	}
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
	c := p.clients[(p.next.Add(1)-1)%uint64(len(p.clients))]
	return p.transport(c).RoundTrip(req)
}

// transport is c's current transport, replaced when it is older than maxAge.
func (p *connPool) transport(c *client) *http.Transport {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.maxAge > 0 && !c.closed && time.Since(c.born) >= p.maxAge {
		old := c.cur
		c.cur, c.born = p.newTransport(), time.Now()
		old.CloseIdleConnections()
		// Connections busy now go idle within a request timeout; close them then.
		time.AfterFunc(p.timeout+time.Second, old.CloseIdleConnections)
	}
	return c.cur
}

// close closes every idle connection (the run is over).
func (p *connPool) close() {
	for _, c := range p.clients {
		c.mu.Lock()
		c.closed = true
		c.cur.CloseIdleConnections()
		c.mu.Unlock()
	}
}
