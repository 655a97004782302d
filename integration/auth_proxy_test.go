//go:build integration

package integration

// The client's address: popgate behind a PROXY protocol sender (the test
// plays HAProxy with a v2 header claiming 192.0.2.10:4242), passing the
// address on to Dovecot by XCLIENT, PROXY v2 and PROXY v1, proved by
// Dovecot's own log; and proxy_protocol listeners refusing connections
// without a header or from untrusted addresses; and abuse from one
// address: the growing throttling delay, max_auth_tries, and 10,000
// pipelined AUTH lines.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// The address the test's PROXY headers claim for the client, and for the
// address the client connected to.
var (
	authProxySrc = &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 4242}
	authProxyDst = &net.TCPAddr{IP: net.ParseIP("203.0.113.5"), Port: 110}
)

// authProxyDial connects to addr from 127.0.0.1 (or from, if not empty),
// sends a PROXY v2 header claiming authProxySrc, and returns the client
// without reading anything.
func authProxyDial(t *testing.T, addr, from string) *popClient {
	t.Helper()
	if from == "" {
		from = "127.0.0.1"
	}
	conn := authConn(t, addr, from)
	hdr := proxyproto.HeaderProxyFromAddrs(2, authProxySrc, authProxyDst)
	if _, err := hdr.WriteTo(conn); err != nil {
		t.Fatalf("PROXY header: %v", err)
	}
	c := newPopClient(conn)
	c.Timeout = 30 * time.Second
	return c
}

func TestAuthForwardClient(t *testing.T) {
	xc, v2, v1 := freePort(t), freePort(t), freePort(t)
	listener := func(name, addr, connect, backend string) string {
		return fmt.Sprintf(`
listener %q {
  address         = %q
  connect         = %q
  backend         = %q
  proxy_protocol  = true
  trusted_proxies = ["127.0.0.1/32"]
}
`, name, addr, connect, backend)
	}
	r := authStart(t, listener("xc", xc, "after-auth", "a")+
		listener("v2", v2, "after-auth", "h2")+
		listener("v1", v1, "on-accept", "h1")+
		authBackendA(t)+fmt.Sprintf(`
backend "h2" {
  address        = %q
  forward_client = "proxy-v2"
}
backend "h1" {
  address        = %q
  forward_client = "proxy-v1"
}
`, envValue(t, "POP3_HAPROXY_ADDR"), envValue(t, "POP3_HAPROXY_ADDR")), xc, v2, v1)
	dlog := envValue(t, "DOVECOT_LOG")

	// Each case logs in as a different user, so Dovecot's line for the
	// shared address 192.0.2.10 is this case's. They run one by one, each
	// watching Dovecot's log from its own start.
	for _, tc := range []struct {
		name, addr, user, lip string
	}{
		// XCLIENT sends ADDR and PORT only: Dovecot's lip stays its own.
		{"xclient", xc, "alice", "127.0.0.1"},
		// A PROXY header carries both ends of the client's connection.
		{"proxy-v2", v2, "bob", "203.0.113.5"},
		{"proxy-v1", v1, "spacey", "203.0.113.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pw := itPassword(t, "a", tc.user)
			r.secret(pw)
			w := watchLog(t, dlog)
			c := authProxyDial(t, tc.addr, "")
			g, err := c.ReadLine()
			if err != nil || !strings.HasPrefix(g, "+OK") || strings.Contains(g, "[XCLIENT]") {
				t.Fatalf("greeting: %q, %v; want +OK without [XCLIENT]", g, err)
			}
			c.Greeting = g
			if err := c.Login(tc.user, pw); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Cmd("STAT"); err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("Login: user=<%s>, method=PLAIN, rip=192.0.2.10, lip=%s,", tc.user, tc.lip)
			line := w.Wait(t, want, 10*time.Second)
			for _, l := range strings.Split(line, "\n") {
				if strings.Contains(l, want) {
					t.Logf("Dovecot: %s", l)
				}
			}
			authWaitLine(t, r.P, 10*time.Second, "session started", "client=192.0.2.10:4242")
			if rec := authAuditAuth(t, r.Audit, "192.0.2.10", "ok"); rec["client"] != "192.0.2.10:4242" {
				t.Errorf("audit auth record %v, want client 192.0.2.10:4242", rec)
			}
		})
	}
}

func TestAuthProxyProtocolRefused(t *testing.T) {
	addr := freePort(t)
	r := authStart(t, fmt.Sprintf(`
listener "pp" {
  address         = %q
  connect         = "after-auth"
  backend         = "a"
  proxy_protocol  = true
  trusted_proxies = ["127.0.0.1/32"]
  limits {
    prelogin_timeout = "2s"
  }
}
`, addr)+authBackendA(t), addr)

	// refused checks that popgate closes c without sending one octet.
	refused := func(t *testing.T, c *popClient) {
		t.Helper()
		c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c.R)
		if len(b) != 0 || err != nil && !isConnReset(err) {
			t.Errorf("got %q, %v; want the connection closed without a greeting", b, err)
		}
	}

	t.Run("cases", func(t *testing.T) {
		authProxyRefusalCases(t, addr, refused)
	})
	authWaitLine(t, r.P, 10*time.Second, "connection from untrusted address refused", "peer=127.0.0.2:")
	authWaitLine(t, r.P, 10*time.Second, "PROXY protocol header missing or invalid")
}

// authProxyRefusalCases runs the refusal cases in parallel.
func authProxyRefusalCases(t *testing.T, addr string, refused func(*testing.T, *popClient)) {
	t.Run("no-header-command", func(t *testing.T) {
		t.Parallel()
		c := newPopClient(authConn(t, addr, "127.0.0.1"))
		if err := c.Write([]byte("CAPA\r\n")); err != nil {
			t.Fatal(err)
		}
		refused(t, c)
	})
	t.Run("no-header-silent", func(t *testing.T) {
		t.Parallel()
		c := newPopClient(authConn(t, addr, "127.0.0.1"))
		start := time.Now()
		refused(t, c)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("closed after %v, want about prelogin_timeout (2 s)", d)
		}
	})
	t.Run("untrusted-address", func(t *testing.T) {
		t.Parallel()
		refused(t, authProxyDial(t, addr, "127.0.0.2")) // a valid header from the wrong peer
	})
	t.Run("trusted-control", func(t *testing.T) {
		t.Parallel()
		c := authProxyDial(t, addr, "")
		if g, err := c.ReadLine(); err != nil || !strings.HasPrefix(g, "+OK") {
			t.Errorf("greeting with a valid header from a trusted peer: %q, %v", g, err)
		}
	})
}

func TestAuthThrottle(t *testing.T) {
	pw := itPassword(t, "a", "alice")
	secrets := authSecretsFile(t, 0o600, "alice:"+pw)
	addr := freePort(t)
	r := authStart(t, fmt.Sprintf(`
listener "aa" {
  address = %q
  connect = "after-auth"
  backend = "a"
}
filter "apop" {
  secrets_file = %q
}
`, addr, secrets)+authBackendA(t), addr)
	r.secret(pw)

	// Wrong APOP digests are refused by popgate itself, so the delays
	// measured are popgate's alone: 0.5 s, 1 s, 2 s.
	ip := authIP()
	c := authDial(t, addr, ip)
	ts := authTimestamp(t, c.Greeting)
	var delays []time.Duration
	for i := 0; i < 3; i++ {
		start := time.Now()
		line, _ := c.Cmd("APOP alice " + authAPOPDigest(ts, fmt.Sprintf("guess-%d", i)))
		delays = append(delays, time.Since(start))
		if !strings.HasPrefix(line, "-ERR [AUTH] ") {
			t.Fatalf("wrong digest %d: %q, want -ERR [AUTH]", i+1, line)
		}
	}
	t.Logf("delays of failures 1-3: %v", delays)
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second}
	for i, d := range delays {
		if d < want[i]-50*time.Millisecond || d > want[i]+time.Second {
			t.Errorf("failure %d answered after %v, want about %v", i+1, d, want[i])
		}
	}
	// max_auth_tries (default 3) closes the session after the third.
	if line, err := c.ReadLine(); line != "-ERR [AUTH] too many failed logins, closing" {
		t.Errorf("after 3 failures: %q, %v; want the closing -ERR [AUTH]", line, err)
	}
	if line, err := c.ReadLine(); !errors.Is(err, io.EOF) {
		t.Errorf("after the closing line: %q, %v; want EOF", line, err)
	}
	authWaitLine(t, r.P, 5*time.Second, "session ended", "client="+ip+":", "reason=too-many-auth-failures")

	// The delay is per client address, not per session or login name: a
	// fourth failure from the same address with another name waits 4 s;
	// a first failure from another address waits 0.5 s.
	var wg sync.WaitGroup
	for _, tc := range []struct {
		ip, user string
		min, max time.Duration
	}{
		{ip, "nobody-1", 4 * time.Second, 5500 * time.Millisecond},
		{authIP(), "nobody-2", 450 * time.Millisecond, 2 * time.Second},
	} {
		c := authDial(t, addr, tc.ip)
		cmd := "APOP " + tc.user + " " + authAPOPDigest(authTimestamp(t, c.Greeting), "x")
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			line, _ := c.Cmd(cmd)
			if d := time.Since(start); d < tc.min || d > tc.max || !strings.HasPrefix(line, "-ERR [AUTH] ") {
				t.Errorf("failure of %s from %s: %q after %v, want -ERR [AUTH] after %v..%v", tc.user, tc.ip, line, d, tc.min, tc.max)
			}
		}()
	}
	wg.Wait()

	// A failure that names no user (a cancelled or malformed SASL
	// exchange) is throttled by client address only: the first such
	// failure of a new address waits the first step, 0.5 s, whatever
	// other addresses did before.
	t.Run("anonymous-failures", func(t *testing.T) {
		var delays []time.Duration
		for i := 0; i < 2; i++ {
			c := authDial(t, addr, authIP())
			start := time.Now()
			line, _ := c.Cmd("AUTH PLAIN =")
			delays = append(delays, time.Since(start))
			if !strings.HasPrefix(line, "-ERR") {
				t.Fatalf("AUTH PLAIN =: %q, want -ERR", line)
			}
		}
		t.Logf("first anonymous failure of two new addresses: %v", delays)
		if delays[1] > delays[0]+300*time.Millisecond {
			t.Fatalf("an anonymous failure from a new address waited %v after one from another address waited %v: "+
				"failures without a login name share the throttle key \"user:\" across all clients", delays[1], delays[0])
		}
	})
}

func TestAuthPipelinedFlood(t *testing.T) {
	addr := freePort(t)
	r := authStart(t, fmt.Sprintf(`
listener "aa" {
  address = %q
  connect = "after-auth"
  backend = "a"
}
`, addr)+authBackendA(t), addr)
	pw := itPassword(t, "a", "alice")
	r.secret(pw)

	ip := authIP()
	c := authDial(t, addr, ip)
	flood := []byte(strings.Repeat("AUTH PLAIN !!notbase64!!\r\n", 10000))
	writeDone := make(chan error, 1)
	go func() {
		_, err := c.Conn.Write(flood) // one write; fails once popgate closes
		writeDone <- err
	}()

	// While the flood is answered, another client logs in and reads.
	other := authDial(t, addr, authIP())
	if err := other.Login("alice", pw); err != nil {
		t.Fatalf("login during the flood: %v", err)
	}
	if n := authStat(t, other); n != 6 {
		t.Errorf("alice has %d messages, want 6", n)
	}

	c.Conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var lines []string
	var err error
	for len(lines) < 20 {
		var line string
		line, err = c.R.ReadString('\n')
		if err != nil {
			break
		}
		lines = append(lines, strings.TrimSuffix(line, "\r\n"))
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isConnReset(err) {
		t.Errorf("flooded session not closed: %v after %d lines", err, len(lines))
	}
	if len(lines) != 4 || lines[3] != "-ERR [AUTH] too many failed logins, closing" {
		t.Errorf("flood answers %q: want three -ERR then the closing -ERR [AUTH]", lines)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "-ERR") {
			t.Errorf("flood answer %q is not -ERR", l)
		}
	}
	select {
	case <-writeDone:
	case <-time.After(10 * time.Second):
		t.Errorf("the flood's write still blocked 10 s after popgate closed the session")
	}
	authWaitLine(t, r.P, 5*time.Second, "session ended", "client="+ip+":", "reason=too-many-auth-failures")

	// popgate survived: the other session goes on, and new ones work.
	if _, err := other.Multi("UIDL"); err != nil {
		t.Errorf("UIDL in the other session after the flood: %v", err)
	}
	select {
	case <-r.P.Done():
		t.Fatalf("popgate exited: %v", r.P.ExitErr())
	default:
	}
	if _, err := authDial(t, addr, authIP()).Multi("CAPA"); err != nil {
		t.Errorf("CAPA in a new session after the flood: %v", err)
	}
}

// isConnReset reports a connection reset by popgate closing with unread
// input, which is also a close.
func isConnReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset by peer")
}
