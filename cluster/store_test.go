package cluster

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/popgate/popgate/proxy"
)

func newTestStore(t *testing.T, c *Client) *Store {
	t.Helper()
	s := NewStore(c, nil)
	t.Cleanup(s.Close)
	return s
}

func TestStoreThrottleSharedBetweenInstances(t *testing.T) {
	r := startRedis(t)
	a := newTestStore(t, newTestClient(t, r, "a"))
	b := newTestStore(t, newTestClient(t, r, "b"))
	keys := []string{"net:192.0.2.1/32", "user:alice"}
	for i := 1; i <= 3; i++ {
		if n := a.Fail(keys); n != i {
			t.Fatalf("failure %d through a counted %d", i, n)
		}
	}
	// b sees a's failures: the delay it computes starts from them.
	if n := b.Fail([]string{"net:198.51.100.7/32", "user:alice"}); n != 4 {
		t.Fatalf("b counts %d failures for alice, want 4 (3 through a)", n)
	}
	b.Refund([]string{"net:198.51.100.7/32", "user:alice"})
	if n := a.Fail([]string{"user:alice"}); n != 4 {
		t.Fatalf("after b's refund a counts %d, want 4", n)
	}
	// A success through b forgets alice's failures everywhere.
	if !b.Succeed([]string{"user:alice"}, []string{"user:alice"}, proxy.SessionLease{}, 0) {
		t.Fatal("Succeed without a limit refused")
	}
	if n := a.Fail([]string{"user:alice"}); n != 1 {
		t.Fatalf("after a success a counts %d failures for alice, want 1", n)
	}
	ttl, err := a.c.rdb.PTTL(bg, failPrefix+"user:alice").Result()
	if err != nil || ttl <= 0 || ttl > ThrottleWindow {
		t.Fatalf("a failure counter's TTL is %v, %v; want (0, %v]", ttl, err, ThrottleWindow)
	}
}

func TestStoreSessionLeasesAcrossInstances(t *testing.T) {
	r := startRedis(t)
	a := newTestStore(t, newTestClient(t, r, "a"))
	b := newTestStore(t, newTestClient(t, r, "b"))
	l := func(id string) proxy.SessionLease { return proxy.SessionLease{User: "bob", ID: id} }
	if !a.Succeed(nil, nil, l("1"), 2) || !b.Succeed(nil, nil, l("1"), 2) {
		t.Fatal("the first two sessions were refused")
	}
	if b.Succeed(nil, nil, l("2"), 2) || a.Succeed(nil, nil, l("3"), 2) {
		t.Fatal("a third session across the cluster was accepted with max 2")
	}
	if n, _ := a.Sessions(bg, "bob"); n != 2 {
		t.Fatalf("%d leases in Redis, want 2", n)
	}
	a.Release(l("1"))
	if !b.Succeed(nil, nil, l("2"), 2) {
		t.Fatal("a session was refused after another one ended")
	}
}

func TestStoreLeasesOfACrashedInstanceExpire(t *testing.T) {
	r := startRedis(t)
	a := newStore(newTestClient(t, r, "a"), nil, 900*time.Millisecond)
	b := newTestStore(t, newTestClient(t, r, "b"))
	if !a.Succeed(nil, nil, proxy.SessionLease{User: "carol", ID: "1"}, 1) {
		t.Fatal("first lease refused")
	}
	time.Sleep(2 * a.ttl) // renewed meanwhile
	if b.Succeed(nil, nil, proxy.SessionLease{User: "carol", ID: "9"}, 1) {
		t.Fatal("a live instance's renewed lease expired")
	}
	a.Close() // a "crashes": no renewal, no release
	waitUntil(t, 3*a.ttl, "the crashed instance's lease expires", func() bool {
		return b.Succeed(nil, nil, proxy.SessionLease{User: "carol", ID: "9"}, 1)
	})
}

func TestStoreFallsBackWhileRedisIsDown(t *testing.T) {
	r := startRedis(t)
	c := newTestClient(t, r, "a")
	a := newTestStore(t, c)
	b := newTestStore(t, newTestClient(t, r, "b"))
	a.Fail([]string{"user:dave"})
	a.Fail([]string{"user:dave"})
	r.stop()
	// The first call after the kill may wait for its timeout; none may
	// hang, and after the state changed none tries Redis at all.
	start := time.Now()
	n := a.Fail([]string{"user:dave"})
	if d := time.Since(start); d > 2*c.timeout {
		t.Fatalf("Fail took %v with Redis down, timeout %v", d, c.timeout)
	}
	if n != 3 {
		t.Fatalf("the local fallback counts %d failures, want 3 (2 seen while Redis was up)", n)
	}
	waitUntil(t, 3*time.Second, "the client notices Redis is down", func() bool { return !c.Up() })
	if h := c.Health(); h.Redis != "down" || h.Fallback == "" {
		t.Fatalf("Health while down = %+v", h)
	}
	start = time.Now()
	for range 100 {
		a.Fail([]string{"user:erin"})
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("100 failures with Redis known down took %v: the store still waits on Redis", d)
	}
	if !a.Succeed(nil, nil, proxy.SessionLease{User: "dave", ID: "1"}, 1) || a.Succeed(nil, nil, proxy.SessionLease{User: "dave", ID: "2"}, 1) {
		t.Fatal("session limits are not counted locally while Redis is down")
	}
	r.start()
	waitUntil(t, 5*time.Second, "the client notices Redis is back", func() bool { return c.Up() })
	// Shared again: a failure through a is seen by b (Redis lost its
	// data with the restart: no persistence).
	a.Fail([]string{"user:frank"})
	if n := b.Fail([]string{"user:frank"}); n != 2 {
		t.Fatalf("after the restart b counts %d failures for frank, want 2", n)
	}
	// The lease taken while Redis was down joins the shared set at the
	// next renewal.
	a.renew()
	if b.Succeed(nil, nil, proxy.SessionLease{User: "dave", ID: "b1"}, 1) {
		t.Fatal("the lease taken during the outage is not shared after the renewal")
	}
}

// countHook counts the round trips a go-redis client makes: one per
// command, one per pipeline.
type countHook struct{ n atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

// TestStoreRoundTripsPerLogin measures what a successful login costs in
// Redis: the charge before the backend's answer and the settlement after.
func TestStoreRoundTripsPerLogin(t *testing.T) {
	r := startRedis(t)
	c := newTestClient(t, r, "a")
	s := newTestStore(t, c)
	h := &countHook{}
	c.rdb.AddHook(h)
	keys := []string{"net:192.0.2.1/32", "user:grace@example.org", "local:grace"}
	const logins = 200
	start := time.Now()
	for i := range logins {
		s.Fail(keys)
		if !s.Succeed(keys, keys[1:], proxy.SessionLease{User: "grace@example.org", ID: string(rune('a' + i%26))}, 1000) {
			t.Fatal("login refused")
		}
	}
	perLogin := time.Since(start) / logins
	if n := h.n.Load(); n != 2*logins {
		t.Fatalf("%d round trips for %d logins, want 2 per login", n, logins)
	}
	t.Logf("Redis round trips per successful login: 2; latency added per login (both calls, unix socket): %v", perLogin)
}

// BenchmarkLoginSharedState is what a successful login costs in shared
// state: the charge and the settlement, against a private Redis on a unix
// socket, and against the in-process state for comparison.
func BenchmarkLoginSharedState(b *testing.B) {
	keys := []string{"net:192.0.2.1/32", "user:grace@example.org", "local:grace"}
	login := func(b *testing.B, st proxy.LoginState) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			st.Fail(keys)
			lease := proxy.SessionLease{User: "grace@example.org", ID: strconv.Itoa(i)}
			if !st.Succeed(keys, keys[1:], lease, 1<<20) {
				b.Fatal("login refused")
			}
			st.Release(lease)
		}
	}
	b.Run("redis", func(b *testing.B) {
		r := startRedis(b)
		c, err := New(Options{Redis: r.url(), Instance: "bench"}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		s := NewStore(c, nil)
		defer s.Close()
		login(b, s)
	})
	b.Run("local", func(b *testing.B) { login(b, proxy.NewLocalLoginState()) })
}

// A lease released while a renewal of it is on its way must not come
// back in Redis: the renewal loop took its snapshot of the held leases,
// the session ended (Release), then the renewal was written.
func TestStoreReleaseDuringRenewalFreesTheSession(t *testing.T) {
	r := startRedis(t)
	a := newTestStore(t, newTestClient(t, r, "a"))
	b := newTestStore(t, newTestClient(t, r, "b"))
	l := proxy.SessionLease{User: "dave", ID: "1"}
	if !a.Succeed(nil, nil, l, 1) {
		t.Fatal("first lease refused")
	}
	snapshot := []proxy.SessionLease{l} // what renew read from held
	a.Release(l)
	a.renewLeases(snapshot)
	if n, err := a.Sessions(bg, "dave"); err != nil || n != 0 {
		t.Fatalf("%d leases in Redis after the only session ended (%v), want 0", n, err)
	}
	if !b.Succeed(nil, nil, proxy.SessionLease{User: "dave", ID: "2"}, 1) {
		t.Fatal("a new session was refused: the released lease was renewed back")
	}
}
