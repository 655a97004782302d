//go:build integration

package integration

// Helpers of the operations tests (ops_*_test.go, the fault injection
// tests in ops_faults_test.go included): starting popgate without probing
// its listeners, load users reseeded with the 50 MiB message, mailbox and
// Dovecot log checks, logins, body hashes, configuration snippets and
// waiting for a listener to close. Tests that change mailboxes use
// load450..load499 only, reseeded first.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// opsBigName is the Maildir name under which opsSeedBig adds the 50 MiB
// message of user big to a load user's mailbox: it sorts after the ten
// messages of the load template, so it is message opsBigMsg.
const (
	opsBigName  = "1700000010.M11P1.popgate:2,"
	opsBigMsg   = 11
	opsLoadMsgs = 10
)

// opsStart starts popgate on configHCL without probing its listeners (a
// probe would open a session, and so a backend connection, of its own) and
// waits for the "popgate started" log line, written once every listener
// is bound.
func opsStart(t *testing.T, configHCL string) *Popgate {
	t.Helper()
	p := startPopgate(t, configHCL)
	p.WaitLog(t, "popgate started", readyTimeout)
	return p
}

// opsSeedBig reseeds load user user and adds the 50 MiB message of user big
// (a hard link to its template) as message opsBigMsg.
func opsSeedBig(t *testing.T, user string) {
	t.Helper()
	seedUser(t, user)
	src := filepath.Join(envValue(t, "TEMPLATE_DIR"), "big", "1700000000.M1P1.popgate:2,")
	dst := filepath.Join(envValue(t, "MAIL_ROOT"), user, "Maildir", "cur", opsBigName)
	if err := os.Link(src, dst); err != nil {
		t.Fatalf("add the 50 MiB message to %s: %v", user, err)
	}
}

// opsMailbox returns the message files of user on instance A by their
// Maildir base names (without the ":2,FLAGS" info Dovecot may change).
func opsMailbox(t *testing.T, user string) []string {
	t.Helper()
	var names []string
	for _, p := range maildirFiles(t, envValue(t, "MAIL_ROOT"), user) {
		name, _, _ := strings.Cut(filepath.Base(p), ":")
		names = append(names, name)
	}
	return names
}

// opsWantMailbox fails unless user still has n messages, the first one
// included (every fault test DELEs message 1 before it strikes).
func opsWantMailbox(t *testing.T, user string, n int) {
	t.Helper()
	got := opsMailbox(t, user)
	if len(got) != n || got[0] != "1700000000.M1P1.popgate" {
		t.Errorf("mailbox of %s holds %d messages %v; want %d, message 1 included (nothing deleted)", user, len(got), got, n)
	}
}

// opsDovecotEnd waits until Dovecot A logs the end of a mail session of
// user after w was started, and returns the reason text ("Connection
// closed top=... del=0/10 ...", "Logged out ..."). Only then is the mailbox
// state final: a session that QUITs expunges before it logs this.
func opsDovecotEnd(t *testing.T, w *logWatch, user string, timeout time.Duration) string {
	t.Helper()
	re := regexp.MustCompile(`pop3\(` + regexp.QuoteMeta(user) + `\)<[^>]*><[^>]*>: Info: Disconnected: ([^\n]*)`)
	deadline := time.Now().Add(timeout)
	for {
		s := w.Since(t)
		if m := re.FindStringSubmatch(s); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("Dovecot logged no end of %s's session within %v; new log:\n%s", user, timeout, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// opsNoQuit fails if Dovecot's end-of-session reason shows a QUIT (the
// UPDATE state) rather than a dropped connection.
func opsNoQuit(t *testing.T, reason string) {
	t.Helper()
	if strings.HasPrefix(reason, "Logged out") || !strings.Contains(reason, "del=0/") {
		t.Errorf("Dovecot session ended %q; want a closed connection without QUIT (del=0/N)", reason)
	}
}

// opsLogin dials addr and logs user of instance A in.
func opsLogin(t *testing.T, addr, user string) *popClient {
	t.Helper()
	c := dialPOP(t, addr)
	if err := c.Login(user, itPassword(t, "a", user)); err != nil {
		t.Fatalf("login %s via %s: %v", user, addr, err)
	}
	return c
}

// opsCmdOK sends a one-line command and fails unless the answer is +OK.
func opsCmdOK(t *testing.T, c *popClient, cmd string) string {
	t.Helper()
	line, err := c.Cmd(cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return line
}

// opsReadToEOF reads whatever arrives until the peer closes, within
// timeout, and returns it; a timeout is fatal.
func opsReadToEOF(t *testing.T, c *popClient, timeout time.Duration) []byte {
	t.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(timeout))
	var b bytes.Buffer
	_, err := io.Copy(&b, c.R)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection not closed within %v: %v (read %d octets)", timeout, err, b.Len())
	}
	return b.Bytes()
}

// opsHashBody reads a multi-line body to its terminator in constant memory
// and returns the SHA-256 and length of the un-stuffed octets.
func opsHashBody(c *popClient) ([32]byte, int64, error) {
	h := sha256.New()
	var n int64
	lineStart := true
	for {
		c.deadline()
		frag, err := c.R.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return [32]byte{}, n, bodyErr(err)
		}
		whole := err == nil
		if lineStart {
			if whole && string(frag) == ".\r\n" {
				var sum [32]byte
				copy(sum[:], h.Sum(nil))
				return sum, n, nil
			}
			if frag[0] == '.' {
				frag = frag[1:]
			}
		}
		h.Write(frag)
		n += int64(len(frag))
		lineStart = whole
	}
}

// opsDirectHash fetches message msg of user straight from Dovecot A and
// returns its SHA-256 and length.
func opsDirectHash(t *testing.T, user string, msg int) ([32]byte, int64) {
	t.Helper()
	c := opsLogin(t, envValue(t, "POP3_ADDR"), user)
	opsCmdOK(t, c, fmt.Sprintf("RETR %d", msg))
	sum, n, err := opsHashBody(c)
	if err != nil {
		t.Fatalf("direct RETR %d of %s: %v", msg, user, err)
	}
	opsCmdOK(t, c, "QUIT")
	return sum, n
}

// opsBackendA is the backend block of Dovecot A, named "main".
func opsBackendA(t *testing.T) string {
	return fmt.Sprintf("backend \"main\" {\n  address = %q\n}\n", envValue(t, "POP3_ADDR"))
}

// opsWriteConfig rewrites p's configuration file in place.
func opsWriteConfig(t *testing.T, p *Popgate, configHCL string) {
	t.Helper()
	if err := os.WriteFile(p.ConfigPath, []byte(configHCL), 0o600); err != nil {
		t.Fatalf("rewrite config: %v", err)
	}
}

// opsRefused reports whether addr refuses connections, or accepts and
// closes them without a greeting.
func opsRefused(addr string) bool {
	c, err := tryDialPOP(addr, nil)
	if err != nil {
		var pe *popError
		return !errors.As(err, &pe)
	}
	c.Close()
	return false
}

// opsWaitRefused waits (bounded) until addr stops accepting clients.
func opsWaitRefused(t *testing.T, addr string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for !opsRefused(addr) {
		if time.Since(start) > within {
			t.Fatalf("%s still greets clients %v later", addr, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// opsDeadAddr returns a loopback address nothing listens on.
func opsDeadAddr(t *testing.T) string { return freePort(t) }

// opsReloadConfig is a configuration with one listener at addr in front of
// backend "main" at backendAddr.
func opsReloadConfig(name, addr, backendAddr string) string {
	return fmt.Sprintf("listener %q {\n  address = %q\n  backend = \"main\"\n}\nbackend \"main\" {\n  address = %q\n}\n",
		name, addr, backendAddr)
}
