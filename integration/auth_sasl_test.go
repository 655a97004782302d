//go:build integration

package integration

// SASL (RFC 5034) from clients in after-auth mode, with popgate as the
// server until the backend login: PLAIN (RFC 4616), LOGIN, CRAM-MD5
// (RFC 2195, through the apop filter), cancelling, malformed responses,
// abandoned exchanges and require_tls; APOP (RFC 1939 section 7) verified
// by popgate's apop filter, and passed through to Dovecot in on-accept
// mode; then real clients: curl, fetchmail and python3's poplib.

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// authB64 is standard base64.
func authB64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// authCRAM answers a CRAM-MD5 continuation line "+ base64(challenge)".
func authCRAM(t *testing.T, cont, user, secret string) string {
	t.Helper()
	challenge, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(cont, "+ "))
	if err != nil || !strings.HasPrefix(cont, "+ ") {
		t.Fatalf("CRAM-MD5 continuation %q: %v", cont, err)
	}
	if !strings.HasPrefix(string(challenge), "<") || !strings.HasSuffix(string(challenge), ">") || !strings.Contains(string(challenge), "@") {
		t.Errorf("CRAM-MD5 challenge %q is not <...@host>", challenge)
	}
	mac := hmac.New(md5.New, []byte(secret))
	mac.Write(challenge)
	return authB64(user + " " + hex.EncodeToString(mac.Sum(nil)))
}

// authSASLListener is an after-auth listener with the apop filter (for
// CRAM-MD5) in front of Dovecot A; aliceSecrets is the apop secrets file.
func authSASLListener(t *testing.T, addr, aliceSecrets string) string {
	return fmt.Sprintf(`
listener "aa" {
  address = %q
  connect = "after-auth"
  backend = "a"
}
filter "apop" {
  secrets_file = %q
}
`, addr, aliceSecrets) + authBackendA(t)
}

func TestAuthSASL(t *testing.T) {
	pw := itPassword(t, "a", "alice")
	addr, stls := freePort(t), freePort(t)
	r := authStart(t, authSASLListener(t, addr, authSecretsFile(t, 0o600, "alice:"+pw))+fmt.Sprintf(`
listener "stls" {
  address = %q
  tls     = "starttls"
  connect = "after-auth"
  backend = "a"
  filters = ["audit"]
}
tls {
  certificate {
    cert_file = %q
    key_file  = %q
  }
}
`, stls, envValue(t, "DOVECOT_CERT"), envValue(t, "DOVECOT_KEY")), addr, stls)
	plain := authB64("\x00alice\x00" + pw)
	r.secret(pw, plain)
	dlog := envValue(t, "DOVECOT_LOG")

	// login checks that c is logged in to alice's mailbox on Dovecot A
	// from ip by mechanism (popgate's name), and Dovecot saw USER/PASS.
	login := func(t *testing.T, c *popClient, w *logWatch, ip, mechanism string) {
		t.Helper()
		if n := authStat(t, c); n != 6 {
			t.Errorf("alice has %d messages, want 6", n)
		}
		w.Wait(t, authLoginLine("alice", "PLAIN", ip), 10*time.Second)
		authWaitLine(t, r.P, 10*time.Second, "login:", "client="+ip+":", "mechanism="+mechanism)
		if rec := authAuditAuth(t, r.Audit, ip, "ok"); rec["mechanism"] != mechanism || rec["client_user"] != "alice" {
			t.Errorf("audit auth record %v, want mechanism %s, client_user alice", rec, mechanism)
		}
	}

	t.Run("capa-and-list", func(t *testing.T) {
		t.Parallel()
		c := authDial(t, addr, authIP())
		capa, err := c.Multi("CAPA")
		if err != nil || !strings.Contains(string(capa), "\r\nSASL PLAIN LOGIN CRAM-MD5\r\n") {
			t.Errorf("CAPA: %v\n%s", err, capa)
		}
		mechs, err := c.Multi("AUTH")
		if err != nil || string(mechs) != "PLAIN\r\nLOGIN\r\nCRAM-MD5\r\n" {
			t.Errorf("bare AUTH: %q, %v; want PLAIN, LOGIN, CRAM-MD5", mechs, err)
		}
	})

	t.Run("plain-initial-response", func(t *testing.T) {
		t.Parallel()
		ip := authIP()
		w := watchLog(t, dlog)
		c := authDial(t, addr, ip)
		if _, err := c.Cmd("AUTH PLAIN " + plain); err != nil {
			t.Fatal(err)
		}
		login(t, c, w, ip, "plain")
	})

	t.Run("plain-no-initial-response", func(t *testing.T) {
		t.Parallel()
		ip := authIP()
		w := watchLog(t, dlog)
		c := authDial(t, addr, ip)
		if line, err := c.Cmd("AUTH PLAIN"); err != nil || line != "+ " {
			t.Fatalf("AUTH PLAIN: %q, %v; want the empty continuation \"+ \"", line, err)
		}
		if _, err := c.Cmd(plain); err != nil {
			t.Fatal(err)
		}
		login(t, c, w, ip, "plain")
	})

	// "=" is a zero-length initial response (RFC 5034 section 4), not a
	// missing one: PLAIN's single message is then empty and invalid (RFC
	// 4616), so no continuation follows. Dovecot answers it the same way.
	// The session goes on with a PLAIN exchange that does continue.
	t.Run("plain-empty-initial-response", func(t *testing.T) {
		t.Parallel()
		ip := authIP()
		w := watchLog(t, dlog)
		c := authDial(t, addr, ip)
		if line, _ := c.Cmd("AUTH PLAIN ="); !strings.HasPrefix(line, "-ERR") {
			t.Fatalf("AUTH PLAIN =: %q, want -ERR (an empty PLAIN message)", line)
		}
		if line, err := c.Cmd("AUTH PLAIN"); err != nil || line != "+ " {
			t.Fatalf("AUTH PLAIN: %q, %v", line, err)
		}
		if _, err := c.Cmd(plain); err != nil {
			t.Fatal(err)
		}
		login(t, c, w, ip, "plain")
	})

	t.Run("login", func(t *testing.T) {
		t.Parallel()
		ip := authIP()
		w := watchLog(t, dlog)
		c := authDial(t, addr, ip)
		if line, err := c.Cmd("AUTH LOGIN"); err != nil || line != "+ "+authB64("Username:") {
			t.Fatalf("AUTH LOGIN: %q, %v", line, err)
		}
		if line, err := c.Cmd(authB64("alice")); err != nil || line != "+ "+authB64("Password:") {
			t.Fatalf("LOGIN user name: %q, %v", line, err)
		}
		if _, err := c.Cmd(authB64(pw)); err != nil {
			t.Fatal(err)
		}
		login(t, c, w, ip, "login")
	})

	t.Run("cram-md5", func(t *testing.T) {
		t.Parallel()
		ip := authIP()
		w := watchLog(t, dlog)
		c := authDial(t, addr, ip)
		cont, err := c.Cmd("AUTH CRAM-MD5")
		if err != nil {
			t.Fatal(err)
		}
		resp := authCRAM(t, cont, "alice", pw)
		r.secret(resp)
		if _, err := c.Cmd(resp); err != nil {
			t.Fatal(err)
		}
		login(t, c, w, ip, "cram-md5")
	})

	t.Run("cancel-then-login", func(t *testing.T) {
		t.Parallel()
		ip := authIP()
		c := authDial(t, addr, ip)
		if line, err := c.Cmd("AUTH PLAIN"); err != nil || line != "+ " {
			t.Fatalf("AUTH PLAIN: %q, %v", line, err)
		}
		if line, _ := c.Cmd("*"); !strings.HasPrefix(line, "-ERR") {
			t.Fatalf("cancel: %q, want -ERR", line)
		}
		if line, err := c.Cmd("AUTH CRAM-MD5"); err != nil || !strings.HasPrefix(line, "+ ") {
			t.Fatalf("AUTH CRAM-MD5: %q, %v", line, err)
		}
		if line, _ := c.Cmd("*"); !strings.HasPrefix(line, "-ERR") {
			t.Fatalf("cancel CRAM-MD5: %q, want -ERR", line)
		}
		if _, err := c.Cmd("AUTH PLAIN " + plain); err != nil {
			t.Fatalf("login after two cancels: %v", err)
		}
		if n := authStat(t, c); n != 6 {
			t.Errorf("alice has %d messages, want 6", n)
		}
	})

	t.Run("malformed-base64", func(t *testing.T) {
		t.Parallel()
		c := authDial(t, addr, authIP())
		if line, _ := c.Cmd("AUTH PLAIN %%%not-base64%%%"); !strings.HasPrefix(line, "-ERR") {
			t.Errorf("AUTH PLAIN with bad base64: %q, want -ERR", line)
		}
		if line, err := c.Cmd("AUTH LOGIN"); err != nil || !strings.HasPrefix(line, "+ ") {
			t.Fatalf("AUTH LOGIN: %q, %v", line, err)
		}
		if line, _ := c.Cmd("!!"); !strings.HasPrefix(line, "-ERR") {
			t.Errorf("bad base64 in a continuation: %q, want -ERR", line)
		}
		// Still a working session, not desynchronised.
		if _, err := c.Multi("CAPA"); err != nil {
			t.Errorf("CAPA after malformed SASL: %v", err)
		}
	})

	t.Run("abandoned", func(t *testing.T) {
		t.Parallel()
		ip := authIP()
		c := authDial(t, addr, ip)
		if line, err := c.Cmd("AUTH LOGIN"); err != nil || !strings.HasPrefix(line, "+ ") {
			t.Fatalf("AUTH LOGIN: %q, %v", line, err)
		}
		c.Close() // halfway: popgate waits for the user name
		line := authWaitLine(t, r.P, 10*time.Second, "session ended", "client="+ip+":")
		t.Logf("popgate: %s", line)
		if !strings.Contains(line, "reason=client-closed") {
			t.Fatalf("a client that hangs up during a SASL continuation ends with %q; want reason=client-closed", line)
		}
	})

	t.Run("require-tls", func(t *testing.T) {
		t.Parallel()
		ip := authIP()
		w := watchLog(t, dlog)
		c := authDial(t, stls, ip)
		capa, err := c.Multi("CAPA")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(capa), "SASL") || strings.Contains(string(capa), "USER") || !strings.Contains(string(capa), "STLS\r\n") {
			t.Errorf("CAPA before STLS offers logins or lacks STLS:\n%s", capa)
		}
		if line, _ := c.Cmd("AUTH PLAIN " + plain); !strings.HasPrefix(line, "-ERR") {
			t.Errorf("AUTH before STLS: %q, want -ERR", line)
		}
		if err := c.StartTLS(tlsClientConfig(t, "localhost")); err != nil {
			t.Fatal(err)
		}
		capa, err = c.Multi("CAPA")
		if err != nil || !strings.Contains(string(capa), "\r\nSASL PLAIN LOGIN\r\n") || strings.Contains(string(capa), "STLS") {
			t.Errorf("CAPA after STLS: %v\n%s", err, capa)
		}
		if _, err := c.Cmd("AUTH PLAIN " + plain); err != nil {
			t.Fatalf("AUTH PLAIN after STLS: %v", err)
		}
		if n := authStat(t, c); n != 6 {
			t.Errorf("alice has %d messages, want 6", n)
		}
		w.Wait(t, authLoginLine("alice", "PLAIN", ip), 10*time.Second)
	})
}

// authRun runs a client program with a timeout and returns its output.
func authRun(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// authPrivateFile writes a file only its owner may read.
func authPrivateFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// authPoplibScript is python3 poplib logging in as alice (USER/PASS or
// APOP, argv[1]) from $SRC to $HOST:$PORT with the password in $PW, and
// printing message 1.
const authPoplibScript = `
import os, poplib, socket, sys
class P(poplib.POP3):
    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, source_address=(os.environ["SRC"], 0))
p = P(os.environ["HOST"], int(os.environ["PORT"]), timeout=30)
print("greeting:", p.getwelcome().decode())
if sys.argv[1] == "user":
    p.user("alice")
    p.pass_(os.environ["PW"])
else:
    p.apop("alice", os.environ["PW"])
resp, lines, octets = p.retr(1)
print("\n".join(l.decode() for l in lines))
p.quit()
`

func TestAuthClients(t *testing.T) {
	pw := itPassword(t, "a", "alice")
	aa, oa := freePort(t), freePort(t)
	r := authStart(t, authSASLListener(t, aa, authSecretsFile(t, 0o600, "alice:"+pw))+fmt.Sprintf(`
listener "oa" {
  address = %q
  backend = "a"
  filters = ["audit"]
}
`, oa), aa, oa)
	r.secret(pw)
	dlog := envValue(t, "DOVECOT_LOG")
	const subject = "Subject: plain hello"
	curlCfg := authPrivateFile(t, "curl.cfg", fmt.Sprintf("user = \"alice:%s\"\n", pw))

	for _, tc := range []struct {
		name, listener, options string
		mechanism               string // popgate's, after-auth
		dovecot                 string // Dovecot's method, on-accept
	}{
		{"after-auth-plain", aa, "AUTH=PLAIN", "plain", ""},
		{"after-auth-login", aa, "AUTH=LOGIN", "login", ""},
		{"after-auth-cram-md5", aa, "AUTH=CRAM-MD5", "cram-md5", ""},
		{"after-auth-apop", aa, "AUTH=+APOP", "apop", ""},
		{"on-accept-apop", oa, "AUTH=+APOP", "", "APOP"},
		{"on-accept-cram-md5", oa, "AUTH=CRAM-MD5", "", "CRAM-MD5"},
		{"on-accept-plain", oa, "AUTH=PLAIN", "", "PLAIN"},
	} {
		t.Run("curl-"+tc.name, func(t *testing.T) {
			t.Parallel()
			ip := authIP()
			w := watchLog(t, dlog)
			out, err := authRun(t, nil, "curl", "-sS", "--max-time", "30", "-K", curlCfg, "--interface", ip,
				"--login-options", tc.options, "pop3://"+tc.listener+"/1")
			if err != nil || !strings.Contains(out, subject) {
				t.Fatalf("curl %s: %v\n%s", tc.options, err, out)
			}
			if tc.mechanism != "" {
				authWaitLine(t, r.P, 10*time.Second, "login:", "client="+ip+":", "mechanism="+tc.mechanism)
				w.Wait(t, authLoginLine("alice", "PLAIN", ip), 10*time.Second)
			} else {
				w.Wait(t, authLoginLine("alice", tc.dovecot, ip), 10*time.Second)
			}
		})
	}

	// fetchmail cannot choose its source address: it runs first, alone,
	// so popgate's only APOP login of alice so far is fetchmail's.
	t.Run("fetchmail-apop", func(t *testing.T) {
		home := t.TempDir()
		mbox := filepath.Join(home, "mbox")
		_, port, _ := strings.Cut(aa, ":")
		rc := authPrivateFile(t, "fetchmailrc", fmt.Sprintf(
			"poll 127.0.0.1 service %s protocol apop\n  user \"alice\" there with password \"%s\" is \"root\" here\n", port, pw))
		out, err := authRun(t, []string{"HOME=" + home, "FETCHMAILHOME=" + home}, "fetchmail",
			"-f", rc, "--nosyslog", "--keep", "--all", "--mda", "cat >> "+mbox, "--pidfile", filepath.Join(home, "pid"))
		if err != nil {
			t.Fatalf("fetchmail: %v\n%s", err, out)
		}
		got, err := os.ReadFile(mbox)
		if err != nil {
			t.Fatalf("fetchmail delivered nothing: %v\n%s", err, out)
		}
		for _, s := range []string{"plain hello", "leading dots", "lone dot lines", "998 octet line", "no final newline", "Subject: "} {
			if !strings.Contains(string(got), s) {
				t.Errorf("fetchmail's delivery lacks %q", s)
			}
		}
		if n := strings.Count(string(got), "\nSubject: "); n != 6 {
			t.Errorf("fetchmail delivered %d messages, want 6", n)
		}
		authWaitLine(t, r.P, 10*time.Second, "login:", "user=alice", "listener=aa", "mechanism=apop")
		if n := len(regexp.MustCompile(`popgate: login: .*mechanism=apop`).FindAllString(r.P.Logs(), -1)); n != 1 {
			t.Errorf("popgate logged %d APOP logins, want fetchmail's one", n)
		}
		if strings.Contains(out, pw) {
			t.Errorf("fetchmail printed the password")
		}
	})

	for _, tc := range []struct{ name, listener, mode, dovecot, mechanism string }{
		{"poplib-user-after-auth", aa, "user", "PLAIN", "user"},
		{"poplib-apop-after-auth", aa, "apop", "PLAIN", "apop"},
		{"poplib-apop-on-accept", oa, "apop", "APOP", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ip := authIP()
			w := watchLog(t, dlog)
			host, port, _ := strings.Cut(tc.listener, ":")
			out, err := authRun(t, []string{"SRC=" + ip, "HOST=" + host, "PORT=" + port, "PW=" + pw},
				"python3", "-c", authPoplibScript, tc.mode)
			if err != nil || !strings.Contains(out, subject) {
				t.Fatalf("poplib %s: %v\n%s", tc.mode, err, out)
			}
			w.Wait(t, authLoginLine("alice", tc.dovecot, ip), 10*time.Second)
			if tc.mechanism != "" {
				authWaitLine(t, r.P, 10*time.Second, "login:", "client="+ip+":", "mechanism="+tc.mechanism)
			}
		})
	}
}

func TestAuthAPOP(t *testing.T) {
	pw := itPassword(t, "a", "alice")
	secrets := authSecretsFile(t, 0o600, "alice:"+pw)
	aa, oa := freePort(t), freePort(t)
	body := fmt.Sprintf(`
listener "aa" {
  address = %q
  connect = "after-auth"
  backend = "a"
}
listener "oa" {
  address = %q
  backend = "a"
  filters = ["audit", "apop"]
}
filter "apop" {
  secrets_file = %q
}
`, aa, oa, secrets) + authBackendA(t)

	t.Run("validate-mode", func(t *testing.T) {
		dir := t.TempDir()
		loose := authSecretsFile(t, 0o644, "alice:"+pw)
		cfg := filepath.Join(dir, "loose.hcl")
		src := "filter \"audit\" {\n  path = \"-\"\n}\n" + strings.Replace(body, secrets, loose, 1)
		if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, buildPopgate(t), "validate", "-config", cfg).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("validate with a 0644 secrets file: %v, want exit status 1\n%s", err, out)
		}
		if !strings.Contains(string(out), loose) {
			t.Errorf("validate does not name the secrets file:\n%s", out)
		}
		if strings.Contains(string(out), pw) {
			t.Errorf("LEAK: validate printed the secret:\n%s", out)
		}
		if err := os.Chmod(loose, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.CommandContext(ctx, buildPopgate(t), "validate", "-config", cfg).CombinedOutput(); err != nil {
			t.Errorf("validate with the file at 0600: %v\n%s", err, out)
		}
	})

	r := authStart(t, body, aa, oa)
	r.secret(pw)
	dlog := envValue(t, "DOVECOT_LOG")

	t.Run("fresh-timestamps", func(t *testing.T) {
		c1, c2 := authDial(t, aa, authIP()), authDial(t, aa, authIP())
		ts1, ts2 := authTimestamp(t, c1.Greeting), authTimestamp(t, c2.Greeting)
		if ts1 == ts2 {
			t.Errorf("two connections got the same timestamp %s", ts1)
		}
		if !regexp.MustCompile(`^\+OK .*<[^<>]+@[^<>]+>$`).MatchString(c1.Greeting) {
			t.Errorf("greeting %q does not end with the timestamp", c1.Greeting)
		}
	})

	t.Run("right-digest", func(t *testing.T) {
		ip := authIP()
		w := watchLog(t, dlog)
		c := authDial(t, aa, ip)
		d := authAPOPDigest(authTimestamp(t, c.Greeting), pw)
		r.secret(d)
		if _, err := c.Cmd("APOP alice " + d); err != nil {
			t.Fatalf("APOP: %v", err)
		}
		if n := authStat(t, c); n != 6 {
			t.Errorf("alice has %d messages, want 6", n)
		}
		// popgate verified the digest and logged in with USER/PASS, which
		// Dovecot reports as method=PLAIN.
		w.Wait(t, authLoginLine("alice", "PLAIN", ip), 10*time.Second)
		authWaitLine(t, r.P, 10*time.Second, "login:", "client="+ip+":", "mechanism=apop")
		if rec := authAuditAuth(t, r.Audit, ip, "ok"); rec["mechanism"] != "apop" {
			t.Errorf("audit auth record %v, want mechanism apop, result ok", rec)
		}
	})

	// Failures are answered by popgate without asking Dovecot.
	var mu sync.Mutex
	answers := map[string]string{}
	t.Run("failures", func(t *testing.T) {
		for _, name := range []string{"wrong-digest", "unknown-user", "replayed-digest"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				c := authDial(t, aa, authIP())
				ts := authTimestamp(t, c.Greeting)
				var cmd string
				switch name {
				case "wrong-digest":
					cmd = "APOP alice " + authAPOPDigest(ts, "not-the-password")
				case "unknown-user":
					cmd = "APOP nosuchuser " + authAPOPDigest(ts, pw)
				case "replayed-digest": // right for another connection's timestamp
					other := authDial(t, aa, authIP())
					d := authAPOPDigest(authTimestamp(t, other.Greeting), pw)
					r.secret(d)
					cmd = "APOP alice " + d
				}
				line, _ := c.Cmd(cmd)
				if !strings.HasPrefix(line, "-ERR [AUTH] ") {
					t.Errorf("%s: %q, want -ERR [AUTH]", name, line)
				}
				mu.Lock()
				answers[name] = line
				mu.Unlock()
			})
		}
	})
	if answers["wrong-digest"] != answers["unknown-user"] || answers["wrong-digest"] != answers["replayed-digest"] {
		t.Errorf("APOP failures differ: %q", answers)
	}

	t.Run("on-accept-passthrough", func(t *testing.T) {
		ip := authIP()
		w := watchLog(t, dlog)
		c := authDial(t, oa, ip)
		if !strings.Contains(c.Greeting, "popgate-it A ready.") || strings.Contains(c.Greeting, "[XCLIENT]") {
			t.Errorf("on-accept greeting %q: want Dovecot's, without [XCLIENT]", c.Greeting)
		}
		d := authAPOPDigest(authTimestamp(t, c.Greeting), pw)
		r.secret(d)
		if _, err := c.Cmd("APOP alice " + d); err != nil {
			t.Fatalf("APOP with Dovecot's timestamp: %v", err)
		}
		if n := authStat(t, c); n != 6 {
			t.Errorf("alice has %d messages, want 6", n)
		}
		w.Wait(t, authLoginLine("alice", "APOP", ip), 10*time.Second)
	})
}
