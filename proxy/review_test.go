package proxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/popgate/popgate/filters"
)

// Review tests: hostile-input, pipelining, shutdown and state-machine
// cases; most are regression tests for bugs found in review.

// reviewLogin reads the greeting and logs in with USER/PASS.
func reviewLogin(c *testClient) {
	c.t.Helper()
	c.expect("+OK")
	c.send("USER a\r\nPASS secret\r\n")
	c.expect("+OK")
	c.expect("+OK logged in")
}

// scriptBackend accepts connections on loopback and runs handle for each.
func scriptBackend(t testing.TB, handle func(c net.Conn, r *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				handle(c, bufio.NewReader(c))
			}()
		}
	}()
	return ln.Addr().String()
}

// loginObserver is a filter that only observes session ends.
type loginObserver struct{ ended chan filters.Login }

func (o *loginObserver) Name() string                    { return "review-observer" }
func (o *loginObserver) SessionStarted(*filters.Session) {}
func (o *loginObserver) SessionEnded(s *filters.Session, _ filters.SessionEnd) {
	o.ended <- s.Login
}

func reviewTLSConfig(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// A complete command followed by a partial line that holds a bare LF must
// still be answered: moreBuffered counts the bare LF as a complete line,
// so the command is never flushed to the backend.
func TestReviewBareLFAfterCommandDoesNotStallAnswer(t *testing.T) {

	fb := newFakeBackend(t, "m\r\n")
	_, addr := startProxy(t, fb.addr(), nil)
	c := dialClient(t, addr)
	reviewLogin(c)
	c.send("NOOP\r\nAB\n")
	c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	c.expect("+OK")
}

// When max_errors closes the session mid-burst, commands pipelined behind
// the last counted error must not take effect on the backend: the client
// never sees their answers, and the session reports nothing committed.
func TestReviewMaxErrorsMidBurstDoesNotRelayQuit(t *testing.T) {

	fb := newFakeBackend(t, "m\r\n")
	ended := make(chan filters.SessionEnd, 1)
	_, addr := startProxy(t, fb.addr(), func(c *Config) {
		c.Hooks.SessionEnded = func(_ string, _ bool, end filters.SessionEnd) { ended <- end }
	})
	c := dialClient(t, addr)
	reviewLogin(c)
	c.send(strings.Repeat("RETR x\r\n", 5) + "DELE 1\r\nQUIT\r\n")
	for i := 0; i < 5; i++ {
		c.expect("-ERR")
	}
	c.expect("-ERR too many errors")
	v := waitDone(t, fb)
	end := <-ended
	if v == "quit" && !end.Committed {
		t.Fatalf("backend received QUIT (deletions committed) but the session reports Committed=false, reason %q; backend saw %q",
			end.Reason, fb.received())
	}
}

// Shutdown's deadline must end sessions promptly even while they wait on a
// backend that has not answered yet (greeting, or login in after-auth mode).
func TestReviewShutdownInterruptsBackendWaits(t *testing.T) {

	t.Run("after-auth login", func(t *testing.T) {
		gotPass := make(chan struct{}, 1)
		addr := scriptBackend(t, func(c net.Conn, r *bufio.Reader) {
			fmt.Fprintf(c, "+OK ready\r\n")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if strings.HasPrefix(l, "USER") {
					continue // USER and PASS go out together; answer neither
				}
				if strings.HasPrefix(l, "PASS") {
					gotPass <- struct{}{}
				}
			}
		})
		srv, paddr := startProxy(t, addr, func(c *Config) {
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
		reviewShutdownPromptly(t, srv)
	})
	t.Run("on-accept greeting", func(t *testing.T) {
		accepted := make(chan struct{}, 1)
		addr := scriptBackend(t, func(c net.Conn, r *bufio.Reader) {
			accepted <- struct{}{}
			r.ReadByte() // never greet; wait for the close
		})
		srv, paddr := startProxy(t, addr, func(c *Config) { c.Backends["b"].ConnectTimeout = 6 * time.Second })
		dialClient(t, paddr)
		select {
		case <-accepted:
		case <-time.After(5 * time.Second):
			t.Fatal("backend never accepted")
		}
		reviewShutdownPromptly(t, srv)
	})
}

func reviewShutdownPromptly(t *testing.T, srv *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	srv.Shutdown(ctx)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Shutdown with a 200ms deadline took %v", d)
	}
}

// RFC 5034 section 4: a client whose initial response would make AUTH
// longer than 255 octets sends it as a continuation instead, so
// continuation lines must not be held to the 255-octet command limit
// (XOAUTH2/OAUTHBEARER/GSSAPI tokens, long PLAIN credentials).
func TestReviewSASLContinuationLongerThanCommandLimit(t *testing.T) {

	fb := newFakeBackend(t, "m\r\n")
	_, addr := startProxy(t, fb.addr(), nil)
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("AUTH XOAUTH2\r\n")
	c.expect("+ ")
	token := strings.Repeat("QUFB", 300) // 1200 octets of base64
	c.send(token + "\r\n")
	c.expect("+OK sasl ok")
	if !contains(fb.received(), token) {
		t.Fatal("the token did not reach the backend")
	}
}

// On-accept mode: a login by AUTH PLAIN whose response comes as a
// continuation (curl's default) must be attributed to its user in logs,
// audit and the throttle, as it is with an initial response.
func TestReviewPassthroughSASLContinuationNamesUser(t *testing.T) {

	fb := newFakeBackend(t, "m\r\n")
	obs := &loginObserver{ended: make(chan filters.Login, 1)}
	_, addr := startProxy(t, fb.addr(), func(c *Config) { c.Listeners[0].Filters = []filters.Filter{obs} })
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("AUTH PLAIN\r\n")
	c.expect("+ ")
	c.send(base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret")) + "\r\n")
	c.expect("+OK sasl ok")
	c.send("QUIT\r\n")
	c.expect("+OK")
	select {
	case l := <-obs.ended:
		if l.User != "alice" || l.Mechanism != "plain" {
			t.Fatalf("login recorded as %+v, want user alice, mechanism plain", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("session did not end")
	}
}

// On-accept mode: with AUTH PLAIN authzid\0authcid\0password the mailbox
// opened is the authzid's (a master-user login); audit must name it.
func TestReviewPassthroughPlainAuthzidIsTheMailbox(t *testing.T) {

	addr := scriptBackend(t, func(c net.Conn, r *bufio.Reader) {
		fmt.Fprintf(c, "+OK ready\r\n")
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(c, "+OK\r\n")
			if strings.HasPrefix(l, "QUIT") {
				return
			}
		}
	})
	obs := &loginObserver{ended: make(chan filters.Login, 1)}
	_, paddr := startProxy(t, addr, func(c *Config) { c.Listeners[0].Filters = []filters.Filter{obs} })
	c := dialClient(t, paddr)
	c.expect("+OK")
	c.send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("bob\x00master\x00pw")) + "\r\n")
	c.expect("+OK")
	c.send("QUIT\r\n")
	c.expect("+OK")
	select {
	case l := <-obs.ended:
		if l.User != "bob" {
			t.Fatalf("login recorded as user %q, want bob (the mailbox opened)", l.User)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("session did not end")
	}
}

// Shutdown aborting a session that is still reading its PROXY header must
// not race with accept() replacing s.raw. Detected with -race.
func TestReviewShutdownDuringProxyHeaderNoRace(t *testing.T) {

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

// Regression: STLS discards plaintext pipelined behind it, forgets USER,
// refuses a second STLS and stops advertising STLS.
func TestReviewSTLSInjectionAndRepeat(t *testing.T) {
	fb := newFakeBackend(t, "m\r\n")
	_, addr := startProxy(t, fb.addr(), func(c *Config) {
		c.Listeners[0].TLS = TLSStartTLS
		c.ServerTLS = reviewTLSConfig(t)
	})
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("USER before\r\n")
	c.expect("+OK")
	c.send("STLS\r\nUSER evil\r\nPASS secret\r\n")
	c.expect("+OK")
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	c = &testClient{t: t, conn: tc, r: bufio.NewReader(tc)}
	c.send("PASS secret\r\n")
	c.expect("-ERR")
	c.send("STLS\r\n")
	c.expect("-ERR")
	c.send("CAPA\r\n")
	c.expect("+OK")
	if capa := c.body(); strings.Contains(capa, "STLS") {
		t.Fatalf("CAPA over TLS still offers STLS: %q", capa)
	}
	c.send("USER a\r\nPASS secret\r\nSTAT\r\n")
	c.expect("+OK")
	c.expect("+OK logged in")
	c.expect("+OK 1")
	for _, l := range fb.received() {
		if strings.Contains(l, "evil") {
			t.Fatalf("plaintext pipelined after STLS reached the backend: %q", l)
		}
	}
}

// Regression: commands outside their state, odd arguments and odd bytes
// are refused locally, never reach the backend, and never panic.
func TestReviewStateMachineAndOddInput(t *testing.T) {
	fb := newFakeBackend(t, "m\r\n")
	_, addr := startProxy(t, fb.addr(), func(c *Config) { c.Listeners[0].Limits.MaxErrors = 100 })
	c := dialClient(t, addr)
	c.expect("+OK")
	for _, cmd := range []string{"RETR 1", "DELE 1", "STAT", "NOOP", "LIST", "RETR", "USER", "APOP x", "AUTH A B C", "PASS", "\xff\xfe", "ÜSER a"} {
		c.send(cmd + "\r\n")
		c.expect("-ERR")
	}
	reviewLoginAfterGreeting(c)
	for _, cmd := range []string{"USER b", "PASS x", "APOP a b", "AUTH PLAIN", "STLS", "RETR 99999999999", "TOP 1", "TOP 1 -1",
		"LIST 1 2", "DELE 0x1", "STAT ", "RETR  1", " NOOP", "", strings.Repeat("A", 300), "NOOP\x7f"} {
		c.send(cmd + "\r\n")
		c.expect("-ERR")
	}
	c.send("STAT\r\n")
	c.expect("+OK 1")
	seen := fb.received()
	for _, l := range seen {
		switch {
		case l == "USER a", l == "PASS secret", l == "STAT":
		default:
			t.Fatalf("backend received %q; refused commands must stay local (all: %q)", l, seen)
		}
	}
}

func reviewLoginAfterGreeting(c *testClient) {
	c.t.Helper()
	c.send("USER a\r\nPASS secret\r\n")
	c.expect("+OK")
	c.expect("+OK logged in")
}

// Regression: nothing behind QUIT in a burst is executed, and a PASS
// without USER is refused by the backend without state confusion.
func TestReviewQuitInBurst(t *testing.T) {
	fb := newFakeBackend(t, "m\r\n", "n\r\n")
	_, addr := startProxy(t, fb.addr(), nil)
	c := dialClient(t, addr)
	reviewLogin(c)
	c.send("DELE 1\r\nQUIT\r\nDELE 2\r\nNOOP\r\n")
	c.expect("+OK marked")
	c.expect("+OK bye")
	if v := waitDone(t, fb); v != "quit" {
		t.Fatalf("backend saw %q", v)
	}
	if contains(fb.received(), "DELE 2") {
		t.Fatal("a command pipelined after QUIT was executed")
	}
}

// Regression: the RFC 1939 inactivity timer ends an idle TRANSACTION
// session with an answer and without QUIT to the backend.
func TestReviewIdleTimeoutNeverQuits(t *testing.T) {
	fb := newFakeBackend(t, "m\r\n")
	_, addr := startProxy(t, fb.addr(), func(c *Config) { c.Listeners[0].Limits.IdleTimeout = 300 * time.Millisecond })
	c := dialClient(t, addr)
	reviewLogin(c)
	c.send("DELE 1\r\n")
	c.expect("+OK")
	c.expect("-ERR")
	if v := waitDone(t, fb); v != "closed" {
		t.Fatalf("backend saw %q; an idle timeout must not QUIT", v)
	}
}

// Regression: sessions that end in every usual way leave no goroutines
// behind.
func TestReviewNoGoroutineLeak(t *testing.T) {
	fb := newFakeBackend(t, strings.Repeat("line\r\n", 20000))
	srv, addr := startProxy(t, fb.addr(), nil)
	base := runtime.NumGoroutine()
	for i := 0; i < 30; i++ {
		c := dialClient(t, addr)
		reviewLogin(c)
		switch i % 3 {
		case 0: // vanish with a big body and pipelined commands in flight
			c.send("RETR 1\r\nNOOP\r\nSTAT\r\n")
		case 1:
			c.send("NOOP\r\nQUIT\r\n")
			c.expect("+OK")
			c.expect("+OK")
		case 2:
			c.send("FOO\r\n")
			c.expect("-ERR")
		}
		c.conn.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.Sessions() > 0 || runtime.NumGoroutine() > base+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("sessions %d, goroutines %d (base %d)\n%s", srv.Sessions(), runtime.NumGoroutine(), base, buf[:n])
		}
		time.Sleep(10 * time.Millisecond) // polling counters that have no signal
	}
}
