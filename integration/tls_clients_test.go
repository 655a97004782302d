//go:build integration

package integration

// Real TLS clients through popgate: python3 poplib, curl and fetchmail,
// over STLS and implicit TLS, verifying the certificate against the test
// CA.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tlsPython is a python3 poplib client: STLS on a plain port (MODE=stls)
// or POP3_SSL (MODE=ssl), connecting to 127.0.0.1 while verifying the
// certificate for HOST; it writes RETR n to OUT.n for every message.
const tlsPython = `
import os, poplib, socket, ssl
host, port, mode, out = os.environ["HOST"], int(os.environ["PORT"]), os.environ["MODE"], os.environ["OUT"]
ctx = ssl.create_default_context(cafile=os.environ["CAFILE"])

class Plain(poplib.POP3):
    def _create_socket(self, timeout):
        return socket.create_connection(("127.0.0.1", self.port), timeout)

class Implicit(poplib.POP3_SSL):
    def _create_socket(self, timeout):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout)
        return self.context.wrap_socket(sock, server_hostname=self.host)

if mode == "stls":
    p = Plain(host, port, timeout=30)
    p.stls(ctx)
    assert "STLS" not in p.capa(), "CAPA after STLS offers STLS"
else:
    p = Implicit(host, port, context=ctx, timeout=30)
print("tls", p.sock.version())
p.user(os.environ["POP_USER"])
p.pass_(os.environ["POP_PASS"])
count, _ = p.stat()
for n in range(1, count + 1):
    resp, lines, octets = p.retr(n)
    with open(out + "." + str(n), "wb") as f:
        f.write(b"".join(l + b"\r\n" for l in lines))
p.quit()
print("done", count)
`

// tlsRun runs a client program with a one-minute timeout and returns its
// combined output; a failure is fatal.
func tlsRun(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestTLSClients drives popgate with python3 poplib, curl and fetchmail,
// over STLS (require_tls = true) and over implicit TLS, each verifying the
// certificate for pop.popgate.test against the test CA.
func TestTLSClients(t *testing.T) {
	pki, _, addrs := tlsSTLSConfig(t, true, "")
	pw := itPassword(t, "a", "alice")
	want := tlsAliceMessages(t)
	modes := []struct{ name, addr string }{{"stls", addrs[0]}, {"ssl", addrs[2]}}

	for _, m := range modes {
		t.Run("python/"+m.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "retr")
			got := tlsRun(t, []string{"HOST=" + tlsPopName, "PORT=" + tlsPort(m.addr), "MODE=" + m.name,
				"OUT=" + out, "CAFILE=" + pki.CAFile, "POP_USER=alice", "POP_PASS=" + pw},
				"python3", "-c", tlsPython)
			if !strings.Contains(got, "tls TLSv1.3") || !strings.Contains(got, fmt.Sprintf("done %d", len(want))) {
				t.Errorf("python output: %s", got)
			}
			for i, w := range want {
				body, err := os.ReadFile(fmt.Sprintf("%s.%d", out, i+1))
				if err != nil || !bytes.Equal(body, w) {
					t.Errorf("python RETR %d: %v, %d octets, want %d", i+1, err, len(body), len(w))
				}
			}
		})
	}

	netrc := filepath.Join(t.TempDir(), "netrc")
	if err := os.WriteFile(netrc, []byte("machine "+tlsPopName+" login alice password "+pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, m := range modes {
		t.Run("curl/"+m.name, func(t *testing.T) {
			scheme := map[string]string{"stls": "pop3", "ssl": "pop3s"}[m.name]
			for _, n := range []int{2, 3} {
				out := filepath.Join(t.TempDir(), "msg")
				tlsRun(t, nil, "curl", "-sS", "--ssl-reqd", "--max-time", "30", "--cacert", pki.CAFile,
					"--resolve", tlsPopName+":"+tlsPort(m.addr)+":127.0.0.1", "--netrc-file", netrc, "-o", out,
					fmt.Sprintf("%s://%s:%s/%d", scheme, tlsPopName, tlsPort(m.addr), n))
				body, err := os.ReadFile(out)
				if err != nil || !bytes.Equal(body, want[n-1]) {
					t.Errorf("curl RETR %d: %v, got %q, want %q", n, err, body, want[n-1])
				}
			}
			// The wrong name is refused by curl's verification.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "curl", "-sS", "--ssl-reqd", "--cacert", pki.CAFile,
				"--resolve", tlsOtherName+":"+tlsPort(m.addr)+":127.0.0.1", "--netrc-file", netrc,
				fmt.Sprintf("%s://%s:%s/1", scheme, tlsOtherName, tlsPort(m.addr)))
			if out, err := cmd.CombinedOutput(); err == nil {
				t.Errorf("curl accepted the certificate for %s:\n%s", tlsOtherName, out)
			}
		})
	}

	for _, m := range modes {
		t.Run("fetchmail/"+m.name, func(t *testing.T) {
			dir := t.TempDir()
			sink := filepath.Join(dir, "mbox")
			rc := filepath.Join(dir, "fetchmailrc")
			rcText := fmt.Sprintf("poll %s via 127.0.0.1 port %s protocol POP3 timeout 30\n  user \"alice\" there with password \"%s\" is \"root\" here\n",
				tlsPopName, tlsPort(m.addr), pw)
			if err := os.WriteFile(rc, []byte(rcText), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"-f", rc, "--nosyslog", "--keep", "--fetchall", "-v",
				"--sslcertck", "--sslcertfile", pki.CAFile, "--sslcommonname", tlsPopName,
				"--mda", "/bin/sh -c 'cat >> " + sink + "'"}
			if m.name == "ssl" {
				args = append(args, "--ssl")
			} else {
				args = append(args, "--sslproto", "TLS1.2+")
			}
			out := tlsRun(t, []string{"HOME=" + dir, "FETCHMAILHOME=" + dir}, "fetchmail", args...)
			if m.name == "stls" && !strings.Contains(out, "POP3> STLS") {
				t.Errorf("fetchmail did not use STLS:\n%s", out)
			}
			if !strings.Contains(out, "6 messages") {
				t.Errorf("fetchmail did not see alice's 6 messages:\n%s", out)
			}
			mbox, err := os.ReadFile(sink)
			if err != nil {
				t.Fatal(err)
			}
			// fetchmail delivers each message with LF line ends after a
			// three-line Received header of its own; the rest is the
			// message exactly.
			parts := strings.Split(string(mbox), "Received: from 127.0.0.1 ")
			if len(parts) != len(want)+1 || parts[0] != "" {
				t.Fatalf("fetchmail delivered %d messages, want %d:\n%s", len(parts)-1, len(want), mbox)
			}
			for i, w := range want {
				_, msg, _ := strings.Cut(parts[i+1], "\n\t")
				_, msg, _ = strings.Cut(msg, "\n\t")
				_, msg, _ = strings.Cut(msg, "\n")
				if lf := strings.ReplaceAll(string(w), "\r\n", "\n"); msg != lf {
					t.Errorf("fetched message %d:\n%q\nwant:\n%q", i+1, msg, lf)
				}
			}
		})
	}
}
