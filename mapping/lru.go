package mapping

// lru is a map from primary key to V that keeps at most cap entries,
// dropping the least recently used. Not safe for concurrent use.
type lru[V any] struct {
	cap        int
	m          map[int64]*lruEntry[V]
	head, tail *lruEntry[V] // head: most recently used
}

type lruEntry[V any] struct {
	key        int64
	val        V
	prev, next *lruEntry[V]
}

func newLRU[V any](capacity int) *lru[V] {
	return &lru[V]{cap: capacity, m: make(map[int64]*lruEntry[V], min(capacity, 4096))}
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

// put sets key's value, marks it recently used and evicts beyond capacity.
func (c *lru[V]) put(key int64, val V) {
	if e, ok := c.m[key]; ok {
		e.val = val
		c.toFront(e)
		return
	}
	e := &lruEntry[V]{key: key, val: val}
	c.m[key] = e
	c.pushFront(e)
	for len(c.m) > c.cap && c.tail != nil {
		c.remove(c.tail.key)
	}
}

func (c *lru[V]) remove(key int64) {
	e, ok := c.m[key]
	if !ok {
		return
	}
	c.unlink(e)
	delete(c.m, key)
}

func (c *lru[V]) clear() {
	clear(c.m)
	c.head, c.tail = nil, nil
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
