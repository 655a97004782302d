//go:build integration

package integration

// On-accept listeners relay AUTH to Dovecot, which runs the mechanism.
// popgate must still know whose mailbox is opened, for every mechanism
// that carries the name in the clear, and rewrite it: the audit trail and
// the log name the user for AUTH LOGIN and CRAM-MD5, and Dovecot logs in
// the rewritten name.

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestAuthPassthroughSASLNamesTheUser(t *testing.T) {
	addr := freePort(t)
	r := authStart(t, fmt.Sprintf(`
listener "oa" {
  address = %q
  connect = "on-accept"
  backend = "a"
}
filter "rewrite" {
  strip_domain = true
}
`, addr)+authBackendA(t), addr)
	pw := itPassword(t, "a", "alice")
	r.secret(pw)
	dlog := watchLog(t, envValue(t, "DOVECOT_LOG"))
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	unb64 := func(t *testing.T, line string) string {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(line, "+ "))
		if err != nil {
			t.Fatalf("challenge %q: %v", line, err)
		}
		return string(raw)
	}
	for _, tc := range []struct {
		mech   string
		method string // Dovecot's name
		run    func(t *testing.T, c *popClient)
	}{
		{"LOGIN", "LOGIN", func(t *testing.T, c *popClient) {
			for _, resp := range []string{"alice@example.org", pw} {
				if line, err := c.Cmd(b64(resp)); err != nil {
					t.Fatalf("LOGIN step: %q, %v", line, err)
				}
			}
		}},
		{"CRAM-MD5", "CRAM-MD5", func(t *testing.T, c *popClient) {
			mac := hmac.New(md5.New, []byte(pw))
			mac.Write([]byte(unb64(t, c.Last)))
			if line, err := c.Cmd(b64("alice@example.org " + hex.EncodeToString(mac.Sum(nil)))); err != nil {
				t.Fatalf("CRAM-MD5 response: %q, %v", line, err)
			}
		}},
	} {
		t.Run(tc.mech, func(t *testing.T) {
			ip := authIP()
			c := authDial(t, addr, ip)
			if line, err := c.Cmd("AUTH " + tc.mech); err != nil || !strings.HasPrefix(line, "+ ") {
				t.Fatalf("AUTH %s: %q, %v", tc.mech, line, err)
			}
			tc.run(t, c)
			if !strings.HasPrefix(c.Last, "+OK") {
				t.Fatalf("AUTH %s through popgate: %q", tc.mech, c.Last)
			}
			if n := authStat(t, c); n != 6 {
				t.Fatalf("alice has %d messages, want 6", n)
			}
			dlog.Wait(t, authLoginLine("alice", tc.method, ip), 10*time.Second)
			rec := authAuditAuth(t, r.Audit, ip, "ok")
			if rec["client_user"] != "alice@example.org" || rec["backend_user"] != "alice" || rec["mechanism"] != strings.ToLower(tc.mech) {
				t.Fatalf("audit auth record %v: want client_user alice@example.org, backend_user alice, mechanism %s",
					rec, strings.ToLower(tc.mech))
			}
			authWaitLine(t, r.P, 10*time.Second, "login", "user=alice@example.org", "backend_user=alice")
		})
	}
}
