package orders

import (
	"context"
	"sort"
	"sync"
	"time"
)

// memStore is an in-memory Store: for handler tests, and for `serve --dsn memory:`, where each
// process keeps its own orders (a stateless demo app, as in the own-manifests example scenarios).
type memStore struct {
	mu     sync.Mutex
	orders map[string]Order
	down   error
}

func newMemStore() *memStore { return &memStore{orders: map[string]Order{}} }

func (m *memStore) Put(_ context.Context, o Order) (Order, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down != nil {
		return Order{}, false, m.down
	}
	if e, ok := m.orders[o.ID]; ok {
		if e.Name != o.Name || e.AmountCents != o.AmountCents {
			return e, false, ErrConflict
		}
		return e, false, nil
	}
	o.CreatedAt = time.Now().UTC()
	m.orders[o.ID] = o
	return o, true, nil
}

func (m *memStore) Get(_ context.Context, id string) (Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down != nil {
		return Order{}, m.down
	}
	o, ok := m.orders[id]
	if !ok {
		return Order{}, ErrNotFound
	}
	return o, nil
}

func (m *memStore) List(_ context.Context, after string, limit int) ([]Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Order
	for _, o := range m.orders {
		if o.ID > after {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (m *memStore) Count(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.orders)), nil
}

func (m *memStore) Ping(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.down
}

func (m *memStore) Close() {}
