//go:build integration

package integration

// Helpers of every TestAuth test (auth_*_test.go), which drive
// authentication and routing through the real binary against real
// Dovecot. Every popgate runs at log level trace with an audit trail; at
// cleanup neither may contain any password, digest or SASL blob the test
// used (authRig).
//
// Dovecot's log is shared by every test, so each client here connects from
// its own loopback address (authIP) and backends forward it with XCLIENT:
// Dovecot's "Login: user=<u>, method=M, rip=IP," line then belongs to this
// client and no other.

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
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
