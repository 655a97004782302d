//go:build integration

package integration

// End-to-end tests of the policy filter: a denied command never reaches
// the backend, and max_message_size refuses larger messages while the
// session goes on.

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// TestFilterPolicyDeny denies DELE: the command is refused with -ERR
// without reaching the backend, and after QUIT the message is still there.
func TestFilterPolicyDeny(t *testing.T) {
	const user = "load400"
	seedUser(t, user)
	_, addr := fltStart(t, "filter \"policy\" {\n  deny = [\"DELE\"]\n}\n")
	c := fltLogin(t, addr, user)
	line, err := c.Cmd("DELE 1")
	if err == nil || !strings.HasPrefix(line, "-ERR") {
		t.Fatalf("DELE 1 = %q, want -ERR", line)
	}
	if !strings.Contains(line, "DELE") {
		t.Errorf("DELE refusal %q does not say which command was refused", line)
	}
	if _, err := c.Cmd("NOOP"); err != nil {
		t.Errorf("NOOP after the refusal: %v", err)
	}
	if capa, err := c.Multi("CAPA"); err == nil && bytes.Contains(capa, []byte("\r\nDELE")) {
		t.Errorf("CAPA announces DELE:\n%s", capa)
	}
	if _, err := c.Cmd("QUIT"); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
	if n := fltStat(t, user); n != 10 {
		t.Errorf("%s has %d messages after DELE 1 and QUIT, want all 10", user, n)
	}
}

// TestFilterPolicyMaxMessageSize sets max_message_size to the LIST size of
// message 5 of a load user: RETR of messages up to that size works (byte
// exact), RETR of larger ones is refused with -ERR, and the session goes
// on.
func TestFilterPolicyMaxMessageSize(t *testing.T) {
	const user = "load401"
	seedUser(t, user)
	d := loginA(t, user)
	list, err := d.Multi("LIST")
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[int]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(list)), "\r\n") {
		var n, s int
		if _, err := fmt.Sscanf(l, "%d %d", &n, &s); err != nil {
			t.Fatalf("LIST line %q: %v", l, err)
		}
		sizes[n] = s
	}
	d.Cmd("QUIT")
	limit := sizes[5]
	if sizes[6] <= limit || sizes[4] >= limit {
		t.Fatalf("load message sizes %v do not grow with the number", sizes)
	}
	direct, _ := fltDirect(t, user, 1, 5)
	_, addr := fltStart(t, fmt.Sprintf("filter \"policy\" {\n  max_message_size = \"%d\"\n}\n", limit))
	c := fltLogin(t, addr, user)
	for _, n := range []int{1, 5} {
		body, err := c.Multi(fmt.Sprintf("RETR %d", n))
		if err != nil || !bytes.Equal(body, direct[n]) {
			t.Errorf("RETR %d (%d octets, limit %d): %v, %d octets; want the message", n, sizes[n], limit, err, len(body))
		}
	}
	for _, n := range []int{6, 10} {
		line, err := c.Cmd(fmt.Sprintf("RETR %d", n))
		if err == nil || !strings.HasPrefix(line, "-ERR") {
			t.Fatalf("RETR %d (%d octets, limit %d) = %q, want -ERR", n, sizes[n], limit, line)
		}
	}
	if top, err := c.Multi("TOP 10 0"); err != nil || !bytes.Contains(top, []byte("Subject: load message 10\r\n")) {
		t.Errorf("TOP 10 0 (not limited): %v\n%s", err, top)
	}
	if line, err := c.Cmd("RETR 99"); err == nil {
		t.Errorf("RETR 99 (no such message) = %q, want -ERR", line)
	}
	if _, err := c.Cmd("QUIT"); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
}
