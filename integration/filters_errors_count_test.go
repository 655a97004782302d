//go:build integration

package integration

// max_errors counts only the client's own protocol errors: refusals from
// the scanner, the policy filter or the backend must never close a
// session, or the DELEs the client made are lost.

import (
	"fmt"
	"strings"
	"testing"
)

func TestFilterRefusalsDoNotCloseTheSession(t *testing.T) {
	closed := freePort(t) // clamd "down": nothing listens there
	_, addr := fltStart(t, fltClamAV("tcp://"+closed, "replace", "reject", `timeout = "5s"`)+`
filter "policy" {
  max_message_size = "1KiB"
}
`)
	seedUser(t, "dele")
	w := watchLog(t, envValue(t, "DOVECOT_LOG"))
	c := fltLogin(t, addr, "dele")
	if _, err := c.Cmd("DELE 1"); err != nil {
		t.Fatalf("DELE 1: %v", err)
	}
	// Well over max_errors (5) refusals that are not the client's fault:
	// scanner down, no such message.
	for i := 0; i < 4; i++ {
		for _, cmd := range []string{fmt.Sprintf("RETR %d", 2+i), "RETR 99"} {
			line, err := c.Cmd(cmd)
			if err == nil || !strings.HasPrefix(line, "-ERR") {
				t.Fatalf("%s with clamd down: %q, %v; want -ERR", cmd, line, err)
			}
		}
	}
	if _, err := c.Cmd("QUIT"); err != nil {
		t.Fatalf("QUIT after %d refusals: %v; the session was closed and the DELE lost", 8, err)
	}
	coreWaitDovecotEnd(t, w, "dele", func(line string) bool { return strings.Contains(line, "del=1/5") })
	if n := fltStat(t, "dele"); n != 4 {
		t.Fatalf("dele has %d messages after DELE 1 and QUIT, want 4", n)
	}
}
