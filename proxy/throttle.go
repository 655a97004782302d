package proxy

import (
	"sync"
	"time"
)

// throttle slows down password guessing: every failed login delays the
// next failure answer for the same client address and the same login name,
// doubling up to a bound. Failures are forgotten after a quiet window.
type throttle struct {
	base, max, window time.Duration
	maxEntries        int

	mu      sync.Mutex
	entries map[string]*throttleEntry
}

type throttleEntry struct {
	fails int
	last  time.Time
}

func newThrottle() *throttle {
	return &throttle{
		base:       500 * time.Millisecond,
		max:        15 * time.Second,
		window:     15 * time.Minute,
		maxEntries: 100000,
		entries:    make(map[string]*throttleEntry),
	}
}

// fail records a failed login for each key and returns how long to wait
// before answering it.
func (t *throttle) fail(now time.Time, keys ...string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.entries) >= t.maxEntries {
		t.expire(now)
	}
	worst := 0
	for _, k := range keys {
		if k == "" {
			continue
		}
		e := t.entries[k]
		if e == nil || now.Sub(e.last) > t.window {
			if len(t.entries) >= t.maxEntries {
				// Full of fresh entries (someone is spraying names):
				// start over rather than stop throttling new keys.
				clear(t.entries)
			}
			e = &throttleEntry{}
			t.entries[k] = e
		}
		e.fails++
		e.last = now
		if e.fails > worst {
			worst = e.fails
		}
	}
	if worst == 0 {
		return 0
	}
	d := t.base
	for i := 1; i < worst && d < t.max; i++ {
		d *= 2
	}
	if d > t.max {
		d = t.max
	}
	return d
}

// succeed forgets the failures of a login name after a successful login.
func (t *throttle) succeed(key string) {
	t.mu.Lock()
	delete(t.entries, key)
	t.mu.Unlock()
}

func (t *throttle) expire(now time.Time) {
	for k, e := range t.entries {
		if now.Sub(e.last) > t.window {
			delete(t.entries, k)
		}
	}
}
