//go:build integration

package integration

// Signals: configuration reload on SIGHUP and graceful stop on SIGTERM,
// which lets open sessions finish until shutdown_timeout and then closes
// them without QUIT, so nothing is deleted.

import (
	"bytes"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestOpsReload(t *testing.T) {
	oneAddr, twoAddr := freePort(t), freePort(t)
	addrA, addrB := envValue(t, "POP3_ADDR"), envValue(t, "POP3B_ADDR")
	p := opsStart(t, opsReloadConfig("one", oneAddr, addrA))

	// A logged-in session on the old configuration, and what it sees.
	old := opsLogin(t, oneAddr, "load450")
	before, err := old.Multi("RETR 1")
	if err != nil {
		t.Fatalf("RETR 1 before the reload: %v", err)
	}
	if !bytes.Contains(before, []byte("Subject: load message 1\r\n")) {
		t.Fatalf("RETR 1 of load450 is not load message 1:\n%.300s", before)
	}

	// New configuration: listener "one" removed, "two" added, and the
	// backend moved to Dovecot B.
	opsWriteConfig(t, p, opsReloadConfig("two", twoAddr, addrB))
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, "configuration reloaded", 10*time.Second)
	p.WaitLog(t, "listener removed", time.Second)
	if !opsRefused(oneAddr) {
		t.Errorf("removed listener %s still greets clients", oneAddr)
	}
	c := dialPOP(t, twoAddr)
	if !strings.Contains(c.Greeting, "popgate-it B ready.") {
		t.Errorf("added listener greets %q, want Dovecot B's greeting", c.Greeting)
	}
	opsCmdOK(t, c, "QUIT")

	// The open session still talks to Dovecot A (B has no user load450).
	after, err := old.Multi("RETR 1")
	if err != nil || !bytes.Equal(after, before) {
		t.Errorf("RETR 1 after the reload: %v; same octets as before: %v", err, bytes.Equal(after, before))
	}
	if line := opsCmdOK(t, old, "STAT"); !strings.HasPrefix(line, fmt.Sprintf("+OK %d ", opsLoadMsgs)) {
		t.Errorf("STAT after the reload = %q, want %d messages (Dovecot A's load450)", line, opsLoadMsgs)
	}
	opsCmdOK(t, old, "QUIT")

	// An invalid configuration is refused; the running one stays.
	opsWriteConfig(t, p, opsReloadConfig("three", freePort(t), addrA)+"listener \"bad\" {\n  address = \"127.0.0.1:1\"\n  tls = \"startls\"\n}\n")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	logs := p.WaitLog(t, "reload refused", 10*time.Second)
	refusal := logs[strings.Index(logs, "reload refused"):]
	if !strings.Contains(refusal, "startls") || !strings.Contains(refusal, `in listener "bad"`) {
		t.Errorf("the refusal does not show the diagnostics (the bad value and its line):\n%s", refusal)
	}
	c = dialPOP(t, twoAddr)
	if !strings.Contains(c.Greeting, "popgate-it B ready.") {
		t.Errorf("after a refused reload listener two greets %q, want Dovecot B's greeting", c.Greeting)
	}
	opsCmdOK(t, c, "QUIT")
	if !opsRefused(oneAddr) {
		t.Errorf("listener one came back after a refused reload")
	}
	select {
	case <-p.Done():
		t.Fatalf("popgate exited after a refused reload: %v", p.ExitErr())
	default:
	}
}

func TestOpsGracefulStop(t *testing.T) {
	t.Run("SessionFinishes", func(t *testing.T) {
		seedUser(t, "load458")
		addr := freePort(t)
		p := opsStart(t, "shutdown_timeout = \"30s\"\n"+opsReloadConfig("pop3", addr, envValue(t, "POP3_ADDR")))
		c := opsLogin(t, addr, "load458")
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		p.WaitLog(t, "shutting down", 5*time.Second)
		if d := opsWaitRefused(t, addr, 2*time.Second); d > time.Second {
			t.Errorf("the listener kept accepting for %v after SIGTERM", d)
		}
		if line := opsCmdOK(t, c, "STAT"); !strings.HasPrefix(line, "+OK 10 ") {
			t.Errorf("STAT while draining = %q", line)
		}
		if _, err := c.Multi("RETR 2"); err != nil {
			t.Errorf("RETR 2 while draining: %v", err)
		}
		select {
		case <-p.Done():
			t.Fatalf("popgate exited (%v) while a session was open", p.ExitErr())
		default:
		}
		opsCmdOK(t, c, "QUIT")
		if err := p.WaitExit(t, 10*time.Second); err != nil {
			t.Errorf("popgate exit after the last session quit: %v, want status 0", err)
		}
		p.WaitLog(t, "stopped", time.Second)
	})
	t.Run("DeadlineClosesWithoutQUIT", func(t *testing.T) {
		const user = "load451"
		seedUser(t, user)
		addr := freePort(t)
		p := opsStart(t, "shutdown_timeout = \"2s\"\n"+opsReloadConfig("pop3", addr, envValue(t, "POP3_ADDR")))
		w := watchLog(t, envValue(t, "DOVECOT_LOG"))
		c := opsLogin(t, addr, user)
		opsCmdOK(t, c, "DELE 1")
		start := time.Now()
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		got := opsReadToEOF(t, c, 10*time.Second)
		closed := time.Since(start)
		if closed < 1500*time.Millisecond || closed > 5*time.Second {
			t.Errorf("idle session closed %v after SIGTERM, want about shutdown_timeout (2s)", closed)
		}
		t.Logf("client saw %q, then EOF %v after SIGTERM", got, closed.Round(time.Millisecond))
		if err := p.WaitExit(t, 10*time.Second); err != nil {
			t.Errorf("popgate exit: %v, want status 0", err)
		}
		p.WaitLog(t, "shutdown deadline reached", time.Second)
		opsNoQuit(t, opsDovecotEnd(t, w, user, 10*time.Second))
		opsWantMailbox(t, user, opsLoadMsgs)
	})
}
