package authhttp

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

func TestCacheKeepsOnlyOK(t *testing.T) {
	var n atomic.Int32
	svc := newService(t, func(h http.Header) map[string]string {
		n.Add(1)
		if h.Get("Auth-Pass") == "right" {
			return map[string]string{"Auth-Status": "OK", "Auth-Server": "10.0.0.5", "Auth-Port": "110"}
		}
		return map[string]string{"Auth-Status": "Invalid login or password"}
	})
	c := newClient(t, Options{URL: svc.URL, CacheTTL: time.Minute})
	ask := func(pass string) *Answer {
		t.Helper()
		a, err := c.Authenticate(context.Background(), &Request{User: "alice", Pass: pass, ClientIP: netip.MustParseAddr("192.0.2.1")})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if a := ask("right"); !a.OK || a.Cached {
		t.Fatalf("first: %+v", a)
	}
	if a := ask("right"); !a.OK || !a.Cached || a.Server != "10.0.0.5" {
		t.Fatalf("second: %+v", a)
	}
	if n.Load() != 1 {
		t.Fatalf("%d requests, want 1 (cached)", n.Load())
	}
	// A wrong password never meets the cached OK, and refusals are not cached.
	for i := 0; i < 2; i++ {
		if a := ask("wrong"); a.OK || a.Cached {
			t.Fatalf("wrong password: %+v", a)
		}
	}
	if n.Load() != 3 {
		t.Fatalf("%d requests, want 3", n.Load())
	}
}

func TestCacheNeverKeepsServiceErrors(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	svc := newService(t, func(http.Header) map[string]string {
		if broken.Load() {
			return map[string]string{"Auth-Server": "10.0.0.5"} // no Auth-Status
		}
		return map[string]string{"Auth-Status": "Invalid login"}
	})
	c := newClient(t, Options{URL: svc.URL, CacheTTL: time.Minute})
	r := &Request{User: "u", Pass: "p"}
	if _, err := c.Authenticate(context.Background(), r); !errors.Is(err, ErrService) {
		t.Fatal(err)
	}
	broken.Store(false)
	a, err := c.Authenticate(context.Background(), r)
	if err != nil || a.OK {
		t.Fatalf("%+v %v", a, err)
	}
	if c.cache.len() != 0 {
		t.Fatalf("cache holds %d entries", c.cache.len())
	}
}

func TestCacheKeyCoversEveryField(t *testing.T) {
	c := newCache(time.Minute, 10)
	base := Request{Method: MethodPlain, User: "u", Pass: "p", Salt: "", ClientIP: netip.MustParseAddr("192.0.2.1"), ClientHost: "h"}
	k := c.key(&base)
	variants := []func(r *Request){
		func(r *Request) { r.Method = MethodAPOP },
		func(r *Request) { r.User = "v" },
		func(r *Request) { r.Pass = "q" },
		func(r *Request) { r.Salt = "<1@h>" },
		func(r *Request) { r.ClientIP = netip.MustParseAddr("192.0.2.2") },
		func(r *Request) { r.ClientHost = "x" },
		func(r *Request) { r.TLS = true },
		func(r *Request) { r.User, r.Pass = "up", "" }, // shifting octets between fields
	}
	for i, v := range variants {
		r := base
		v(&r)
		if c.key(&r) == k {
			t.Errorf("variant %d has the same key", i)
		}
	}
	r := base
	r.Attempt = 3
	if c.key(&r) != k {
		t.Error("the attempt counter changes the key")
	}
}

func TestCacheExpiresAndIsBounded(t *testing.T) {
	c := newCache(time.Second, 3)
	now := time.Now()
	ok := &Answer{OK: true}
	for i := 0; i < 10; i++ {
		c.put(c.key(&Request{User: string(rune('a' + i))}), ok, now)
	}
	if c.len() > 3 {
		t.Fatalf("%d entries, bound 3", c.len())
	}
	k := c.key(&Request{User: "z"})
	c.put(k, ok, now)
	if _, hit := c.get(k, now.Add(500*time.Millisecond)); !hit {
		t.Fatal("miss before expiry")
	}
	if _, hit := c.get(k, now.Add(time.Second)); hit {
		t.Fatal("hit after expiry")
	}
	c.put(c.key(&Request{User: "r"}), &Answer{Status: "no"}, now)
	if _, hit := c.get(c.key(&Request{User: "r"}), now); hit {
		t.Fatal("a refusal was cached")
	}
}
