package proxy

import (
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Session tests that loop, count or time what a transcript cannot: most
// session behaviour is in testdata/transcripts (transcript_test.go).

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

// Sessions that end in every usual way leave no goroutines behind.
func TestSessionsLeaveNoGoroutines(t *testing.T) {
	fb := newFakeBackend(t, strings.Repeat("line\r\n", 20000))
	srv, addr := startProxy(t, fb.addr(), nil)
	base := runtime.NumGoroutine()
	for i := 0; i < 30; i++ {
		c := dialClient(t, addr)
		c.login()
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
