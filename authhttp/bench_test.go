package authhttp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkAuthenticate measures one login asked of a loopback service
// over a kept-alive connection, without and with the cache: the latency
// the service adds to a login, less the service's own work.
func BenchmarkAuthenticate(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Auth-Status", "OK")
		w.Header().Set("Auth-Server", "127.0.0.1")
		w.Header().Set("Auth-Port", "110")
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		ttl  time.Duration
	}{{"no-cache", 0}, {"cache", time.Minute}} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := New(Options{URL: srv.URL, CacheTTL: tc.ttl})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			r := &Request{User: "alice", Pass: "secret", ClientIP: netip.MustParseAddr("192.0.2.1")}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := c.Authenticate(context.Background(), r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
