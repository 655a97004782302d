package proxy

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/rewrite"
)

// Tests of what an attacker tries against logins and limits: throttling
// evasions and per-address slots. Error counting, and the logins the proxy
// must name even when the client runs them with the backend directly, are
// transcripts (testdata/transcripts/max_errors_*, passthrough_*).

func TestThrottleKeysUserAfterRewriting(t *testing.T) {
	fb := newFakeBackend(t)
	rw, err := rewrite.New(rewrite.Config{StripDomain: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, addr := startProxy(t, fb.addr(), func(c *Config) { c.Listeners[0].Filters = []filters.Filter{rw} })
	c := dialClient(t, addr)
	c.expect("+OK")
	for _, realm := range []string{"1", "2"} {
		c.send("USER alice@" + realm + "\r\nPASS guess\r\n")
		c.expect("+OK")
		c.expect("-ERR")
	}
	if n := srv.throttle.fails("user:alice"); n != 2 {
		t.Fatalf("alice@1 and alice@2 reach mailbox alice: %d failures counted for it, want 2", n)
	}
}

func TestThrottleKeysRealmVariantsWithoutRewriting(t *testing.T) {
	fb := newFakeBackend(t)
	srv, addr := startProxy(t, fb.addr(), nil)
	c := dialClient(t, addr)
	c.expect("+OK")
	for _, realm := range []string{"1", "2"} {
		c.send("USER alice@" + realm + "\r\nPASS guess\r\n")
		c.expect("+OK")
		c.expect("-ERR")
	}
	if n := srv.throttle.fails("local:alice"); n != 2 {
		t.Fatalf("a backend that ignores the realm: %d failures counted for alice, want 2", n)
	}
}

// proxyV2Dial connects and sends a PROXY v2 header claiming src.
func proxyV2Dial(t *testing.T, addr string, src, dst net.Addr) *testClient {
	t.Helper()
	c := dialClient(t, addr)
	if _, err := proxyproto.HeaderProxyFromAddrs(2, src, dst).WriteTo(c.conn); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIPv6ClientsCountPerPrefix(t *testing.T) {
	fb := newFakeBackend(t)
	srv, addr := startProxy(t, fb.addr(), func(c *Config) {
		c.Listeners[0].ProxyProtocol = true
		c.Listeners[0].TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		c.Listeners[0].Limits.MaxSessionsPerIP = 1
	})
	dst := &net.TCPAddr{IP: net.ParseIP("2001:db8:ffff::1"), Port: 110}
	first := proxyV2Dial(t, addr, &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2::1"), Port: 1000}, dst)
	first.expect("+OK")
	first.send("USER x\r\nPASS guess\r\n")
	first.expect("+OK")
	first.expect("-ERR")
	// Another address of the same /64 is the same client.
	second := proxyV2Dial(t, addr, &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2::ffff"), Port: 1001}, dst)
	second.expect("-ERR [SYS/TEMP] too many connections")
	if n := srv.throttle.fails("net:2001:db8:1:2::/64"); n != 1 {
		t.Fatalf("failures counted for 2001:db8:1:2::/64: %d, want 1", n)
	}
	// A different /64 is another client.
	third := proxyV2Dial(t, addr, &net.TCPAddr{IP: net.ParseIP("2001:db8:1:3::1"), Port: 1002}, dst)
	third.expect("+OK")
}

func TestProxyV2UnixAddressReleasesItsSlot(t *testing.T) {
	fb := newFakeBackend(t)
	_, addr := startProxy(t, fb.addr(), func(c *Config) {
		c.Listeners[0].ProxyProtocol = true
		c.Listeners[0].TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		c.Listeners[0].Limits.MaxSessionsPerIP = 2
	})
	for i := 0; i < 6; i++ {
		c := proxyV2Dial(t, addr, &net.UnixAddr{Net: "unix", Name: "/run/lb.sock"}, &net.UnixAddr{Net: "unix", Name: "/run/pop.sock"})
		if g := c.line(); !strings.HasPrefix(g, "+OK") {
			t.Fatalf("connection %d: %q; the slots of earlier sessions were not released", i+1, g)
		}
		c.send("QUIT\r\n")
		c.expect("+OK")
		if _, err := c.r.ReadByte(); err != io.EOF {
			t.Fatalf("connection %d still open after QUIT: %v", i+1, err)
		}
	}
}

func TestLoginChargedWhenClientHangsUpBeforeTheAnswer(t *testing.T) {
	gotPass, release := make(chan struct{}), make(chan struct{})
	backend := newScriptBackend(t, func(bc *scriptConn) {
		bc.send("+OK ready")
		for {
			line, err := bc.readLine()
			if err != nil {
				return
			}
			switch {
			case strings.HasPrefix(line, "USER"):
				bc.send("+OK")
			case strings.HasPrefix(line, "PASS"):
				close(gotPass)
				<-release // a slow answer, as Dovecot gives to a wrong password
				bc.send("-ERR [AUTH] bad")
			}
		}
	}).addr()
	ended := &loginObserver{ended: make(chan filters.Login, 1)}
	srv, addr := startProxy(t, backend, func(c *Config) { c.Listeners[0].Filters = []filters.Filter{ended} })
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("USER victim\r\nPASS guess\r\n")
	c.expect("+OK")
	<-gotPass
	c.conn.(*net.TCPConn).SetLinger(0)
	c.conn.Close() // a reset, before the answer
	if n := srv.throttle.fails("user:victim"); n != 1 {
		t.Fatalf("a guess on its way to the backend counted %d failures, want 1 already", n)
	}
	close(release)
	select {
	case <-ended.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("session did not end after the client reset")
	}
	if n := srv.throttle.fails("user:victim"); n != 1 {
		t.Fatalf("a guess whose answer the client did not wait for counted %d failures, want 1", n)
	}
}

func TestThrottleEvictsOldestNeverResets(t *testing.T) {
	th := newThrottle()
	th.maxEntries = 100
	now := time.Unix(1000, 0)
	for i := 0; i < 3; i++ {
		th.fail(now, "user:alice")
	}
	// Spray names, guessing alice again every 50 of them: her counter is
	// always among the most recent, so it is never evicted.
	for i := 0; i < 10000; i++ {
		th.fail(now, fmt.Sprintf("user:spray%d", i))
		if i%50 == 0 {
			th.fail(now, "user:alice")
		}
	}
	if n := th.size(); n > 100 {
		t.Fatalf("%d entries, bound is 100", n)
	}
	if n := th.fails("user:alice"); n != 3+10000/50 {
		t.Fatalf("alice's failures after the spray: %d, want %d", n, 3+10000/50)
	}
}

func TestThrottleRefundsOnSuccess(t *testing.T) {
	fb := newFakeBackend(t)
	srv, addr := startProxy(t, fb.addr(), nil)
	c := dialClient(t, addr)
	c.login()
	if n := srv.throttle.fails("net:127.0.0.1/32"); n != 0 {
		t.Fatalf("a successful login left %d failures on its address", n)
	}
}
