//go:build integration

package integration

// Sanity tests of the environment itself (Dovecot A, B, C and clamd as
// started by start.sh), talking to the servers directly, without popgate.

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// loginA dials instance A's plain port and logs user in.
func loginA(t *testing.T, user string) *popClient {
	t.Helper()
	c := dialPOP(t, envValue(t, "POP3_ADDR"))
	if err := c.Login(user, itPassword(t, "a", user)); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// stat returns the message count and size from STAT.
func stat(t *testing.T, c *popClient) (int, int64) {
	t.Helper()
	line, err := c.Cmd("STAT")
	if err != nil {
		t.Fatalf("STAT: %v", err)
	}
	var n int
	var size int64
	if _, err := fmt.Sscanf(line, "+OK %d %d", &n, &size); err != nil {
		t.Fatalf("STAT reply %q: %v", line, err)
	}
	return n, size
}

func TestEnvAliceByteExact(t *testing.T) {
	c := loginA(t, "alice")
	files := maildirMessages(t, envValue(t, "MAIL_ROOT"), "alice")
	if len(files) != 6 {
		t.Fatalf("alice has %d message files, want 6", len(files))
	}
	list, err := c.Multi("LIST")
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(list), "\r\n"), "\r\n")
	if len(lines) != len(files) {
		t.Fatalf("LIST has %d lines, want %d:\n%s", len(lines), len(files), list)
	}
	for i, f := range files {
		if want := fmt.Sprintf("%d %d", i+1, len(f)); lines[i] != want {
			t.Errorf("LIST line %d = %q, want %q", i+1, lines[i], want)
		}
		body, err := c.Multi(fmt.Sprintf("RETR %d", i+1))
		if err != nil {
			t.Fatalf("RETR %d: %v", i+1, err)
		}
		if want := expectedRETR(f); !bytes.Equal(body, want) {
			t.Errorf("RETR %d: got %d octets, want %d\ngot:  %q\nwant: %q", i+1, len(body), len(want), body, want)
		}
	}
	// The edge cases are really there.
	for i, want := range map[int]string{
		1: "\r\n..two leading dots\r\n",
		2: "\r\n.\r\nafter the dot\r\n.\r\n",
		3: "\r\n" + strings.Repeat("0123456789", 99) + "abcdefgh\r\n",
		5: "Content-Disposition: attachment",
	} {
		if !bytes.Contains(files[i], []byte(want)) {
			t.Errorf("message %d lacks %q", i+1, want)
		}
	}
	if bytes.HasSuffix(files[4], []byte("\n")) {
		t.Errorf("message 5 ends with a line end; it must not")
	}
}

func TestEnvDotStuffingOnTheWire(t *testing.T) {
	c := loginA(t, "alice")
	if err := c.Write([]byte("RETR 3\r\n")); err != nil {
		t.Fatal(err)
	}
	if status, err := c.ReadLine(); err != nil || !strings.HasPrefix(status, "+OK") {
		t.Fatalf("RETR 3: %q, %v", status, err)
	}
	var raw []byte
	for !bytes.HasSuffix(raw, []byte("\r\n.\r\n")) {
		line, err := c.R.ReadBytes('\n')
		if err != nil {
			t.Fatalf("reading raw body: %v (so far %q)", err, raw)
		}
		raw = append(raw, line...)
	}
	if want := "\r\n\r\nbefore the dot\r\n..\r\nafter the dot\r\n..\r\n.\r\n"; !bytes.HasSuffix(raw, []byte(want)) {
		t.Errorf("raw RETR 3 ends %q, want suffix %q", raw[max(0, len(raw)-60):], want)
	}
}

func TestEnvUIDL(t *testing.T) {
	c := loginA(t, "alice")
	body, err := c.Multi("UIDL")
	if err != nil {
		t.Fatalf("UIDL: %v", err)
	}
	re := regexp.MustCompile(`^[1-6] [0-9A-Fa-f]{16}$`)
	lines := strings.Split(strings.TrimSuffix(string(body), "\r\n"), "\r\n")
	if len(lines) != 6 {
		t.Fatalf("UIDL has %d lines, want 6", len(lines))
	}
	for _, l := range lines {
		if !re.MatchString(l) {
			t.Errorf("UIDL line %q does not match %%08Xu%%08Xv", l)
		}
	}
}

func TestEnvXCLIENT(t *testing.T) {
	c := dialPOP(t, envValue(t, "POP3_ADDR"))
	if !strings.HasPrefix(c.Greeting, "+OK [XCLIENT] ") {
		t.Fatalf("instance A greeting %q lacks [XCLIENT]", c.Greeting)
	}
	if !regexp.MustCompile(`<[^<>]+@[^<>]+>$`).MatchString(c.Greeting) {
		t.Errorf("greeting %q has no APOP timestamp", c.Greeting)
	}
	b := dialPOP(t, envValue(t, "POP3B_ADDR"))
	if strings.Contains(b.Greeting, "XCLIENT") {
		t.Errorf("instance B greeting %q offers XCLIENT; B is meant not to trust anyone", b.Greeting)
	}
	w := watchLog(t, envValue(t, "DOVECOT_LOG"))
	if _, err := c.Cmd("XCLIENT ADDR=192.0.2.7 PORT=40007"); err != nil {
		t.Fatalf("XCLIENT: %v", err)
	}
	if err := c.Login("alice", itPassword(t, "a", "alice")); err != nil {
		t.Fatal(err)
	}
	w.Wait(t, "user=<alice>, method=PLAIN, rip=192.0.2.7,", 10*time.Second)
}

func TestEnvHAProxy(t *testing.T) {
	addr := envValue(t, "POP3_HAPROXY_ADDR")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := newPopClient(conn)
	t.Cleanup(func() { c.Close() })
	w := watchLog(t, envValue(t, "DOVECOT_LOG"))
	_, port, _ := net.SplitHostPort(addr)
	if err := c.Write([]byte("PROXY TCP4 198.51.100.9 127.0.0.1 40009 " + port + "\r\n")); err != nil {
		t.Fatal(err)
	}
	if c.Greeting, err = c.ReadLine(); err != nil || !strings.HasPrefix(c.Greeting, "+OK") {
		t.Fatalf("greeting after PROXY header: %q, %v", c.Greeting, err)
	}
	if err := c.Login("alice", itPassword(t, "a", "alice")); err != nil {
		t.Fatal(err)
	}
	w.Wait(t, "user=<alice>, method=PLAIN, rip=198.51.100.9,", 10*time.Second)
}

func TestEnvTLS(t *testing.T) {
	for _, name := range []string{"localhost", "127.0.0.1"} {
		c := dialPOPS(t, envValue(t, "POP3S_ADDR"), tlsClientConfig(t, name))
		if err := c.Login("alice", itPassword(t, "a", "alice")); err != nil {
			t.Errorf("POP3S as %s: %v", name, err)
		}
	}
	c := dialPOP(t, envValue(t, "POP3_ADDR"))
	capa, err := c.Multi("CAPA")
	if err != nil {
		t.Fatalf("CAPA: %v", err)
	}
	if !bytes.Contains(capa, []byte("\r\nSTLS\r\n")) && !bytes.HasPrefix(capa, []byte("STLS\r\n")) {
		t.Fatalf("CAPA lacks STLS:\n%s", capa)
	}
	if err := c.StartTLS(tlsClientConfig(t, "localhost")); err != nil {
		t.Fatal(err)
	}
	if err := c.Login("alice", itPassword(t, "a", "alice")); err != nil {
		t.Fatalf("login after STLS: %v", err)
	}
}

func TestEnvWrongName(t *testing.T) {
	wrong := envValue(t, "WRONG_NAME")
	// Implicit TLS: verification for "localhost" fails on the name only.
	_, err := tryDialPOP(envValue(t, "POP3S_WRONG_ADDR"), tlsClientConfig(t, "localhost"))
	var hostErr x509.HostnameError
	if !errors.As(err, &hostErr) {
		t.Fatalf("POP3S_WRONG_ADDR verified as localhost: err = %v, want a HostnameError", err)
	}
	// The same certificate verifies for its own name: only the name is wrong.
	c := dialPOPS(t, envValue(t, "POP3S_WRONG_ADDR"), tlsClientConfig(t, wrong))
	names := c.Conn.(*tls.Conn).ConnectionState().PeerCertificates[0].DNSNames
	if len(names) != 1 || names[0] != wrong {
		t.Errorf("wrong-name certificate names %v, want [%s]", names, wrong)
	}
	// STLS on instance C's plain port presents the same certificate.
	s := dialPOP(t, envValue(t, "POP3_WRONG_ADDR"))
	err = s.StartTLS(tlsClientConfig(t, "localhost"))
	if !errors.As(err, &hostErr) {
		t.Fatalf("STLS on POP3_WRONG_ADDR verified as localhost: err = %v, want a HostnameError", err)
	}
}

func TestEnvBackendB(t *testing.T) {
	seedUserB(t, "carol")
	for _, user := range []string{"alice", "carol"} {
		c := dialPOP(t, envValue(t, "POP3B_ADDR"))
		if err := c.Login(user, itPassword(t, "b", user)); err != nil {
			t.Fatalf("B login %s: %v", user, err)
		}
		body, err := c.Multi("RETR 1")
		if err != nil {
			t.Fatalf("B RETR 1 for %s: %v", user, err)
		}
		if !bytes.Contains(body, []byte("\r\nSubject: backend B: hello "+user+"\r\n")) {
			t.Errorf("B message of %s lacks the backend B subject:\n%s", user, body)
		}
		if n, _ := stat(t, c); n != 1 {
			t.Errorf("B mailbox of %s has %d messages, want 1", user, n)
		}
	}
	if a, b := itPassword(t, "a", "alice"), itPassword(t, "b", "alice"); a != b {
		t.Errorf("alice's password differs between A (%q) and B (%q)", a, b)
	}
}

func TestEnvMailboxes(t *testing.T) {
	for user, want := range map[string]int{"bob": 1000, "big": 1, "virus": 4, "spacey": 1, "load000": 10, "load999": 10} {
		c := loginA(t, user)
		if n, _ := stat(t, c); n != want {
			t.Errorf("%s has %d messages, want %d", user, n, want)
		}
		c.Cmd("QUIT")
	}
	if pw := itPassword(t, "a", "spacey"); !strings.Contains(pw, " ") {
		t.Errorf("spacey's password %q has no space", pw)
	}
	c := loginA(t, "big")
	line, err := c.Cmd("LIST 1")
	if err != nil || line != "+OK 1 "+strconv.Itoa(50<<20) {
		t.Errorf("big LIST 1 = %q, %v; want a 50 MiB message", line, err)
	}
	c = loginA(t, "bob")
	top, err := c.Multi("TOP 1000 0")
	if err != nil || !bytes.Contains(top, []byte("\r\nSubject: bob message 1000\r\n")) {
		t.Errorf("bob TOP 1000: %v\n%s", err, top)
	}
}

func TestEnvAPOP(t *testing.T) {
	c := dialPOP(t, envValue(t, "POP3_ADDR"))
	if err := c.APOP("alice", itPassword(t, "a", "alice")); err != nil {
		t.Fatal(err)
	}
	if n, _ := stat(t, c); n != 6 {
		t.Errorf("alice has %d messages after APOP, want 6", n)
	}
}

func TestEnvReseed(t *testing.T) {
	seedUser(t, "dele")
	w := watchLog(t, envValue(t, "DOVECOT_LOG"))
	c := loginA(t, "dele")
	if n, _ := stat(t, c); n != 5 {
		t.Fatalf("dele has %d messages after seeding, want 5", n)
	}
	if _, err := c.Cmd("DELE 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cmd("QUIT"); err != nil {
		t.Fatal(err)
	}
	open := loginA(t, "dele")
	if n, _ := stat(t, open); n != 4 {
		t.Fatalf("dele has %d messages after DELE and QUIT, want 4", n)
	}
	if _, err := open.Cmd("DELE 1"); err != nil {
		t.Fatal(err)
	}
	// Reseeding ends the open session, whose DELE must not reach the new
	// mailbox.
	seedUser(t, "dele")
	if line, err := open.Cmd("NOOP"); err == nil {
		t.Errorf("session open during reseed still answers NOOP: %q", line)
	}
	if n, _ := stat(t, loginA(t, "dele")); n != 5 {
		t.Fatalf("dele has %d messages after reseeding, want 5", n)
	}
	if log := w.Since(t); strings.Contains(log, "Error:") {
		t.Errorf("Dovecot logged errors around the reseed:\n%s", log)
	}
}

func TestEnvClamd(t *testing.T) {
	targets := [][2]string{{"tcp", envValue(t, "CLAMD_TCP")}, {"unix", envValue(t, "CLAMD_UNIX")}}
	for _, tg := range targets {
		if r, err := clamdPing(tg[0], tg[1]); err != nil || r != "PONG" {
			t.Errorf("PING over %s: %q, %v", tg[0], r, err)
		}
		r, err := clamdScan(tg[0], tg[1], strings.NewReader("header\r\n"+eicar()+"\r\ntrailer\r\n"))
		if err != nil || !strings.HasSuffix(r, " FOUND") {
			t.Errorf("scan of the EICAR string over %s: %q, %v; want ... FOUND", tg[0], r, err)
		}
		r, err = clamdScan(tg[0], tg[1], strings.NewReader("a perfectly clean string\r\n"))
		if err != nil || r != "stream: OK" {
			t.Errorf("scan of a clean string over %s: %q, %v; want stream: OK", tg[0], r, err)
		}
	}
	files := maildirFiles(t, envValue(t, "MAIL_ROOT"), "virus")
	if len(files) != 4 {
		t.Fatalf("virus has %d message files, want 4", len(files))
	}
	for i, wantFound := range []bool{false, true, false, false} {
		f, err := os.Open(files[i])
		if err != nil {
			t.Fatal(err)
		}
		r, err := clamdScan("tcp", envValue(t, "CLAMD_TCP"), f)
		f.Close()
		if err != nil || strings.HasSuffix(r, " FOUND") != wantFound {
			t.Errorf("scan of virus message %d: %q, %v; want FOUND = %v", i+1, r, err, wantFound)
		}
	}
}

func TestEnvBigRETR(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MiB transfer skipped in -short mode")
	}
	want := expectedRETR(maildirMessages(t, envValue(t, "MAIL_ROOT"), "big")[0])
	c := loginA(t, "big")
	body, err := c.Multi("RETR 1")
	if err != nil {
		t.Fatalf("RETR 1: %v", err)
	}
	if !bytes.Equal(body, want) {
		t.Fatalf("big RETR 1: got %d octets, want %d, equal prefix %d", len(body), len(want), commonPrefix(body, want))
	}
}

// commonPrefix returns the length of the common prefix of a and b.
func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}
