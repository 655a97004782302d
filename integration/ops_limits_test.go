//go:build integration

package integration

// Session limits: max_sessions and max_sessions_per_ip (counted per
// listener, refused with -ERR [SYS/TEMP]), the prelogin and idle timeouts
// and slow clients, each cut off without QUIT so the mailbox stays intact.

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// opsLimitsConfig is one on-accept listener at addr in front of Dovecot A
// with the given limits block body.
func opsLimitsConfig(t *testing.T, addr, limits string) string {
	return fmt.Sprintf("listener \"pop3\" {\n  address = %q\n  limits {\n%s\n  }\n}\n%s", addr, limits, opsBackendA(t))
}

// opsDialFrom connects to addr from the loopback address src and reads
// the first line (the greeting, or a refusal).
func opsDialFrom(t *testing.T, addr, src string) (*popClient, string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	c := newPopClient(conn)
	t.Cleanup(func() { c.Close() })
	line, err := c.ReadLine()
	if err != nil {
		t.Fatalf("first line from %s (client %s): %v", addr, src, err)
	}
	return c, line
}

// opsWantRefused fails unless line is a [SYS/TEMP] refusal and the
// connection is closed right after it.
func opsWantRefused(t *testing.T, c *popClient, line string) {
	t.Helper()
	if !strings.HasPrefix(line, "-ERR [SYS/TEMP] ") {
		t.Errorf("connection over the limit got %q, want -ERR [SYS/TEMP]", line)
	}
	if rest := opsReadToEOF(t, c, 5*time.Second); len(rest) != 0 {
		t.Errorf("after the refusal: %q, want EOF", rest)
	}
}

func TestOpsLimits(t *testing.T) {
	t.Run("MaxSessionsPerIP", func(t *testing.T) {
		addr := freePort(t)
		opsStart(t, opsLimitsConfig(t, addr, "    max_sessions_per_ip = 2"))
		for i := 0; i < 2; i++ {
			if _, line := opsDialFrom(t, addr, "127.0.0.1"); !strings.HasPrefix(line, "+OK") {
				t.Fatalf("connection %d: %q", i+1, line)
			}
		}
		c, line := opsDialFrom(t, addr, "127.0.0.1")
		opsWantRefused(t, c, line)
		// Another address still gets in.
		if _, line := opsDialFrom(t, addr, "127.0.0.2"); !strings.HasPrefix(line, "+OK") {
			t.Errorf("a connection from 127.0.0.2 got %q, want the greeting", line)
		}
	})
	t.Run("MaxSessions", func(t *testing.T) {
		addr := freePort(t)
		opsStart(t, opsLimitsConfig(t, addr, "    max_sessions = 2\n    max_sessions_per_ip = 0"))
		for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
			if _, line := opsDialFrom(t, addr, src); !strings.HasPrefix(line, "+OK") {
				t.Fatalf("connection from %s: %q", src, line)
			}
		}
		c, line := opsDialFrom(t, addr, "127.0.0.4")
		opsWantRefused(t, c, line)
	})
	t.Run("PerListener", func(t *testing.T) {
		// docs/CONFIG.md: max_sessions and max_sessions_per_ip count the
		// sessions "on one listener".
		busy, total, perIP := freePort(t), freePort(t), freePort(t)
		opsStart(t, fmt.Sprintf(`
listener "busy" {
  address = %q
}
listener "total" {
  address = %q
  limits {
    max_sessions        = 2
    max_sessions_per_ip = 0
  }
}
listener "per-ip" {
  address = %q
  limits {
    max_sessions_per_ip = 2
  }
}
%s`, busy, total, perIP, opsBackendA(t)))
		for i := 0; i < 3; i++ {
			if _, line := opsDialFrom(t, busy, "127.0.0.1"); !strings.HasPrefix(line, "+OK") {
				t.Fatalf("connection %d to listener busy: %q", i+1, line)
			}
		}
		var bugs []string
		if _, line := opsDialFrom(t, total, "127.0.0.2"); !strings.HasPrefix(line, "+OK") {
			bugs = append(bugs, fmt.Sprintf("the first connection to a listener with max_sessions = 2 got %q", line))
		}
		if _, line := opsDialFrom(t, perIP, "127.0.0.1"); !strings.HasPrefix(line, "+OK") {
			bugs = append(bugs, fmt.Sprintf("the first connection to a listener with max_sessions_per_ip = 2 got %q", line))
		}
		if len(bugs) > 0 {
			t.Errorf("with 3 sessions open on another listener, %s: the limits count the sessions of every listener", strings.Join(bugs, "; "))
		}
	})
	t.Run("PreloginTimeout", func(t *testing.T) {
		addr := freePort(t)
		opsStart(t, opsLimitsConfig(t, addr, "    prelogin_timeout = \"1s\""))
		start := time.Now() // the timeout runs from the connection on
		c := dialPOP(t, addr)
		got := opsReadToEOF(t, c, 10*time.Second)
		d := time.Since(start)
		if d < 900*time.Millisecond || d > 3*time.Second {
			t.Errorf("idle pre-login connection closed %v after connecting, want 1-3 s", d)
		}
		if !bytes.HasPrefix(got, []byte("-ERR ")) || !bytes.HasSuffix(got, []byte("\r\n")) || bytes.Count(got, []byte("\n")) != 1 {
			t.Errorf("before closing popgate sent %q, want one -ERR line", got)
		}
	})
	t.Run("IdleTimeout", func(t *testing.T) {
		const user = "load452"
		seedUser(t, user)
		addr := freePort(t)
		p := opsStart(t, opsLimitsConfig(t, addr, "    idle_timeout = \"2s\""))
		w := watchLog(t, envValue(t, "DOVECOT_LOG"))
		c := opsLogin(t, addr, user)
		// popgate's idle timer runs from when it read the last command,
		// not from when it sent the answer.
		start := time.Now()
		opsCmdOK(t, c, "DELE 1")
		got := opsReadToEOF(t, c, 15*time.Second)
		if d := time.Since(start); d < 1900*time.Millisecond || d > 5*time.Second {
			t.Errorf("idle session closed %v after its last command, want about 2 s", d)
		}
		if !bytes.HasPrefix(got, []byte("-ERR ")) || bytes.Count(got, []byte("\n")) != 1 {
			t.Errorf("before closing popgate sent %q, want one -ERR line", got)
		}
		p.WaitLog(t, "reason=timeout", 5*time.Second)
		opsNoQuit(t, opsDovecotEnd(t, w, user, 10*time.Second))
		opsWantMailbox(t, user, opsLoadMsgs)
	})
	t.Run("SlowClient", func(t *testing.T) {
		const user = "load453"
		opsSeedBig(t, user)
		addr := freePort(t)
		p := opsStart(t, opsLimitsConfig(t, addr, "    write_timeout = \"2s\""))
		w := watchLog(t, envValue(t, "DOVECOT_LOG"))
		c := opsLogin(t, addr, user)
		opsCmdOK(t, c, "DELE 1")
		start := time.Now()
		if err := c.Write([]byte(fmt.Sprintf("RETR %d\r\n", opsBigMsg))); err != nil {
			t.Fatal(err)
		}
		// The client reads nothing from here on, until popgate drops it.
		// (With a tiny receive buffer the kernel would take minutes to
		// deliver what popgate's closed socket still holds.)
		p.WaitLog(t, "reason=write-error", 30*time.Second)
		dropped := time.Since(start)
		got := opsReadToEOF(t, c, 30*time.Second)
		t.Logf("slow client dropped %v after its RETR; what it could still read: %d octets, then EOF", dropped.Round(time.Millisecond), len(got))
		if !bytes.HasPrefix(got, []byte("+OK")) || bytes.HasSuffix(got, []byte("\r\n.\r\n")) || len(got) >= 50<<20 {
			t.Errorf("the dropped client read %d octets starting %.20q, ending %q; want +OK and a body cut short, without the terminating dot",
				len(got), got, got[max(0, len(got)-8):])
		}
		opsNoQuit(t, opsDovecotEnd(t, w, user, 10*time.Second))
		opsWantMailbox(t, user, opsBigMsg)
	})
}
