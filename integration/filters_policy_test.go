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
	if line, err := c.Cmd("TOP 10 0"); err == nil || !strings.HasPrefix(line, "-ERR") {
		t.Errorf("TOP 10 0 (%d octets, limit %d) = %q, want -ERR like RETR", sizes[10], limit, line)
	}
	if line, err := c.Cmd("RETR 99"); err == nil {
		t.Errorf("RETR 99 (no such message) = %q, want -ERR", line)
	}
	if _, err := c.Cmd("QUIT"); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
}

// fltListSizes returns the LIST sizes of user's messages on Dovecot A.
func fltListSizes(t *testing.T, user string) map[int]int {
	t.Helper()
	d := loginA(t, user)
	defer d.Cmd("QUIT")
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
	return sizes
}

// TestFilterPolicyTopMaxMessageSize checks that TOP cannot get round
// max_message_size: TOP of a message over the limit is refused whatever
// the line count (TOP n 9999999999 would send all of it; TOP n 0 too,
// since a header may be the whole payload), and TOP of a message within
// the limit is relayed byte for byte.
func TestFilterPolicyTopMaxMessageSize(t *testing.T) {
	const user = "load402"
	seedUser(t, user)
	sizes := fltListSizes(t, user)
	limit := sizes[5]
	if sizes[6] <= limit || sizes[4] >= limit {
		t.Fatalf("load message sizes %v do not grow with the number", sizes)
	}
	d := loginA(t, user)
	directTop, err := d.Multi("TOP 5 9999999999")
	if err != nil {
		t.Fatalf("direct TOP 5 9999999999: %v", err)
	}
	directHead, err := d.Multi("TOP 1 0")
	if err != nil {
		t.Fatalf("direct TOP 1 0: %v", err)
	}
	d.Cmd("QUIT")

	_, addr := fltStart(t, fmt.Sprintf("filter \"policy\" {\n  max_message_size = \"%d\"\n}\n", limit))
	c := fltLogin(t, addr, user)
	for _, cmd := range []string{"TOP 6 9999999999", "TOP 10 9999999999", "TOP 10 0", "TOP 6 1"} {
		line, err := c.Cmd(cmd)
		if err == nil || !strings.HasPrefix(line, "-ERR") {
			t.Fatalf("%s (limit %d, sizes %v) = %q, want -ERR", cmd, limit, sizes, line)
		}
		if !strings.Contains(line, "too large") {
			t.Errorf("%s refused with %q, want the size policy's answer", cmd, line)
		}
	}
	if top, err := c.Multi("TOP 5 9999999999"); err != nil || !bytes.Equal(top, directTop) {
		t.Errorf("TOP 5 9999999999 (at the limit): %v, %d octets; want %d octets as Dovecot sends them", err, len(top), len(directTop))
	}
	if top, err := c.Multi("TOP 1 0"); err != nil || !bytes.Equal(top, directHead) {
		t.Errorf("TOP 1 0 (within the limit): %v\n%s", err, top)
	}
	if line, err := c.Cmd("TOP 99 0"); err == nil {
		t.Errorf("TOP 99 0 (no such message) = %q, want -ERR", line)
	}
	if _, err := c.Cmd("QUIT"); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
}

// TestFilterPolicyDenyRetrDeniesTop checks that deny = ["RETR"] cannot be
// sidestepped with TOP: TOP is refused too and CAPA stops announcing it,
// while LIST, UIDL and the rest of the session go on.
func TestFilterPolicyDenyRetrDeniesTop(t *testing.T) {
	const user = "load403"
	seedUser(t, user)
	_, addr := fltStart(t, "filter \"policy\" {\n  deny = [\"RETR\"]\n}\n")
	c := fltLogin(t, addr, user)
	for _, cmd := range []string{"RETR 1", "TOP 1 9999999999", "TOP 1 0"} {
		line, err := c.Cmd(cmd)
		if err == nil || !strings.HasPrefix(line, "-ERR") || !strings.Contains(line, "not permitted by policy") {
			t.Fatalf("%s with deny = [\"RETR\"] = %q, want -ERR ... not permitted by policy", cmd, line)
		}
	}
	if capa, err := c.Multi("CAPA"); err != nil || bytes.Contains(capa, []byte("TOP\r\n")) {
		t.Errorf("CAPA with RETR denied still announces TOP (%v):\n%s", err, capa)
	}
	if _, err := c.Multi("LIST"); err != nil {
		t.Errorf("LIST after the refusals: %v", err)
	}
	if _, err := c.Cmd("QUIT"); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
}
