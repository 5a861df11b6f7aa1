package mapping

// lru is a map from primary key to V that keeps at most cap entries and,
// when it has a cost function, at most maxBytes of their estimated size,
// dropping the least recently used. Not safe for concurrent use.
type lru[V any] struct {
	cap        int
	maxBytes   int         // 0: no byte bound
	cost       func(V) int // estimated bytes of a value; nil: none counted
	bytes      int         // sum of the entries' costs
	m          map[int64]*lruEntry[V]
	head, tail *lruEntry[V] // head: most recently used
}

type lruEntry[V any] struct {
	key        int64
	val        V
	cost       int
	prev, next *lruEntry[V]
}

func newLRU[V any](capacity int) *lru[V] {
	return &lru[V]{cap: capacity, m: make(map[int64]*lruEntry[V], min(capacity, 4096))}
}

// newSizedLRU is an lru also bounded by maxBytes of cost.
func newSizedLRU[V any](capacity, maxBytes int, cost func(V) int) *lru[V] {
	c := newLRU[V](capacity)
	c.maxBytes, c.cost = maxBytes, cost
	return c
}

func (c *lru[V]) len() int { return len(c.m) }

// get returns the value for key and marks it recently used.
func (c *lru[V]) get(key int64) (V, bool) {
	e, ok := c.m[key]
	if !ok {
		var zero V
		return zero, false
	}
	c.toFront(e)
	return e.val, true
}

// put sets key's value, marks it recently used and evicts beyond the
// bounds (possibly key itself, when it alone is over the byte bound).
func (c *lru[V]) put(key int64, val V) {
	e, ok := c.m[key]
	if ok {
		e.val = val
		c.toFront(e)
	} else {
		e = &lruEntry[V]{key: key, val: val}
		c.m[key] = e
		c.pushFront(e)
	}
	c.recost(e)
	c.evict()
}

// resize recounts the cost of key's value, changed in place, and evicts
// beyond the bounds. It does not mark key recently used.
func (c *lru[V]) resize(key int64) {
	if e, ok := c.m[key]; ok && c.cost != nil {
		c.recost(e)
		c.evict()
	}
}

func (c *lru[V]) recost(e *lruEntry[V]) {
	if c.cost == nil {
		return
	}
	n := c.cost(e.val)
	c.bytes += n - e.cost
	e.cost = n
}

func (c *lru[V]) evict() {
	for c.tail != nil && (len(c.m) > c.cap || (c.maxBytes > 0 && c.bytes > c.maxBytes)) {
		c.remove(c.tail.key)
	}
}

func (c *lru[V]) remove(key int64) {
	e, ok := c.m[key]
	if !ok {
		return
	}
	c.unlink(e)
	c.bytes -= e.cost
	delete(c.m, key)
}

func (c *lru[V]) clear() {
	clear(c.m)
	c.head, c.tail = nil, nil
	c.bytes = 0
}

func (c *lru[V]) toFront(e *lruEntry[V]) {
	if c.head == e {
		return
	}
	c.unlink(e)
	c.pushFront(e)
}

func (c *lru[V]) pushFront(e *lruEntry[V]) {
	e.prev, e.next = nil, c.head
	if c.head != nil {
		c.head.prev = e
	}
	c.head = e
	if c.tail == nil {
		c.tail = e
	}
}

func (c *lru[V]) unlink(e *lruEntry[V]) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
}
