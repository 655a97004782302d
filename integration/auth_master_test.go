//go:build integration

package integration

// Master-user logins (README example 4): popgate logs in to Dovecot A's
// master passdb as popgate-master on behalf of the client, and Dovecot
// then checks nothing of the client's own. popgate must have verified the
// client's password itself (the apop filter's secrets file), for every
// mechanism, before any master login; and validate must refuse a master
// backend that no verifier guards.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAuthMasterLoginVerifiesClientPassword(t *testing.T) {
	// The secrets popgate checks differ from the Dovecot passwords, to
	// prove the check is popgate's: with a master login Dovecot checks no
	// mailbox password at all.
	const alicePW, bobPW = "alice-popgate-7c1e", "bob-popgate-5a2f"
	secrets := authSecretsFile(t, 0o600, "alice:"+alicePW, "bob:"+bobPW)
	addr := freePort(t)
	listener := fmt.Sprintf(`
listener "m" {
  address = %q
  connect = "after-auth"
  backend = "master"
  filters = ["audit", "apop"]
}
filter "apop" {
  secrets_file = %q
}
`, addr, secrets)
	backend := fmt.Sprintf(`
backend "master" {
  address         = %q
  login           = "sasl-plain"
  master_user     = %q
  master_password = %q
  forward_client  = "xclient"
}
`, envValue(t, "POP3_ADDR"), envValue(t, "MASTER_USER"), envValue(t, "MASTER_PASSWORD"))

	t.Run("validate-refuses-unverified-master", func(t *testing.T) {
		unguarded := strings.Replace(listener, `filters = ["audit", "apop"]`, `filters = ["audit"]`, 1)
		cfg := filepath.Join(t.TempDir(), "master.hcl")
		src := "filter \"audit\" {\n  path = \"-\"\n}\n" + unguarded + backend
		if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, buildPopgate(t), "validate", "-config", cfg).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("validate of a master backend without a verifier: %v, want exit status 1\n%s", err, out)
		}
		// The diagnostic points at the master_user line of the backend.
		line := 0
		for i, l := range strings.Split(src, "\n") {
			if strings.Contains(l, "master_user") {
				line = i + 1
			}
		}
		if !strings.Contains(string(out), fmt.Sprintf("line %d, in backend \"master\"", line)) || !strings.Contains(string(out), "password") {
			t.Fatalf("validate output does not point at master_user (line %d):\n%s", line, out)
		}
		// run refuses it too, before listening.
		p, err := tryStartPopgate(t, src, addr)
		if err == nil {
			t.Fatal("popgate run started with a master backend that nothing verifies")
		}
		if !strings.Contains(p.Logs(), "Master login without password check") {
			t.Fatalf("popgate run did not say why it refused to start:\n%s", p.Logs())
		}
	})

	r := authStart(t, listener+backend, addr)
	r.secret(alicePW, bobPW, "totally-wrong", envValue(t, "MASTER_PASSWORD"))
	dlog := watchLog(t, envValue(t, "DOVECOT_LOG"))

	t.Run("user-pass-right", func(t *testing.T) {
		ip := authIP()
		c := authDial(t, addr, ip)
		if err := c.Login("alice", alicePW); err != nil {
			t.Fatalf("login with the verified password: %v", err)
		}
		if n := authStat(t, c); n != 6 {
			t.Fatalf("alice has %d messages, want 6", n)
		}
		dlog.Wait(t, "user=<alice>, method=PLAIN, rip="+ip+",", 10*time.Second)
	})

	refused := func(t *testing.T, ip string, lines ...string) {
		t.Helper()
		c := authDial(t, addr, ip)
		var last string
		for _, l := range lines {
			var err error
			if last, err = c.Cmd(l); err != nil {
				break
			}
		}
		if !strings.HasPrefix(last, "-ERR") {
			t.Fatalf("login %q was not refused: last answer %q", lines, last)
		}
		if _, err := c.Cmd("STAT"); err == nil {
			t.Fatal("STAT answered +OK after a refused login")
		}
		if strings.Contains(dlog.Since(t), "rip="+ip+",") {
			t.Fatalf("Dovecot saw a login from %s: popgate logged in as master for an unverified client", ip)
		}
	}
	t.Run("user-pass-wrong", func(t *testing.T) { refused(t, authIP(), "USER alice", "PASS totally-wrong") })
	t.Run("user-pass-missing", func(t *testing.T) { refused(t, authIP(), "USER alice", "PASS") })
	t.Run("user-not-in-secrets", func(t *testing.T) { refused(t, authIP(), "USER big", "PASS "+alicePW) })
	t.Run("plain-wrong", func(t *testing.T) {
		refused(t, authIP(), "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00bob\x00x")))
	})
	t.Run("plain-foreign-authzid", func(t *testing.T) {
		refused(t, authIP(), "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("bob\x00alice\x00"+alicePW)))
	})
	t.Run("login-wrong", func(t *testing.T) {
		b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
		refused(t, authIP(), "AUTH LOGIN", b64("alice"), b64("totally-wrong"))
	})
	t.Run("plain-right", func(t *testing.T) {
		ip := authIP()
		c := authDial(t, addr, ip)
		line, err := c.Cmd("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00bob\x00"+bobPW)))
		if err != nil {
			t.Fatalf("AUTH PLAIN with the verified password: %v (%q)", err, line)
		}
		if n := authStat(t, c); n != 1000 {
			t.Fatalf("bob has %d messages, want 1000", n)
		}
	})
}
