package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

type testClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialClient(t testing.TB, addr string) *testClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &testClient{t: t, conn: c, r: bufio.NewReader(c)}
}

func (c *testClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *testClient) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("line without CRLF: %q", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (c *testClient) expect(prefix string) string {
	c.t.Helper()
	l := c.line()
	if !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("got %q, want prefix %q", l, prefix)
	}
	return l
}

// body reads a multi-line body raw (still stuffed) up to the terminator.
func (c *testClient) body() string {
	c.t.Helper()
	var b strings.Builder
	for {
		l := c.line()
		if l == "." {
			return b.String()
		}
		b.WriteString(l + "\r\n")
	}
}

func startProxy(t testing.TB, backend string, mutate func(*Config)) (*Server, string) {
	t.Helper()
	cfg := &Config{
		Listeners: []Listener{{Name: "test", Address: "127.0.0.1:0", Backend: "b", Connect: ConnectOnAccept}},
		Backends:  map[string]*Backend{"b": {Name: "b", Address: backend, ConnectTimeout: 2 * time.Second}},
	}
	if mutate != nil {
		mutate(cfg)
	}
	srv := New(hclog.NewNullLogger())
	if err := srv.Start(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv, srv.Addr("test").String()
}

func waitDone(t testing.TB, fb *fakeBackend) string {
	t.Helper()
	select {
	case v := <-fb.done:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("backend connection did not end")
		return ""
	}
}

func TestOnAcceptRelaysSession(t *testing.T) {
	fb := newFakeBackend(t, "Subject: one\r\n\r\n..dot line\r\nbody\r\n", "Subject: two\r\n\r\nx\r\n")
	_, addr := startProxy(t, fb.addr(), nil)
	c := dialClient(t, addr)
	if g := c.expect("+OK"); !strings.Contains(g, "<1.2@fake>") {
		t.Fatalf("greeting lost the APOP timestamp: %q", g)
	}
	c.send("USER alice\r\n")
	c.expect("+OK")
	c.send("PASS secret\r\n")
	c.expect("+OK logged in")
	c.send("RETR 1\r\n")
	c.expect("+OK")
	if got, want := c.body(), "Subject: one\r\n\r\n..dot line\r\nbody\r\n"; got != want {
		t.Fatalf("body %q, want %q", got, want)
	}
	c.send("QUIT\r\n")
	c.expect("+OK bye")
	if v := waitDone(t, fb); v != "quit" {
		t.Fatalf("backend saw %q, want quit", v)
	}
}

func TestPipelinedCommandsAnsweredInOrder(t *testing.T) {
	fb := newFakeBackend(t, "Subject: one\r\n\r\n1\r\n", "Subject: two\r\n\r\n2\r\n")
	_, addr := startProxy(t, fb.addr(), nil)
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("USER a\r\nPASS secret\r\n") // sequential in AUTHORIZATION, still both answered
	c.expect("+OK")
	c.expect("+OK logged in")
	var burst strings.Builder
	for i := 0; i < 300; i++ {
		burst.WriteString("NOOP\r\n")
		if i%50 == 0 {
			burst.WriteString("RETR 2\r\nBOGUS\r\nRETR 1\r\n")
		}
	}
	c.send(burst.String())
	for i := 0; i < 300; i++ {
		c.expect("+OK")
		if i%50 == 0 {
			c.expect("+OK")
			if b := c.body(); b != "Subject: two\r\n\r\n2\r\n" {
				t.Fatalf("RETR 2 body %q", b)
			}
			c.expect("-ERR")
			c.expect("+OK")
			if b := c.body(); b != "Subject: one\r\n\r\n1\r\n" {
				t.Fatalf("RETR 1 body %q", b)
			}
		}
	}
	for _, l := range fb.received() {
		if strings.HasPrefix(l, "BOGUS") {
			t.Fatal("unknown command reached the backend")
		}
	}
}

func TestBareLFCannotSmuggleCommand(t *testing.T) {
	fb := newFakeBackend(t, "m\r\n")
	_, addr := startProxy(t, fb.addr(), nil)
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("USER a\r\nPASS secret\r\n")
	c.expect("+OK")
	c.expect("+OK")
	c.send("NOOP\nDELE 1\r\nNOOP\rDELE 1\r\nNOOP\x00DELE 1\r\nSTAT\r\n")
	c.expect("-ERR")
	c.expect("-ERR")
	c.expect("-ERR")
	c.expect("+OK 1")
	for _, l := range fb.received() {
		if strings.Contains(l, "DELE") {
			t.Fatalf("smuggled command reached the backend: %q", l)
		}
	}
}

func TestClientVanishingCommitsNothing(t *testing.T) {
	fb := newFakeBackend(t, "m\r\n")
	_, addr := startProxy(t, fb.addr(), nil)
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("USER a\r\nPASS secret\r\n")
	c.expect("+OK")
	c.expect("+OK")
	c.send("DELE 1\r\n")
	c.expect("+OK marked")
	c.conn.Close()
	if v := waitDone(t, fb); v != "closed" {
		t.Fatalf("backend saw %q; a vanished client must never cause QUIT", v)
	}
	for _, l := range fb.received() {
		if l == "QUIT" {
			t.Fatal("QUIT was sent to the backend")
		}
	}
}

func TestTruncatedBodyHasNoTerminator(t *testing.T) {
	fb := newFakeBackend(t, strings.Repeat("line of mail\r\n", 1000))
	fb.cut[1] = true
	_, addr := startProxy(t, fb.addr(), nil)
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("USER a\r\nPASS secret\r\nRETR 1\r\n")
	c.expect("+OK")
	c.expect("+OK")
	c.expect("+OK message follows")
	data, err := io.ReadAll(c.r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if strings.HasSuffix(string(data), "\r\n.\r\n") || strings.Contains(string(data), "\r\n.\r\n") {
		t.Fatal("a truncated body was delivered with a terminating dot")
	}
}

func TestAfterAuthLogin(t *testing.T) {
	fb := newFakeBackend(t, "m\r\n")
	_, addr := startProxy(t, fb.addr(), func(c *Config) { c.Listeners[0].Connect = ConnectAfterAuth })
	c := dialClient(t, addr)
	if g := c.expect("+OK"); strings.Contains(g, "<") {
		t.Fatalf("greeting offers APOP without an apop filter: %q", g)
	}
	c.send("CAPA\r\n")
	c.expect("+OK")
	if capa := c.body(); !strings.Contains(capa, "USER\r\n") || !strings.Contains(capa, "PIPELINING") {
		t.Fatalf("capa %q", capa)
	}
	c.send("STAT\r\n")
	c.expect("-ERR")
	c.send("USER alice\r\nPASS wrong\r\n")
	c.expect("+OK")
	c.expect("-ERR [AUTH]")
	c.send("USER alice\r\nPASS pass word\r\n")
	c.expect("+OK")
	c.expect("+OK logged in")
	c.send("STAT\r\n")
	c.expect("+OK 1")
	got := fb.received()
	if !contains(got, "PASS pass word") {
		t.Fatalf("backend did not get the whole password with spaces: %q", got)
	}
}

func TestAfterAuthBackendDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	_, addr := startProxy(t, dead, func(c *Config) { c.Listeners[0].Connect = ConnectAfterAuth })
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("USER alice\r\nPASS secret\r\n")
	c.expect("+OK")
	c.expect("-ERR [SYS/TEMP]")
}

func TestOnAcceptBackendDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	_, addr := startProxy(t, dead, nil)
	c := dialClient(t, addr)
	c.expect("-ERR [SYS/TEMP]")
}

func TestTooManyErrorsCloses(t *testing.T) {
	fb := newFakeBackend(t)
	_, addr := startProxy(t, fb.addr(), nil)
	c := dialClient(t, addr)
	c.expect("+OK")
	for i := 0; i < 5; i++ {
		c.send("FOO\r\n")
		c.expect("-ERR")
	}
	c.expect("-ERR too many errors")
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Fatalf("connection still open: %v", err)
	}
}

func TestSASLContinuationRelayed(t *testing.T) {
	fb := newFakeBackend(t, "m\r\n")
	_, addr := startProxy(t, fb.addr(), nil)
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("AUTH PLAIN\r\n")
	c.expect("+ ")
	c.send("not base64!\r\n")
	c.expect("-ERR")
	c.send("AUTH PLAIN\r\n")
	c.expect("+ ")
	c.send("AGFsaWNlAHNlY3JldA==\r\n")
	c.expect("+OK sasl ok")
	c.send("STAT\r\n")
	c.expect("+OK")
	got := fb.received()
	if !contains(got, "*") {
		t.Fatalf("malformed SASL answer was not cancelled on the backend: %q", got)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestPreLoginDeadlineIsAbsolute(t *testing.T) {
	fb := newFakeBackend(t)
	_, addr := startProxy(t, fb.addr(), func(c *Config) {
		c.Listeners[0].Connect = ConnectAfterAuth
		c.Listeners[0].Limits.PreLoginTimeout = 500 * time.Millisecond
	})
	c := dialClient(t, addr)
	c.expect("+OK")
	start := time.Now()
	closed := false
	for i := 0; i < 40 && !closed; i++ {
		if _, err := io.WriteString(c.conn, "CAPA\r\n"); err != nil {
			closed = true
			break
		}
		for {
			l, err := c.r.ReadString('\n')
			if err != nil {
				closed = true
				break
			}
			if l == ".\r\n" || strings.HasPrefix(l, "-ERR") {
				break
			}
		}
		time.Sleep(100 * time.Millisecond) // the client trickles commands; not synchronisation
	}
	if !closed {
		t.Fatal("a client trickling CAPA kept its pre-login session for 4 s")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v; pre-login deadline is 500ms", d)
	}
}
