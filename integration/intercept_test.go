//go:build integration

package integration

// Interception tests (issue 13, item 5), on one machine with network
// namespaces (integration/netns/netns.sh, harness in
// intercept_netns_test.go): a client in namespace pgit-cli connects to the
// server's own address; nftables in the router namespace pgit-rtr diverts
// the connection into popgate (nat redirect for source 10.231.1.2, TPROXY
// for 10.231.1.3), and popgate connects to the server namespace's Dovecot,
// where the client meant to go. nftables counters count connections
// independently of popgate; Dovecot's rip= tells who really connected to
// it (it trusts no network, so no forwarded address can stand in).

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestIntercept brings the namespaces up once for all its subtests and
// tears them down at the end, also when a subtest fails.
func TestIntercept(t *testing.T) {
	ns := nsUp(t)
	t.Run("Redirect", func(t *testing.T) { testInterceptRedirect(t, ns) })
	t.Run("TProxySpoofSource", func(t *testing.T) { testInterceptTProxySpoof(t, ns) })
}

// interceptConfig returns a popgate configuration with one intercept
// listener on 0.0.0.0:port in mode, an original_destination backend with
// the given allow-list (HCL list body) and extra backend lines, an audit
// trail at auditPath, and clamd scanning over the unix socket.
func interceptConfig(t *testing.T, mode string, port int, allowed, backendExtra, auditPath string) string {
	return fmt.Sprintf(`state_dir = "./state"
log {
  level = "debug"
}
listener "intercept" {
  address   = "0.0.0.0:%d"
  intercept = %q
  connect   = "on-accept"
  backend   = "original"
}
backend "original" {
  original_destination = true
  allowed_destinations = [%s]
%s}
%s%s`, port, mode, allowed, backendExtra, fltAudit(auditPath, false),
		fltClamAV(fltClamdAddr(t, "unix"), "replace", "reject"))
}

// testInterceptRedirect runs the redirect-mode proofs against one popgate
// in the router namespace. Its allow-list admits the router's own client
// side network on every port, so that the loop subtests are refused by the
// implicit deny-list (popgate's own listening addresses, the host's own
// addresses), not by the allow-list.
func testInterceptRedirect(t *testing.T, ns map[string]string) {
	port := atoiEnv(t, ns, "NETNS_REDIRECT_PORT")
	audit := t.TempDir() + "/audit.jsonl"
	p := nsPopgate(t, ns["NETNS_ROUTER"],
		interceptConfig(t, "redirect", port, `"10.231.1.0/24", "10.231.2.0/24:110"`, "", audit), port)
	cli, src := ns["NETNS_CLIENT"], ns["NETNS_CLIENT_ADDR"]
	server := net.JoinHostPort(ns["NETNS_SERVER_ADDR"], "110")
	router := ns["NETNS_ROUTER"]

	// A plain POP3 session to the server's address is served by the
	// server's Dovecot through popgate: Dovecot sees the router as its
	// peer, and the audit trail records where the client was going.
	t.Run("Served", func(t *testing.T) {
		before := nsCounter(t, router, "redirect_in")
		dlog := watchLog(t, ns["NETNS_DOVECOT_LOG"])
		c := nsGreet(t, cli, src, server)
		if !strings.HasPrefix(c.Greeting, "+OK") || !strings.Contains(c.Greeting, ns["NETNS_GREETING"]) {
			t.Fatalf("greeting = %q, want the server Dovecot's +OK %q", c.Greeting, ns["NETNS_GREETING"])
		}
		if err := c.Login("alice", itPassword(t, "a", "alice")); err != nil {
			t.Fatalf("login alice: %v", err)
		}
		body, err := c.Multi("RETR 1")
		if err != nil {
			t.Fatalf("RETR 1: %v", err)
		}
		if want := expectedRETR(maildirMessages(t, ns["NETNS_MAIL_ROOT"], "alice")[0]); !bytes.Equal(body, want) {
			t.Errorf("RETR 1 through popgate: %d octets, differs from the server's message (%d octets)", len(body), len(want))
		}
		if _, err := c.Cmd("QUIT"); err != nil {
			t.Errorf("QUIT: %v", err)
		}
		if rip := nsLoginRIP(t, dlog, "alice"); rip != ns["NETNS_ROUTER_SERVER_SIDE_ADDR"] {
			t.Errorf("Dovecot saw alice from %s, want the router %s (the session did not go through popgate)", rip, ns["NETNS_ROUTER_SERVER_SIDE_ADDR"])
		}
		if n := nsCounter(t, router, "redirect_in") - before; n != 1 {
			t.Errorf("%d new connections reached popgate's port, want 1 (the redirected client)", n)
		}
		recs := fltSessionEnd(t, audit, c.Conn.LocalAddr().String())
		start := fltOne(t, recs, "session_start", nil, "session_start of the intercepted session")
		if got := start.str("original_dst"); got != server {
			t.Errorf("audit session_start original_dst = %q, want %q (the address the client dialled); record: %v", got, server, start)
		}
	})

	// An unmodified client, Python's poplib, run as its own process in
	// the client namespace: what it retrieves is the server's message.
	t.Run("PoplibClient", func(t *testing.T) {
		cmd := exec.Command("ip", "netns", "exec", cli, "python3", "-c", interceptPoplib, ns["NETNS_SERVER_ADDR"], src, "alice")
		cmd.Env = append(os.Environ(), "POP_PASSWORD="+itPassword(t, "a", "alice"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("poplib in %s: %v\n%s", cli, err, stderr.Bytes())
		}
		greeting, body, _ := bytes.Cut(out, []byte("\n"))
		if !bytes.HasPrefix(greeting, []byte("+OK")) || !bytes.Contains(greeting, []byte(ns["NETNS_GREETING"])) {
			t.Errorf("poplib saw the greeting %q, want the server Dovecot's", greeting)
		}
		if want := expectedRETR(maildirMessages(t, ns["NETNS_MAIL_ROOT"], "alice")[0]); !bytes.Equal(body, want) {
			t.Errorf("poplib's RETR 1: %d octets, differs from the server's message (%d octets)", len(body), len(want))
		}
	})

	// clamd (over its unix socket, reachable from the router namespace
	// because it is a file path) replaces the infected message; the
	// clean one before it arrives byte-exact.
	t.Run("ClamAVReplaces", func(t *testing.T) {
		msgs := maildirMessages(t, ns["NETNS_MAIL_ROOT"], "virus")
		if len(msgs) < 2 || !bytes.Contains(msgs[1], []byte(eicar())) {
			t.Fatalf("message 2 of virus on the server is not the EICAR message this test expects")
		}
		c := nsGreet(t, cli, src, server)
		if !strings.HasPrefix(c.Greeting, "+OK") {
			t.Fatalf("greeting = %q", c.Greeting)
		}
		if err := c.Login("virus", itPassword(t, "a", "virus")); err != nil {
			t.Fatalf("login virus: %v", err)
		}
		clean, err := c.Multi("RETR 1")
		if err != nil || !bytes.Equal(clean, expectedRETR(msgs[0])) {
			t.Errorf("RETR 1 (clean): %v, %d octets, want the server's %d octets", err, len(clean), len(expectedRETR(msgs[0])))
		}
		body, err := c.Multi("RETR 2")
		if err != nil {
			t.Fatalf("RETR 2 (infected): %v", err)
		}
		if bytes.Contains(body, []byte(eicarHalves[1])) {
			t.Errorf("RETR 2 through popgate still carries the EICAR string")
		}
		if !bytes.Contains(bytes.ToLower(body), []byte("virus")) {
			t.Errorf("RETR 2 is not a notice naming the virus:\n%s", body)
		}
		if _, err := c.Cmd("QUIT"); err != nil {
			t.Errorf("QUIT: %v", err)
		}
		p.WaitLog(t, "virus found", 5*time.Second)
	})

	// The same server under an address outside the allow-list: refused in
	// the greeting, logged, and the server never sees a connection.
	t.Run("DestinationNotAllowed", func(t *testing.T) {
		denied := net.JoinHostPort(ns["NETNS_SERVER_DENIED_ADDR"], "110")
		before := nsCounter(t, ns["NETNS_SERVER"], "pop3_denied")
		c := nsGreet(t, cli, src, denied)
		if !strings.HasPrefix(c.Greeting, "-ERR [SYS/PERM]") {
			t.Errorf("greeting for %s = %q, want -ERR [SYS/PERM]", denied, c.Greeting)
		}
		p.WaitLog(t, denied, 5*time.Second)
		if n := nsCounter(t, ns["NETNS_SERVER"], "pop3_denied") - before; n != 0 {
			t.Errorf("the server saw %d connections to %s, want 0", n, denied)
		}
	})

	// A connection straight to popgate's own port (not redirected; its
	// original destination is popgate itself) and one to the router's own
	// address on the intercepted port (redirected): both refused in the
	// greeting, and exactly one connection, the client's, ever reaches
	// popgate's port: no loop.
	for _, tc := range []struct{ name, dst string }{
		{"OwnListenerNoLoop", net.JoinHostPort(ns["NETNS_ROUTER_ADDR"], fmt.Sprint(port))},
		{"OwnAddressNoLoop", net.JoinHostPort(ns["NETNS_ROUTER_ADDR"], "110")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := nsCounter(t, router, "redirect_in")
			c := nsGreet(t, cli, src, tc.dst)
			if !strings.HasPrefix(c.Greeting, "-ERR [SYS/PERM]") {
				t.Errorf("greeting for %s = %q, want -ERR [SYS/PERM]", tc.dst, c.Greeting)
			}
			// popgate closes the refused session; by then a loop would
			// have dialled.
			if line, err := c.ReadLine(); err == nil {
				t.Errorf("after the refusal popgate sent %q, want the connection closed", line)
			}
			if n := nsCounter(t, router, "redirect_in") - before; n != 1 {
				t.Errorf("%d new connections reached popgate's port, want 1 (the client's; more means a loop)", n)
			}
		})
	}
}

// testInterceptTProxySpoof: TPROXY with spoof_source; popgate connects to
// the server from the client's own address, so Dovecot's rip= is the
// client namespace's address, while the audit trail and the TPROXY
// counter prove the session went through popgate.
func testInterceptTProxySpoof(t *testing.T, ns map[string]string) {
	port := atoiEnv(t, ns, "NETNS_TPROXY_PORT")
	audit := t.TempDir() + "/audit.jsonl"
	nsPopgate(t, ns["NETNS_ROUTER"],
		interceptConfig(t, "tproxy", port, `"10.231.2.0/24:110"`, "  spoof_source = true\n", audit), port)
	src := ns["NETNS_CLIENT_TPROXY_ADDR"]
	server := net.JoinHostPort(ns["NETNS_SERVER_ADDR"], "110")
	before := nsCounter(t, ns["NETNS_ROUTER"], "tproxy_in")
	dlog := watchLog(t, ns["NETNS_DOVECOT_LOG"])

	c := nsGreet(t, ns["NETNS_CLIENT"], src, server)
	if !strings.HasPrefix(c.Greeting, "+OK") || !strings.Contains(c.Greeting, ns["NETNS_GREETING"]) {
		t.Fatalf("greeting = %q, want the server Dovecot's +OK %q", c.Greeting, ns["NETNS_GREETING"])
	}
	if err := c.Login("alice", itPassword(t, "a", "alice")); err != nil {
		t.Fatalf("login alice: %v", err)
	}
	if _, err := c.Cmd("STAT"); err != nil {
		t.Errorf("STAT: %v", err)
	}
	if _, err := c.Cmd("QUIT"); err != nil {
		t.Errorf("QUIT: %v", err)
	}
	if rip := nsLoginRIP(t, dlog, "alice"); rip != src {
		t.Errorf("Dovecot saw alice from %s, want the client's own address %s (spoof_source)", rip, src)
	}
	if n := nsCounter(t, ns["NETNS_ROUTER"], "tproxy_in") - before; n != 1 {
		t.Errorf("TPROXY diverted %d new connections, want 1", n)
	}
	recs := fltSessionEnd(t, audit, c.Conn.LocalAddr().String())
	start := fltOne(t, recs, "session_start", nil, "session_start of the intercepted session")
	if got := start.str("original_dst"); got != server {
		t.Errorf("audit session_start original_dst = %q, want %q; record: %v", got, server, start)
	}
}

// interceptPoplib is a Python program: argv SERVER SOURCE USER, password in
// $POP_PASSWORD. It prints the greeting, a newline, and message 1 with
// CRLF line ends (poplib removes the dot-stuffing and the line ends).
const interceptPoplib = `import os, poplib, socket, sys
server, source, user = sys.argv[1:4]
class POP3From(poplib.POP3):
    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, source_address=(source, 0))
p = POP3From(server, 110, timeout=15)
greeting = p.getwelcome()
p.user(user)
p.pass_(os.environ["POP_PASSWORD"])
_, lines, _ = p.retr(1)
p.quit()
sys.stdout.buffer.write(greeting + b"\n" + b"".join(l + b"\r\n" for l in lines))
`

// atoiEnv returns the number under key in the namespace env.
func atoiEnv(t *testing.T, env map[string]string, key string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(env[key], &n); err != nil || n <= 0 {
		t.Fatalf("netns env %s = %q, want a port", key, env[key])
	}
	return n
}
