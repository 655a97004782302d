//go:build integration

package integration

// Authentication and routing through the real binary against real
// Dovecot: USER/PASS in after-auth mode, failures that do not tell whether
// a user exists, an unreachable backend, backend logins by APOP and SASL
// PLAIN, login rewriting, and routing between Dovecot A and B; and the
// helpers of every TestAuth test. Every popgate runs at log level
// trace with an audit trail; at cleanup neither may contain any password,
// digest or SASL blob the test used (authRig).
//
// Dovecot's log is shared by every test, so each client here connects from
// its own loopback address (authIP) and backends forward it with XCLIENT:
// Dovecot's "Login: user=<u>, method=M, rip=IP," line then belongs to this
// client and no other.

import (
	"bufio"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// authRig is one popgate process of a test, run at log level trace with an
// audit trail, and the secrets the test used with it.
type authRig struct {
	P     *Popgate
	Audit string // path of the audit trail

	mu      sync.Mutex
	secrets []string
}

// authStart starts popgate with body (listeners, backends, filters) after
// a preamble that sets log level trace and defines filter "audit" first,
// so listeners without a filters attribute audit everything. At cleanup,
// after popgate has stopped, its output and the audit file are searched
// for every registered secret.
func authStart(t *testing.T, body string, waitAddrs ...string) *authRig {
	t.Helper()
	r := &authRig{Audit: filepath.Join(t.TempDir(), "audit.jsonl")}
	t.Cleanup(func() { r.checkNoLeaks(t) }) // registered first: runs after popgate stopped
	cfg := fmt.Sprintf("state_dir = \"./state\"\nlog {\n  level = \"trace\"\n}\nfilter \"audit\" {\n  path = %q\n}\n", r.Audit) + body
	r.P = startPopgate(t, cfg, waitAddrs...)
	return r
}

// secret registers strings that must never appear in popgate's output or
// audit trail, each also in base64 (as a SASL client would send it).
func (r *authRig) secret(ss ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range ss {
		r.secrets = append(r.secrets, s, base64.StdEncoding.EncodeToString([]byte(s)))
	}
}

// checkNoLeaks fails the test if a registered secret is in the output or
// the audit trail. It also checks that both were really written, so the
// search is not vacuous.
func (r *authRig) checkNoLeaks(t *testing.T) {
	t.Helper()
	if r.P == nil {
		return
	}
	logs := r.P.Logs()
	audit, err := os.ReadFile(r.Audit)
	if err != nil {
		t.Errorf("audit trail: %v", err)
	}
	if !strings.Contains(logs, "[DEBUG]") && !strings.Contains(logs, "[TRACE]") {
		t.Errorf("popgate output has no DEBUG or TRACE line: log level trace not in effect?")
	}
	if !strings.Contains(string(audit), `"event":"session_start"`) {
		t.Errorf("audit trail has no session_start record")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, s := range r.secrets {
		if len(s) < 4 {
			continue
		}
		if strings.Contains(logs, s) {
			t.Errorf("LEAK: secret #%d (%q) appears in popgate's output", i, s)
		}
		if strings.Contains(string(audit), s) {
			t.Errorf("LEAK: secret #%d (%q) appears in the audit trail", i, s)
		}
	}
	t.Logf("no leak of %d secret strings in %d octets of output and %d of audit trail", len(r.secrets), len(logs), len(audit))
}

// authIPSeq and authIPNet make the client addresses of authIP.
var (
	authIPSeq atomic.Uint32
	authIPNet = 100 + rand.IntN(100) // second octet, per test binary
)

// authIP returns a loopback address (127.N.x.y) not used before by this
// test binary, for a client to connect from.
func authIP() string {
	n := authIPSeq.Add(1)
	return fmt.Sprintf("127.%d.%d.%d", authIPNet, n/200, n%200+10)
}

// authConn connects to addr from the local address ip, without reading.
func authConn(t *testing.T, addr, ip string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, ip, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// authDial connects to addr from ip and reads a +OK greeting.
func authDial(t *testing.T, addr, ip string) *popClient {
	t.Helper()
	c := newPopClient(authConn(t, addr, ip))
	c.Timeout = 30 * time.Second
	var err error
	if c.Greeting, err = c.ReadLine(); err != nil || !strings.HasPrefix(c.Greeting, "+OK") {
		t.Fatalf("greeting from %s: %q, %v", addr, c.Greeting, err)
	}
	return c
}

// authStat returns the message count of STAT.
func authStat(t *testing.T, c *popClient) int {
	t.Helper()
	line, err := c.Cmd("STAT")
	if err != nil {
		t.Fatalf("STAT: %v", err)
	}
	var n, size int
	if _, err := fmt.Sscanf(line, "+OK %d %d", &n, &size); err != nil {
		t.Fatalf("STAT reply %q: %v", line, err)
	}
	return n
}

// authTop returns the header of message n (TOP n 0).
func authTop(t *testing.T, c *popClient, n int) string {
	t.Helper()
	b, err := c.Multi(fmt.Sprintf("TOP %d 0", n))
	if err != nil {
		t.Fatalf("TOP %d: %v", n, err)
	}
	return string(b)
}

// authLoginLine is the Dovecot log line of a successful login of user by
// mechanism from the client address rip.
func authLoginLine(user, method, rip string) string {
	return fmt.Sprintf("Login: user=<%s>, method=%s, rip=%s,", user, method, rip)
}

// authWaitLine waits until one line of popgate's output contains every
// part, and returns it.
func authWaitLine(t *testing.T, p *Popgate, timeout time.Duration, parts ...string) string {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s, changed := p.logs.snapshot()
	lines:
		for _, line := range strings.Split(s, "\n") {
			for _, part := range parts {
				if !strings.Contains(line, part) {
					continue lines
				}
			}
			return line
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("popgate logged no line with all of %q within %v; output:\n%s", parts, timeout, p.Logs())
			return ""
		}
	}
}

// authAuditAuth waits for the audit trail's auth record of the client at
// ip with the given result ("ok" or "fail") and returns it. The trail is a
// file: polling is the only signal.
func authAuditAuth(t *testing.T, path, ip, result string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(data), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			if client, _ := rec["client"].(string); rec["event"] == "auth" && rec["result"] == result && strings.HasPrefix(client, ip+":") {
				return rec
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit trail %s has no auth record of %s with result %s:\n%s", path, ip, result, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// authSecretsFile writes an apop secrets file with the given mode.
func authSecretsFile(t *testing.T, mode os.FileMode, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "apop.secrets")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// authAPOPDigest is the APOP digest of RFC 1939 section 7.
func authAPOPDigest(timestamp, secret string) string {
	sum := md5.Sum([]byte(timestamp + secret))
	return hex.EncodeToString(sum[:])
}

// authTimestamp returns the <...> timestamp of a greeting.
func authTimestamp(t *testing.T, greeting string) string {
	t.Helper()
	ts := regexp.MustCompile(`<[^<>@\s]+@[^<>\s]+>`).FindString(greeting)
	if ts == "" {
		t.Fatalf("greeting %q has no APOP timestamp", greeting)
	}
	return ts
}

// authBackendA is backend "a": Dovecot A with the client's address
// forwarded by XCLIENT.
func authBackendA(t *testing.T) string {
	return fmt.Sprintf("backend \"a\" {\n  address        = %q\n  forward_client = \"xclient\"\n}\n", envValue(t, "POP3_ADDR"))
}

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

// authTap is a TCP relay in front of a backend that records what popgate
// sends to it, so a test can see the backend login on the wire.
type authTap struct {
	Addr string
	mu   sync.Mutex
	sent []byte
}

// authStartTap relays a free loopback port to target until cleanup.
func authStartTap(t *testing.T, target string) *authTap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tap := &authTap{Addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				in.Close()
				continue
			}
			conns.Store(in, true)
			conns.Store(out, true)
			wg.Add(2)
			go func() {
				defer wg.Done()
				io.Copy(io.MultiWriter(out, tapWriter{tap}), in)
				out.Close()
			}()
			go func() {
				defer wg.Done()
				io.Copy(in, out)
				in.Close()
			}()
		}
	}()
	return tap
}

type tapWriter struct{ tap *authTap }

func (w tapWriter) Write(p []byte) (int, error) {
	w.tap.mu.Lock()
	w.tap.sent = append(w.tap.sent, p...)
	w.tap.mu.Unlock()
	return len(p), nil
}

// Sent returns everything popgate sent through the tap so far.
func (tap *authTap) Sent() string {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	return string(tap.sent)
}

func TestAuthBackendLogin(t *testing.T) {
	apopTap, plainTap := authStartTap(t, envValue(t, "POP3_ADDR")), authStartTap(t, envValue(t, "POP3_ADDR"))
	la, lp := freePort(t), freePort(t)
	r := authStart(t, fmt.Sprintf(`
listener "la" {
  address = %q
  connect = "after-auth"
  backend = "apop"
}
listener "lp" {
  address = %q
  connect = "after-auth"
  backend = "plain"
}
backend "apop" {
  address        = %q
  login          = "apop"
  forward_client = "xclient"
}
backend "plain" {
  address        = %q
  login          = "sasl-plain"
  forward_client = "xclient"
}
`, la, lp, apopTap.Addr, plainTap.Addr), la, lp)
	pw := itPassword(t, "a", "alice")
	plainBlob := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00" + pw))
	r.secret(pw, plainBlob)
	dlog := envValue(t, "DOVECOT_LOG")

	for _, tc := range []struct {
		name, addr, method string
		tap                *authTap
		wire               string // must be on the backend wire
	}{
		{"apop", la, "APOP", apopTap, "\r\nAPOP alice "},
		{"sasl-plain", lp, "PLAIN", plainTap, "\r\nAUTH PLAIN " + plainBlob + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ip := authIP()
			w := watchLog(t, dlog)
			c := authDial(t, tc.addr, ip)
			if err := c.Login("alice", pw); err != nil {
				t.Fatal(err)
			}
			if n := authStat(t, c); n != 6 {
				t.Errorf("alice has %d messages, want 6", n)
			}
			w.Wait(t, authLoginLine("alice", tc.method, ip), 10*time.Second)
			sent := tc.tap.Sent()
			if !strings.Contains(sent, "XCLIENT ADDR="+ip+" ") || !strings.Contains(sent, tc.wire) {
				t.Errorf("backend wire lacks XCLIENT and %q:\n%q", tc.wire, sent)
			}
			if strings.Contains(sent, "USER ") || strings.Contains(sent, "PASS ") {
				t.Errorf("backend login %s used USER/PASS:\n%q", tc.name, sent)
			}
			if tc.name == "apop" && strings.Contains(sent, pw) {
				t.Errorf("login = apop sent the password itself to the backend:\n%q", sent)
			}
		})
	}
}

func TestAuthRewrite(t *testing.T) {
	mapFile := filepath.Join(t.TempDir(), "logins.map")
	if err := os.WriteFile(mapFile, []byte("# client login   backend login\nboss@corp.test   alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ls := map[string]string{"strip": freePort(t), "add": freePort(t), "lower": freePort(t), "map": freePort(t)}
	var body strings.Builder
	for _, name := range []string{"strip", "add", "lower", "map"} {
		fmt.Fprintf(&body, "listener %q {\n  address = %q\n  connect = \"after-auth\"\n  backend = \"a\"\n  filters = [\"audit\", %q]\n}\n", name, ls[name], name)
	}
	fmt.Fprintf(&body, `
filter "rewrite" {
  name         = "strip"
  strip_domain = true
}
filter "rewrite" {
  name       = "add"
  add_domain = "example.test"
}
filter "rewrite" {
  name      = "lower"
  lowercase = true
}
filter "rewrite" {
  name     = "map"
  map_file = %q
}
`, mapFile)
	body.WriteString(authBackendA(t))
	r := authStart(t, body.String(), ls["strip"], ls["add"], ls["lower"], ls["map"])
	pw := itPassword(t, "a", "alice")
	r.secret(pw)
	dlog := envValue(t, "DOVECOT_LOG")

	for _, tc := range []struct {
		listener, login, backendUser string
		ok                           bool
	}{
		{"strip", "alice@example.test", "alice", true},
		{"lower", "ALICE", "alice", true},
		{"map", "Boss@Corp.test", "alice", true},
		// Dovecot A knows no alice@example.test: its auth log proves the
		// name it was asked for.
		{"add", "alice", "alice@example.test", false},
	} {
		t.Run(tc.listener, func(t *testing.T) {
			t.Parallel()
			ip := authIP()
			w := watchLog(t, dlog)
			c := authDial(t, ls[tc.listener], ip)
			err := c.Login(tc.login, pw)
			if tc.ok {
				if err != nil {
					t.Fatalf("login as %s: %v", tc.login, err)
				}
				if n := authStat(t, c); n != 6 {
					t.Errorf("%s reached a mailbox with %d messages, want alice's 6", tc.login, n)
				}
				w.Wait(t, authLoginLine(tc.backendUser, "PLAIN", ip), 10*time.Second)
			} else {
				if !strings.HasPrefix(c.Last, "-ERR [AUTH] ") {
					t.Fatalf("login as %s: %q, %v; want -ERR [AUTH]", tc.login, c.Last, err)
				}
				w.Wait(t, fmt.Sprintf("passwd-file(%s,%s,", tc.backendUser, ip), 10*time.Second)
			}
			result := map[bool]string{true: "ok", false: "fail"}[tc.ok]
			rec := authAuditAuth(t, r.Audit, ip, result)
			if rec["client_user"] != tc.login || rec["backend_user"] != tc.backendUser {
				t.Errorf("audit auth record %v: want client_user %q, backend_user %q", rec, tc.login, tc.backendUser)
			}
			authWaitLine(t, r.P, 10*time.Second, "client="+ip+":", "user="+tc.login)
		})
	}
}

func TestAuthRouting(t *testing.T) {
	routes := filepath.Join(t.TempDir(), "routes")
	if err := os.WriteFile(routes, []byte("# user backend\nbob b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plain, strip := freePort(t), freePort(t)
	r := authStart(t, fmt.Sprintf(`
listener "plain" {
  address = %q
  connect = "after-auth"
  backend = "a"
  filters = ["audit"]
}
listener "strip" {
  address = %q
  connect = "after-auth"
  backend = "a"
  filters = ["audit", "rewrite"]
}
filter "rewrite" {
  strip_domain = true
}
backend "b" {
  address = %q
}
route {
  user    = "carol*"
  backend = "b"
}
route {
  user    = "bob"
  backend = "a"
}
route_map {
  file = %q
}
`, plain, strip, envValue(t, "POP3B_ADDR"), routes)+authBackendA(t), plain, strip)

	for _, tc := range []struct {
		name, listener, login, instance, user, backend, subject string
	}{
		{"alice-default", plain, "alice", "a", "alice", "a", "Subject: plain hello"},
		{"carol-route", plain, "carol", "b", "carol", "b", "Subject: backend B: hello carol"},
		// route_map comes before the route blocks that send bob to A.
		{"bob-route-map", plain, "bob", "b", "bob", "b", "Subject: backend B: hello bob"},
		// Routing sees the rewritten name.
		{"carol-rewritten", strip, "carol@example.test", "b", "carol", "b", "Subject: backend B: hello carol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pw := itPassword(t, tc.instance, tc.user)
			r.secret(pw)
			ip := authIP()
			c := authDial(t, tc.listener, ip)
			if err := c.Login(tc.login, pw); err != nil {
				t.Fatalf("login %s: %v", tc.login, err)
			}
			if top := authTop(t, c, 1); !strings.Contains(top, "\r\n"+tc.subject+"\r\n") {
				t.Errorf("%s: message 1 lacks %q:\n%s", tc.login, tc.subject, top)
			}
			if rec := authAuditAuth(t, r.Audit, ip, "ok"); rec["backend"] != tc.backend {
				t.Errorf("audit auth record %v: want backend %q", rec, tc.backend)
			}
			authWaitLine(t, r.P, 10*time.Second, "login:", "client="+ip+":", "backend="+tc.backend+" ")
		})
	}
}
