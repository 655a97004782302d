package proxy

import (
	"container/list"
	"sync"
	"time"
)

// throttle slows down password guessing: every failed login delays the
// next failure answer for the same client network and the same login
// name, doubling up to a bound. Failures are forgotten after a quiet
// window. The table is bounded: when full, the entries touched longest
// ago are evicted one by one, so spraying names can never reset the
// counters of the users under attack. It is owned by the Server and safe
// for concurrent use.
type throttle struct {
	base, max, window time.Duration
	maxEntries        int

	mu      sync.Mutex
	entries map[string]*list.Element // of *throttleEntry
	lru     *list.List               // front: touched most recently
}

type throttleEntry struct {
	key   string
	fails int
	last  time.Time
}

func newThrottle() *throttle {
	return &throttle{
		base:       500 * time.Millisecond,
		max:        15 * time.Second,
		window:     15 * time.Minute,
		maxEntries: 100000,
		entries:    make(map[string]*list.Element),
		lru:        list.New(),
	}
}

// fail records a failed login for each key and returns the highest count
// of failures in a row among them; delay turns it into a wait.
func (t *throttle) fail(now time.Time, keys ...string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	worst := 0
	for _, k := range keys {
		if k == "" {
			continue
		}
		e := t.touch(now, k)
		e.fails++
		e.last = now
		worst = max(worst, e.fails)
	}
	return worst
}

// touch returns the live entry of k, creating it (and evicting the least
// recently touched entries beyond the bound) when there is none, and
// marks it most recently used.
func (t *throttle) touch(now time.Time, k string) *throttleEntry {
	if el, ok := t.entries[k]; ok {
		e := el.Value.(*throttleEntry)
		if now.Sub(e.last) > t.window {
			e.fails = 0
		}
		t.lru.MoveToFront(el)
		return e
	}
	for t.lru.Len() >= t.maxEntries {
		t.remove(t.lru.Back())
	}
	e := &throttleEntry{key: k}
	t.entries[k] = t.lru.PushFront(e)
	return e
}

func (t *throttle) remove(el *list.Element) {
	delete(t.entries, el.Value.(*throttleEntry).key)
	t.lru.Remove(el)
}

// delay is the wait before answering the fails-th failure in a row.
func (t *throttle) delay(fails int) time.Duration {
	if fails == 0 {
		return 0
	}
	d := t.base
	for i := 1; i < fails && d < t.max; i++ {
		d *= 2
	}
	return min(d, t.max)
}

// refund takes back one failure of each key: an attempt charged as failed
// before its outcome was known (see session.chargeLogin) that did not
// fail after all.
func (t *throttle) refund(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		if el, ok := t.entries[k]; ok {
			if e := el.Value.(*throttleEntry); e.fails > 0 {
				e.fails--
			}
		}
	}
}

// succeed forgets the failures of a login name after a successful login.
func (t *throttle) succeed(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		if el, ok := t.entries[k]; ok {
			t.remove(el)
		}
	}
}

// fails returns the failures counted for key (for tests).
func (t *throttle) fails(key string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.entries[key]; ok {
		return el.Value.(*throttleEntry).fails
	}
	return 0
}

// size returns the number of entries (for tests).
func (t *throttle) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}
