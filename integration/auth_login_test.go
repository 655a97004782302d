//go:build integration

package integration

// Client logins through popgate: USER/PASS in after-auth mode, failures
// that do not tell whether a user exists, and an unreachable backend
// answered with [SYS/TEMP], never [AUTH].

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAuthUserPass(t *testing.T) {
	addr := freePort(t)
	r := authStart(t, fmt.Sprintf(`
listener "aa" {
  address = %q
  connect = "after-auth"
  backend = "a"
  limits {
    max_auth_tries = 5
  }
}
`, addr)+authBackendA(t), addr)
	alicePW, spaceyPW := itPassword(t, "a", "alice"), itPassword(t, "a", "spacey")
	r.secret(alicePW, spaceyPW, "wrong-pw-1234")
	dlog := envValue(t, "DOVECOT_LOG")

	t.Run("alice", func(t *testing.T) {
		ip := authIP()
		w := watchLog(t, dlog)
		c := authDial(t, addr, ip)
		if c.Greeting != "+OK POP3 server ready" {
			t.Errorf("greeting %q: want popgate's own, without a timestamp (no apop filter)", c.Greeting)
		}
		if err := c.Login("alice", alicePW); err != nil {
			t.Fatal(err)
		}
		if n := authStat(t, c); n != 6 {
			t.Errorf("alice has %d messages, want 6", n)
		}
		if top := authTop(t, c, 1); !strings.Contains(top, "\r\nSubject: plain hello\r\n") {
			t.Errorf("TOP 1 is not alice's first message:\n%s", top)
		}
		w.Wait(t, authLoginLine("alice", "PLAIN", ip), 10*time.Second)
		if _, err := c.Cmd("QUIT"); err != nil {
			t.Fatal(err)
		}
		authWaitLine(t, r.P, 10*time.Second, "login:", "client="+ip+":", "user=alice", "mechanism=user")
	})

	t.Run("spacey", func(t *testing.T) {
		ip := authIP()
		w := watchLog(t, dlog)
		c := authDial(t, addr, ip)
		if err := c.Login("spacey", spaceyPW); err != nil {
			t.Fatalf("password with spaces: %v", err)
		}
		if top := authTop(t, c, 1); !strings.Contains(top, "Subject: hello spacey") {
			t.Errorf("TOP 1 is not spacey's message:\n%s", top)
		}
		w.Wait(t, authLoginLine("spacey", "PLAIN", ip), 10*time.Second)
	})

	// A wrong password and an unknown user must look the same to the
	// client: same USER answer, same PASS answer. Dovecot's auth log says
	// which it was, so both really reached Dovecot.
	var mu sync.Mutex
	got := map[string][2]string{}
	t.Run("failures", func(t *testing.T) {
		for _, tc := range []struct{ name, user, why string }{
			{"wrong-password", "alice", "Password mismatch"},
			{"unknown-user", "nosuchuser", "unknown user"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				ip := authIP()
				w := watchLog(t, dlog)
				c := authDial(t, addr, ip)
				u, err := c.Cmd("USER " + tc.user)
				if err != nil {
					t.Fatalf("USER %s: %v", tc.user, err)
				}
				start := time.Now()
				p, err := c.Cmd("PASS wrong-pw-1234")
				elapsed := time.Since(start)
				var pe *popError
				if !errors.As(err, &pe) || !strings.HasPrefix(p, "-ERR [AUTH] ") {
					t.Fatalf("PASS: %q, %v; want -ERR [AUTH]", p, err)
				}
				// Dovecot's auth_failure_delay (2 s, flushed on a 0.5 s tick
				// with one-second timestamps: 1 to 2.5 s in practice) plus
				// popgate's first throttling step (0.5 s, measured alone in
				// TestAuthThrottle).
				if elapsed < 1500*time.Millisecond {
					t.Errorf("failed login answered after %v, want >= 1.5 s", elapsed)
				}
				w.Wait(t, fmt.Sprintf("passwd-file(%s,%s,", tc.user, ip), 10*time.Second)
				if s := w.Since(t); !strings.Contains(s, fmt.Sprintf("passwd-file(%s,%s,", tc.user, ip)) || !strings.Contains(s, tc.why) {
					t.Errorf("Dovecot log lacks %q for %s:\n%s", tc.why, tc.user, s)
				}
				// The session goes on: a right password still works.
				if err := c.Login("alice", alicePW); err != nil {
					t.Errorf("login after a failure: %v", err)
				}
				mu.Lock()
				got[tc.name] = [2]string{u, p}
				mu.Unlock()
			})
		}
	})
	if a, b := got["wrong-password"], got["unknown-user"]; a != b || a[0] == "" {
		t.Errorf("answers differ: wrong password %q, unknown user %q; they must be identical", a, b)
	}
}

func TestAuthBackendDown(t *testing.T) {
	aa, oa, dead := freePort(t), freePort(t), freePort(t)
	r := authStart(t, fmt.Sprintf(`
listener "aa" {
  address = %q
  connect = "after-auth"
  backend = "dead"
}
listener "oa" {
  address = %q
  backend = "dead"
}
backend "dead" {
  address         = %q
  connect_timeout = "3s"
}
`, aa, oa, dead), aa, oa)
	pw := itPassword(t, "a", "alice")
	r.secret(pw)

	c := authDial(t, aa, authIP())
	if _, err := c.Cmd("USER alice"); err != nil {
		t.Fatalf("USER: %v", err)
	}
	line, _ := c.Cmd("PASS " + pw)
	if !strings.HasPrefix(line, "-ERR [SYS/TEMP] ") || strings.Contains(line, "[AUTH]") {
		t.Errorf("PASS with the backend down: %q, want -ERR [SYS/TEMP] and never [AUTH]", line)
	}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00" + pw))
	r.secret(plain)
	line, _ = c.Cmd("AUTH PLAIN " + plain)
	if !strings.HasPrefix(line, "-ERR [SYS/TEMP] ") {
		t.Errorf("AUTH PLAIN with the backend down: %q, want -ERR [SYS/TEMP]", line)
	}
	// A [SYS/TEMP] is no failed login: the session is still open.
	if _, err := c.Multi("CAPA"); err != nil {
		t.Errorf("CAPA after two [SYS/TEMP] answers: %v", err)
	}

	// on-accept: the greeting itself is the [SYS/TEMP] answer.
	conn := authConn(t, oa, authIP())
	g, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(g, "-ERR [SYS/TEMP] ") {
		t.Errorf("on-accept greeting with the backend down: %q, %v; want -ERR [SYS/TEMP]", g, err)
	}
	authWaitLine(t, r.P, 5*time.Second, "backend unavailable", "listener=oa")
}
