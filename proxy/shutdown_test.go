package proxy

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Shutdown's deadline must end sessions promptly even while they wait on a
// backend that has not answered yet (greeting, or login in after-auth mode).
func TestShutdownInterruptsBackendWaits(t *testing.T) {
	t.Run("after-auth login", func(t *testing.T) {
		gotPass := make(chan struct{}, 1)
		be := newScriptBackend(t, func(bc *scriptConn) {
			bc.send("+OK ready")
			for {
				l, err := bc.readLine()
				if err != nil {
					return
				}
				// Accept USER; never answer PASS.
				if strings.HasPrefix(l, "USER") {
					bc.send("+OK")
				}
				if strings.HasPrefix(l, "PASS") {
					gotPass <- struct{}{}
				}
			}
		})
		srv, paddr := startProxy(t, be.addr(), func(c *Config) {
			c.Listeners[0].Connect = ConnectAfterAuth
			c.Backends["b"].ReadTimeout = 6 * time.Second
		})
		c := dialClient(t, paddr)
		c.expect("+OK")
		c.send("USER a\r\nPASS secret\r\n")
		c.expect("+OK")
		select {
		case <-gotPass:
		case <-time.After(5 * time.Second):
			t.Fatal("backend never got PASS")
		}
		shutdownPromptly(t, srv)
	})
	t.Run("on-accept greeting", func(t *testing.T) {
		accepted := make(chan struct{}, 1)
		be := newScriptBackend(t, func(bc *scriptConn) {
			accepted <- struct{}{}
			bc.r.ReadByte() // never greet; wait for the close
		})
		srv, paddr := startProxy(t, be.addr(), func(c *Config) { c.Backends["b"].ConnectTimeout = 6 * time.Second })
		dialClient(t, paddr)
		select {
		case <-accepted:
		case <-time.After(5 * time.Second):
			t.Fatal("backend never accepted")
		}
		shutdownPromptly(t, srv)
	})
}

func shutdownPromptly(t *testing.T, srv *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	srv.Shutdown(ctx)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Shutdown with a 200ms deadline took %v", d)
	}
}

// Shutdown aborting a session that is still reading its PROXY header must
// not race with accept() replacing s.raw. Detected with -race.
func TestShutdownDuringProxyHeaderNoRace(t *testing.T) {
	fb := newFakeBackend(t)
	srv, addr := startProxy(t, fb.addr(), func(c *Config) {
		c.Listeners[0].ProxyProtocol = true
		c.Listeners[0].TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	dialClient(t, addr) // sends no header
	for i := 0; i < 500 && srv.Sessions() == 0; i++ {
		time.Sleep(2 * time.Millisecond) // polling a counter that has no signal
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	srv.Shutdown(ctx)
}
