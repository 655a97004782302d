//go:build integration

package integration

// End-to-end tests of popgate's core relay: the real binary with one
// on-accept and one after-auth listener in front of Dovecot A's plain
// port, compared byte for byte with a direct connection to Dovecot, driven
// by the harness's client, pipelined bursts, python3 poplib and curl.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// coreRSSLimit bounds popgate's resident memory in every test.
const coreRSSLimit = 100 << 20

// coreProxy is a running popgate with one listener per connect mode, both
// in front of Dovecot A's plain port.
type coreProxy struct {
	p     *Popgate
	modes []coreMode
}

// coreMode is one listener of a coreProxy.
type coreMode struct {
	name string // "on-accept" or "after-auth"
	addr string
}

// coreStart starts popgate with an on-accept and an after-auth listener
// (with a generous connect_timeout: Dovecot A is shared with other tests);
// extra is HCL added at the top level (e.g. a limits block). At cleanup,
// before popgate is stopped, it checks that the process is still alive
// and never logged a panic.
func coreStart(t *testing.T, extra string) *coreProxy {
	t.Helper()
	oa, aa := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`state_dir = "./state"
%s
listener "oa" {
  address = %q
  connect = "on-accept"
  backend = "a"
}
listener "aa" {
  address = %q
  connect = "after-auth"
  backend = "a"
}
backend "a" {
  address         = %q
  connect_timeout = "30s"
}
`, extra, oa, aa, envValue(t, "POP3_ADDR"))
	p := startPopgate(t, cfg, oa, aa)
	t.Cleanup(func() { coreCheckAlive(t, p) })
	return &coreProxy{p: p, modes: []coreMode{{"on-accept", oa}, {"after-auth", aa}}}
}

// coreCheckAlive fails the test if popgate has exited or logged a panic.
func coreCheckAlive(t testing.TB, p *Popgate) {
	t.Helper()
	select {
	case <-p.Done():
		t.Errorf("popgate exited during the test: %v", p.ExitErr())
	default:
	}
	if strings.Contains(strings.ToLower(p.Logs()), "panic") {
		t.Errorf("popgate logged a panic:\n%s", p.Logs())
	}
}

// coreReadRSS returns the resident set size of process pid, in octets.
func coreReadRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read VmRSS: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// coreRSS is coreReadRSS with failures fatal.
func coreRSS(t testing.TB, pid int) int64 {
	t.Helper()
	rss, err := coreReadRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	return rss
}

// coreCheckRSS fails the test if popgate's RSS is over coreRSSLimit.
func coreCheckRSS(t testing.TB, p *Popgate, when string) {
	t.Helper()
	if rss := coreRSS(t, p.Cmd.Process.Pid); rss > coreRSSLimit {
		t.Errorf("%s: popgate RSS %d MiB, want < %d MiB", when, rss>>20, coreRSSLimit>>20)
	}
}

// coreLogin connects to addr and logs user (of Dovecot A) in with USER/PASS.
func coreLogin(t testing.TB, addr, user string) *popClient {
	t.Helper()
	c := dialPOP(t, addr)
	if err := c.Login(user, itPassword(t, "a", user)); err != nil {
		t.Fatalf("login %s at %s: %v", user, addr, err)
	}
	return c
}

// coreDirect logs user in directly at Dovecot A, without popgate.
func coreDirect(t testing.TB, user string) *popClient {
	t.Helper()
	return coreLogin(t, envValue(t, "POP3_ADDR"), user)
}

// coreHasBody says whether a +OK answer to cmd carries a multi-line body.
func coreHasBody(cmd string) bool {
	f := strings.Fields(strings.ToUpper(cmd))
	if len(f) == 0 {
		return false
	}
	switch f[0] {
	case "RETR", "TOP", "CAPA":
		return true
	case "LIST", "UIDL":
		return len(f) == 1
	}
	return false
}

// coreEOF turns EOF in the middle of something into io.ErrUnexpectedEOF.
func coreEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// coreReadResp reads one response exactly as it is on the wire: the status
// line with its CRLF and, for +OK when hasBody, the body through its
// terminator with the dot-stuffing kept, all written to w.
func coreReadResp(r *bufio.Reader, hasBody bool, w io.Writer) (status string, err error) {
	status, err = r.ReadString('\n')
	if err != nil {
		return status, fmt.Errorf("read status line: %w", coreEOF(err))
	}
	if !strings.HasSuffix(status, "\r\n") {
		return status, fmt.Errorf("status line %q: %w", status, errBareLF)
	}
	io.WriteString(w, status)
	if !hasBody || !strings.HasPrefix(status, "+OK") {
		return status, nil
	}
	atStart := true
	for {
		frag, err := r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return status, fmt.Errorf("read body: %w", coreEOF(err))
		}
		w.Write(frag)
		if atStart && err == nil && string(frag) == ".\r\n" {
			return status, nil
		}
		atStart = err == nil
	}
}

// coreExchange sends cmd and returns the raw response (status line and
// body with stuffing and terminator). Failures are fatal.
func coreExchange(t testing.TB, c *popClient, cmd string) []byte {
	t.Helper()
	if err := c.Write([]byte(cmd + "\r\n")); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	var b bytes.Buffer
	c.Conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
	if _, err := coreReadResp(c.R, coreHasBody(cmd), &b); err != nil {
		t.Fatalf("%s: %v (got so far %q)", cmd, err, coreTrunc(b.Bytes()))
	}
	return b.Bytes()
}

// coreUnstuff returns the body of a raw +OK response: status line and
// terminator removed, stuffed dots removed.
func coreUnstuff(raw []byte) []byte {
	_, body, _ := bytes.Cut(raw, []byte("\r\n"))
	body = bytes.TrimSuffix(body, []byte(".\r\n"))
	var out []byte
	for len(body) > 0 {
		line, rest, found := bytes.Cut(body, []byte("\r\n"))
		if bytes.HasPrefix(line, []byte(".")) {
			line = line[1:]
		}
		out = append(out, line...)
		if found {
			out = append(out, '\r', '\n')
		}
		body = rest
	}
	return out
}

// coreTrunc shortens b for a failure message.
func coreTrunc(b []byte) string {
	if len(b) > 300 {
		return fmt.Sprintf("%q...(%d octets)", b[:300], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// coreDiff describes where got and want first differ.
func coreDiff(got, want []byte) string {
	i := commonPrefix(got, want)
	lo := max(0, i-40)
	return fmt.Sprintf("got %d octets, want %d; first difference at %d:\ngot:  %s\nwant: %s",
		len(got), len(want), i, coreTrunc(got[lo:min(len(got), i+80)]), coreTrunc(want[lo:min(len(want), i+80)]))
}

// coreCompare sends each command to via (popgate) and direct (Dovecot)
// and requires byte-identical responses.
func coreCompare(t *testing.T, via, direct *popClient, cmds []string) {
	t.Helper()
	for _, cmd := range cmds {
		got, want := coreExchange(t, via, cmd), coreExchange(t, direct, cmd)
		if !bytes.Equal(got, want) {
			t.Errorf("%s through popgate differs from Dovecot: %s", cmd, coreDiff(got, want))
		}
	}
}

// coreReadToEOF reads c until the connection ends (EOF or reset) or
// timeout passes, and returns what it read and the ending error.
func coreReadToEOF(c *popClient, timeout time.Duration) ([]byte, error) {
	c.Conn.SetReadDeadline(time.Now().Add(timeout))
	var b bytes.Buffer
	_, err := b.ReadFrom(c.R)
	if err == nil {
		err = io.EOF
	}
	return b.Bytes(), err
}

// coreWaitDovecotEnds polls Dovecot A's log (via w) until n lines report
// the end of a pop3 session of user for which accept returns true, and
// returns those lines. Polling is the only signal a daemon's log offers.
func coreWaitDovecotEnds(t testing.TB, w *logWatch, user string, n int, accept func(line string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var found []string
		for _, line := range strings.Split(w.Since(t), "\n") {
			if strings.Contains(line, "pop3("+user+")") && strings.Contains(line, "Disconnected") && accept(line) {
				found = append(found, line)
			}
		}
		if len(found) >= n {
			return found
		}
		if time.Now().After(deadline) {
			t.Fatalf("Dovecot logged %d of %d matching ends of %s sessions within 20s; new log:\n%s", len(found), n, user, w.Since(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// coreWaitDovecotEnd is coreWaitDovecotEnds for one session.
func coreWaitDovecotEnd(t testing.TB, w *logWatch, user string, accept func(line string) bool) string {
	t.Helper()
	return coreWaitDovecotEnds(t, w, user, 1, accept)[0]
}

// coreStat sends STAT and returns the message count.
func coreStat(t testing.TB, c *popClient) int {
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

// coreQuit sends QUIT, expects +OK and then the end of the connection.
func coreQuit(t testing.TB, c *popClient) {
	t.Helper()
	if _, err := c.Cmd("QUIT"); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
	if rest, err := coreReadToEOF(c, 10*time.Second); !errors.Is(err, io.EOF) || len(rest) != 0 {
		t.Errorf("after QUIT: read %q, %v; want the connection closed with nothing more", rest, err)
	}
}

// coreFreshCount logs user in at addr, returns STAT's message count and
// quits.
func coreFreshCount(t testing.TB, addr, user string) int {
	t.Helper()
	c := coreLogin(t, addr, user)
	n := coreStat(t, c)
	coreQuit(t, c)
	return n
}

// coreSettle waits until Dovecot logged the end of n sessions of user
// since w started, so that the next seedUser finds none of them alive.
func coreSettle(t testing.TB, w *logWatch, user string, n int) {
	t.Helper()
	coreWaitDovecotEnds(t, w, user, n, func(string) bool { return true })
}

func TestCoreGreetingAndLogin(t *testing.T) {
	px := coreStart(t, "")
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			c := dialPOP(t, m.addr)
			switch m.name {
			case "on-accept":
				// Dovecot's greeting, without the [XCLIENT] code meant for popgate.
				if !strings.HasPrefix(c.Greeting, "+OK popgate-it A ready.") {
					t.Errorf("on-accept greeting %q is not Dovecot's (minus [XCLIENT])", c.Greeting)
				}
			case "after-auth":
				if strings.Contains(c.Greeting, "popgate-it A") || strings.Contains(c.Greeting, "<") {
					t.Errorf("after-auth greeting %q: want popgate's own, without an APOP timestamp", c.Greeting)
				}
			}
			if err := c.Login("alice", itPassword(t, "a", "alice")); err != nil {
				t.Fatalf("login: %v", err)
			}
			if n := coreStat(t, c); n != 6 {
				t.Errorf("alice STAT: %d messages, want 6", n)
			}
			coreQuit(t, c)
		})
	}
}

func TestCoreByteExact(t *testing.T) {
	px := coreStart(t, "")
	files := maildirMessages(t, envValue(t, "MAIL_ROOT"), "alice")
	if len(files) != 6 {
		t.Fatalf("alice has %d message files, want 6", len(files))
	}
	aliceCmds := []string{"STAT", "LIST", "UIDL"}
	for n := 1; n <= 6; n++ {
		aliceCmds = append(aliceCmds, fmt.Sprintf("LIST %d", n), fmt.Sprintf("UIDL %d", n),
			fmt.Sprintf("TOP %d 0", n), fmt.Sprintf("TOP %d 2", n), fmt.Sprintf("TOP %d 100", n), fmt.Sprintf("RETR %d", n))
	}
	// Out of range and odd numbers: Dovecot's own answers pass through
	// (never five errors in a row: max_errors would close the session).
	aliceCmds = append(aliceCmds, "LIST 7", "NOOP", "RETR 0", "NOOP", "LIST 0001", "TOP 2 4294967295",
		"TOP 2 9999999999", "NOOP", "retr 3", "list", "Uidl 4", "top 4 1", "RSET", "STAT")
	bobCmds := []string{"STAT", "LIST", "UIDL", "RETR 1001"}
	for _, n := range []int{1, 2, 3, 61, 122, 250, 499, 500, 501, 777, 998, 999, 1000} {
		bobCmds = append(bobCmds, fmt.Sprintf("LIST %d", n), fmt.Sprintf("UIDL %d", n),
			fmt.Sprintf("TOP %d 0", n), fmt.Sprintf("TOP %d 1", n), fmt.Sprintf("RETR %d", n))
	}
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			t.Run("alice", func(t *testing.T) {
				via, direct := coreLogin(t, m.addr, "alice"), coreDirect(t, "alice")
				coreCompare(t, via, direct, aliceCmds)
				// The edge cases survive un-stuffing: the body is the file.
				for i, f := range files {
					raw := coreExchange(t, via, fmt.Sprintf("RETR %d", i+1))
					if got, want := coreUnstuff(raw), expectedRETR(f); !bytes.Equal(got, want) {
						t.Errorf("RETR %d un-stuffed is not the stored message: %s", i+1, coreDiff(got, want))
					}
				}
				coreCompare(t, via, direct, []string{"QUIT"})
			})
			t.Run("bob", func(t *testing.T) {
				via, direct := coreLogin(t, m.addr, "bob"), coreDirect(t, "bob")
				coreCompare(t, via, direct, append(bobCmds, "QUIT"))
			})
		})
	}
	coreCheckRSS(t, px.p, "after the byte-exact comparisons")
}

// coreHashRETR sends RETR n and returns the SHA-256 and length of the raw
// wire body (stuffing and terminator included) and the status line.
func coreHashRETR(t *testing.T, c *popClient, n int) (sum string, size int64, status string) {
	t.Helper()
	if err := c.Write([]byte(fmt.Sprintf("RETR %d\r\n", n))); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	cw := &coreCountWriter{w: h}
	c.Conn.SetReadDeadline(time.Now().Add(5 * time.Minute))
	// Only the status line here (hasBody false); the body is hashed below.
	status, err := coreReadResp(c.R, false, io.Discard)
	if err != nil || !strings.HasPrefix(status, "+OK") {
		t.Fatalf("RETR %d: %q, %v", n, status, err)
	}
	if err := coreCopyBody(c.R, cw); err != nil {
		t.Fatalf("RETR %d body after %d octets: %v", n, cw.n, err)
	}
	return hex.EncodeToString(h.Sum(nil)), cw.n, status
}

// coreCopyBody copies a raw body through its terminator to w.
func coreCopyBody(r *bufio.Reader, w io.Writer) error {
	atStart := true
	for {
		frag, err := r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return coreEOF(err)
		}
		w.Write(frag)
		if atStart && err == nil && string(frag) == ".\r\n" {
			return nil
		}
		atStart = err == nil
	}
}

// coreCountWriter counts what passes through to w.
type coreCountWriter struct {
	w io.Writer
	n int64
}

// Write passes p on and counts it.
func (c *coreCountWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func TestCoreBig50MiB(t *testing.T) {
	px := coreStart(t, "")
	direct := coreDirect(t, "big")
	wantSum, wantSize, wantStatus := coreHashRETR(t, direct, 1)
	if wantSize < 50<<20 {
		t.Fatalf("direct RETR of big: %d octets, want at least 50 MiB", wantSize)
	}
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			c := coreLogin(t, m.addr, "big")
			sum, size, status := coreHashRETR(t, c, 1)
			if status != wantStatus {
				t.Errorf("status line %q, want Dovecot's %q", status, wantStatus)
			}
			if sum != wantSum || size != wantSize {
				t.Errorf("raw body through popgate: %d octets sha256 %s; Dovecot sent %d octets sha256 %s", size, sum, wantSize, wantSum)
			}
			coreCheckRSS(t, px.p, "after a 50 MiB RETR")
			coreQuit(t, c)
		})
	}
}

func TestCoreDeleQuitCommits(t *testing.T) {
	px := coreStart(t, "")
	root := envValue(t, "MAIL_ROOT")
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			seedUser(t, "dele")
			if n := len(maildirFiles(t, root, "dele")); n != 5 {
				t.Fatalf("dele has %d files after seeding, want 5", n)
			}
			w := watchLog(t, envValue(t, "DOVECOT_LOG"))
			c := coreLogin(t, m.addr, "dele")
			for _, cmd := range []string{"DELE 2", "DELE 4"} {
				if _, err := c.Cmd(cmd); err != nil {
					t.Fatalf("%s: %v", cmd, err)
				}
			}
			if n := coreStat(t, c); n != 3 {
				t.Errorf("STAT after two DELE: %d, want 3", n)
			}
			coreQuit(t, c)
			line := coreWaitDovecotEnd(t, w, "dele", func(string) bool { return true })
			if !strings.Contains(line, "Logged out") || !strings.Contains(line, "del=2/5") {
				t.Errorf("Dovecot's end of session: %q; want Logged out with del=2/5", line)
			}
			files := maildirMessages(t, root, "dele")
			if len(files) != 3 {
				t.Fatalf("dele has %d files after DELE+QUIT, want 3", len(files))
			}
			for i, n := range []int{1, 3, 5} {
				if want := fmt.Sprintf("Subject: dele message %d\r\n", n); !bytes.Contains(files[i], []byte(want)) {
					t.Errorf("remaining file %d lacks %q", i+1, want)
				}
			}
			if n := coreFreshCount(t, m.addr, "dele"); n != 3 {
				t.Errorf("fresh login: STAT %d, want 3", n)
			}
			coreSettle(t, w, "dele", 2)
		})
	}
}

func TestCoreDeleDropCommitsNothing(t *testing.T) {
	px := coreStart(t, "")
	root := envValue(t, "MAIL_ROOT")
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			seedUser(t, "dele")
			w := watchLog(t, envValue(t, "DOVECOT_LOG"))
			c := coreLogin(t, m.addr, "dele")
			for _, cmd := range []string{"DELE 1", "DELE 5"} {
				if _, err := c.Cmd(cmd); err != nil {
					t.Fatalf("%s: %v", cmd, err)
				}
			}
			c.Close() // no QUIT
			// Pipelined DELEs and a drop before any answer was read.
			c = coreLogin(t, m.addr, "dele")
			if err := c.Write([]byte("DELE 2\r\nDELE 3\r\nDELE 4\r\n")); err != nil {
				t.Fatal(err)
			}
			c.Close()
			for _, line := range coreWaitDovecotEnds(t, w, "dele", 2, func(string) bool { return true }) {
				if strings.Contains(line, "Logged out") || !strings.Contains(line, "del=0/5") {
					t.Errorf("Dovecot's end of session: %q; want a disconnection without QUIT, del=0/5", line)
				}
			}
			if n := len(maildirFiles(t, root, "dele")); n != 5 {
				t.Errorf("dele has %d files after DELE and a dropped connection, want 5", n)
			}
			if n := coreFreshCount(t, m.addr, "dele"); n != 5 {
				t.Errorf("fresh login: STAT %d, want 5", n)
			}
			coreSettle(t, w, "dele", 3)
		})
	}
}

func TestCorePipelinedQuit(t *testing.T) {
	px := coreStart(t, "")
	root := envValue(t, "MAIL_ROOT")
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			seedUser(t, "dele")
			w := watchLog(t, envValue(t, "DOVECOT_LOG"))
			c := coreLogin(t, m.addr, "dele")
			if err := c.Write([]byte("DELE 1\r\nDELE 3\r\nQUIT\r\n")); err != nil {
				t.Fatal(err)
			}
			got, err := coreReadToEOF(c, 10*time.Second)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after pipelined QUIT: %v (read %q)", err, got)
			}
			lines := coreLines(got)
			if len(lines) != 3 || !strings.HasPrefix(lines[0], "+OK") || !strings.HasPrefix(lines[1], "+OK") || !strings.HasPrefix(lines[2], "+OK") {
				t.Errorf("answers to DELE, DELE, QUIT: %q; want three +OK and the close", lines)
			}
			files := maildirMessages(t, root, "dele")
			if len(files) != 3 {
				t.Fatalf("dele has %d files, want 3 (messages 2, 4, 5)", len(files))
			}
			for i, n := range []int{2, 4, 5} {
				if want := fmt.Sprintf("Subject: dele message %d\r\n", n); !bytes.Contains(files[i], []byte(want)) {
					t.Errorf("remaining file %d lacks %q", i+1, want)
				}
			}
			coreSettle(t, w, "dele", 1)
		})
	}
}

// TestCoreCommandsAfterQuit pipelines commands after QUIT: QUIT must be
// answered and committed, and what follows it never executed.
func TestCoreCommandsAfterQuit(t *testing.T) {
	px := coreStart(t, "")
	root := envValue(t, "MAIL_ROOT")
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			seedUser(t, "dele")
			w := watchLog(t, envValue(t, "DOVECOT_LOG"))
			c := coreLogin(t, m.addr, "dele")
			if err := c.Write([]byte("DELE 1\r\nQUIT\r\nDELE 2\r\nNOOP\r\n")); err != nil {
				t.Fatal(err)
			}
			got, err := coreReadToEOF(c, 10*time.Second)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after QUIT and more pipelined commands: %v (read %q); want two +OK and the close", err, got)
			}
			if lines := coreLines(got); len(lines) != 2 || !strings.HasPrefix(lines[0], "+OK") || !strings.HasPrefix(lines[1], "+OK") {
				t.Errorf("answers to DELE 1, QUIT, DELE 2, NOOP: %q; want +OK, +OK and the close", lines)
			}
			if n := len(maildirFiles(t, root, "dele")); n != 4 {
				t.Errorf("dele has %d files, want 4: DELE 1 committed by QUIT, DELE 2 never executed", n)
			}
			coreSettle(t, w, "dele", 1)
		})
	}
}

// TestCoreHalfClose pipelines commands and then shuts down the write side
// (as `printf ... | nc -N` does): Dovecot answers every command before it
// closes; popgate should relay those answers too, and commit nothing.
func TestCoreHalfClose(t *testing.T) {
	px := coreStart(t, "")
	const burst = "STAT\r\nLIST 1\r\nUIDL 2\r\nNOOP\r\n"
	d := coreDirect(t, "alice")
	if err := d.Write([]byte(burst)); err != nil {
		t.Fatal(err)
	}
	d.Conn.(*net.TCPConn).CloseWrite()
	want, err := coreReadToEOF(d, 10*time.Second)
	if err != io.EOF || len(coreLines(want)) != 4 {
		t.Fatalf("Dovecot after a half-close: %q, %v; want four answers", want, err)
	}
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			c := coreLogin(t, m.addr, "alice")
			if err := c.Write([]byte(burst)); err != nil {
				t.Fatal(err)
			}
			c.Conn.(*net.TCPConn).CloseWrite()
			got, err := coreReadToEOF(c, 10*time.Second)
			if err != io.EOF || !bytes.Equal(got, want) {
				t.Errorf("popgate after a half-close: %q, %v; Dovecot answered %q", got, err, want)
			}
		})
	}
}

func TestCorePipelinedLogin(t *testing.T) {
	px := coreStart(t, "")
	pw := itPassword(t, "a", "alice")
	// Login, transaction and QUIT in one write, as a pipelining client may
	// send them once CAPA said PIPELINING.
	cmds := []string{"USER alice", "PASS " + pw, "STAT", "LIST", "UIDL 2", "RETR 3", "TOP 4 0", "QUIT"}
	d := dialPOP(t, envValue(t, "POP3_ADDR"))
	want := coreRunBurst(t, d, cmds)
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			c := dialPOP(t, m.addr)
			got := coreRunBurst(t, c, cmds)
			for i := range cmds {
				if i < 2 { // popgate's own USER answer in after-auth mode may differ
					if !bytes.HasPrefix(got[i], []byte("+OK")) {
						t.Errorf("%s: %s", strings.Fields(cmds[i])[0], coreTrunc(got[i]))
					}
					continue
				}
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("%s differs from Dovecot: %s", cmds[i], coreDiff(got[i], want[i]))
				}
			}
			if rest, err := coreReadToEOF(c, 10*time.Second); !errors.Is(err, io.EOF) || len(rest) > 0 {
				t.Errorf("after QUIT: %q, %v", rest, err)
			}
		})
	}
}

// coreBurst returns n pipelined commands for bob's 1000 messages, mixed
// from a fixed seed; invalid lines (answered by popgate itself) are marked
// in the second result and are never adjacent.
func coreBurst(n int) (cmds []string, invalid []bool) {
	rng := rand.New(rand.NewSource(1939))
	bad := []string{"XYZZY", "RETR x", "TOP 1", "LIST 1 2", "DELE", "UIDL -1"}
	for i := 0; i < n; i++ {
		k := rng.Intn(1000) + 1
		var cmd string
		isBad := false
		switch r := rng.Intn(100); {
		case r < 5 && (i == 0 || !invalid[i-1]):
			cmd, isBad = bad[rng.Intn(len(bad))], true
		case r < 20:
			cmd = "NOOP"
		case r < 30:
			cmd = "STAT"
		case r < 45:
			cmd = fmt.Sprintf("LIST %d", k)
		case r < 60:
			cmd = fmt.Sprintf("UIDL %d", k)
		case r < 78:
			cmd = fmt.Sprintf("RETR %d", k)
		case r < 96:
			cmd = fmt.Sprintf("TOP %d 0", k)
		case r < 98:
			cmd = "LIST"
		default:
			cmd = "UIDL"
		}
		cmds, invalid = append(cmds, cmd), append(invalid, isBad)
	}
	return cmds, invalid
}

// coreRunBurst writes every command in one write while reading the
// responses, and returns the raw responses in order.
func coreRunBurst(t *testing.T, c *popClient, cmds []string) [][]byte {
	t.Helper()
	var all bytes.Buffer
	for _, cmd := range cmds {
		all.WriteString(cmd + "\r\n")
	}
	c.Conn.SetDeadline(time.Now().Add(2 * time.Minute))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Conn.Write(all.Bytes())
		werr <- err
	}()
	out := make([][]byte, 0, len(cmds))
	for i, cmd := range cmds {
		var b bytes.Buffer
		if _, err := coreReadResp(c.R, coreHasBody(cmd), &b); err != nil {
			t.Fatalf("burst response %d (%s): %v; got %s", i+1, cmd, err, coreTrunc(b.Bytes()))
		}
		out = append(out, b.Bytes())
	}
	if err := <-werr; err != nil {
		t.Fatalf("writing the burst: %v", err)
	}
	return out
}

func TestCorePipelinedBurst(t *testing.T) {
	px := coreStart(t, "")
	cmds, invalid := coreBurst(500)
	var valid []string
	nBad := 0
	for i, cmd := range cmds {
		if invalid[i] {
			nBad++
		} else {
			valid = append(valid, cmd)
		}
	}
	if nBad == 0 {
		t.Fatal("the burst has no invalid command")
	}
	direct := coreDirect(t, "bob")
	want := coreRunBurst(t, direct, valid)
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			c := coreLogin(t, m.addr, "bob")
			got := coreRunBurst(t, c, cmds)
			j := 0
			for i, resp := range got {
				if invalid[i] {
					if !bytes.HasPrefix(resp, []byte("-ERR ")) || bytes.Count(resp, []byte("\n")) != 1 {
						t.Errorf("response %d to invalid %q: %s, want one -ERR line", i+1, cmds[i], coreTrunc(resp))
					}
					continue
				}
				if !bytes.Equal(resp, want[j]) {
					t.Errorf("response %d to %q differs from Dovecot's: %s", i+1, cmds[i], coreDiff(resp, want[j]))
				}
				j++
			}
			if n := coreStat(t, c); n != 1000 {
				t.Errorf("STAT after the burst: %d, want 1000", n)
			}
			coreQuit(t, c)
		})
	}
	coreCheckRSS(t, px.p, "after the bursts")
}

// corePoplibScript drives python3's poplib: user/pass_, stat, list, uidl,
// retr and top of every message, then for MODE=dele: dele 1, rset, dele 2,
// stat; then quit. It prints JSON; bodies are base64 of the lines joined
// with CRLF.
const corePoplibScript = `
import base64, json, os, poplib
c = poplib.POP3(os.environ["CORE_HOST"], int(os.environ["CORE_PORT"]), timeout=60)
out = {"welcome": c.getwelcome().decode("latin-1")}
c.user(os.environ["CORE_USER"])
c.pass_(os.environ["CORE_PASS"])
join = lambda lines: base64.b64encode(b"".join(l + b"\r\n" for l in lines)).decode()
count, size = c.stat()
out["stat"] = [count, size]
out["list"] = [l.decode() for l in c.list()[1]]
out["uidl"] = [l.decode() for l in c.uidl()[1]]
out["retr"] = [join(c.retr(i)[1]) for i in range(1, count + 1)]
out["top"] = [join(c.top(i, 0)[1]) for i in range(1, count + 1)]
if os.environ.get("CORE_MODE") == "dele":
    out["dele1"] = c.dele(1).decode()
    out["rset"] = c.rset().decode()
    out["dele2"] = c.dele(2).decode()
    out["stat2"] = list(c.stat())
out["quit"] = c.quit().decode()
print(json.dumps(out))
`

// corePoplibResult is the JSON corePoplibScript prints.
type corePoplibResult struct {
	Welcome string   `json:"welcome"`
	Stat    [2]int   `json:"stat"`
	List    []string `json:"list"`
	UIDL    []string `json:"uidl"`
	Retr    []string `json:"retr"`
	Top     []string `json:"top"`
	Dele1   string   `json:"dele1"`
	Rset    string   `json:"rset"`
	Dele2   string   `json:"dele2"`
	Stat2   [2]int   `json:"stat2"`
	Quit    string   `json:"quit"`
}

// corePoplib runs corePoplibScript against addr as user; the password
// travels in the environment, never in argv.
func corePoplib(t *testing.T, addr, user, mode string) corePoplibResult {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", "-c", corePoplibScript)
	cmd.Env = append(os.Environ(), "CORE_HOST="+host, "CORE_PORT="+port, "CORE_USER="+user,
		"CORE_PASS="+itPassword(t, "a", user), "CORE_MODE="+mode)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 poplib against %s: %v\n%s", addr, err, stderr.String())
	}
	var res corePoplibResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("poplib output: %v\n%s", err, out)
	}
	return res
}

// coreDirectBodies returns the un-stuffed bodies of LIST, UIDL, RETR n and
// TOP n 0 for every message of user, fetched directly from Dovecot.
func coreDirectBodies(t *testing.T, user string) (list, uidl []byte, retr, top [][]byte) {
	t.Helper()
	d := coreDirect(t, user)
	var err error
	if list, err = d.Multi("LIST"); err != nil {
		t.Fatal(err)
	}
	if uidl, err = d.Multi("UIDL"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= coreStat(t, d); i++ {
		r, err := d.Multi(fmt.Sprintf("RETR %d", i))
		if err != nil {
			t.Fatal(err)
		}
		h, err := d.Multi(fmt.Sprintf("TOP %d 0", i))
		if err != nil {
			t.Fatal(err)
		}
		retr, top = append(retr, r), append(top, h)
	}
	return list, uidl, retr, top
}

// coreLines splits a CRLF body into its lines.
func coreLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\r\n"), "\r\n")
}

func TestCorePoplib(t *testing.T) {
	px := coreStart(t, "")
	list, uidl, retr, top := coreDirectBodies(t, "alice")
	root := envValue(t, "MAIL_ROOT")
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			res := corePoplib(t, m.addr, "alice", "")
			if res.Stat[0] != 6 {
				t.Errorf("poplib stat: %v, want 6 messages", res.Stat)
			}
			if got, want := strings.Join(res.List, "|"), strings.Join(coreLines(list), "|"); got != want {
				t.Errorf("poplib list %q, direct %q", got, want)
			}
			if got, want := strings.Join(res.UIDL, "|"), strings.Join(coreLines(uidl), "|"); got != want {
				t.Errorf("poplib uidl %q, direct %q", got, want)
			}
			if len(res.Retr) != len(retr) || len(res.Top) != len(top) {
				t.Fatalf("poplib fetched %d/%d messages, direct %d", len(res.Retr), len(res.Top), len(retr))
			}
			for i := range retr {
				for _, c := range []struct {
					what string
					b64  string
					want []byte
				}{{"retr", res.Retr[i], retr[i]}, {"top", res.Top[i], top[i]}} {
					got, err := base64.StdEncoding.DecodeString(c.b64)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, c.want) {
						t.Errorf("poplib %s %d differs from the direct fetch: %s", c.what, i+1, coreDiff(got, c.want))
					}
				}
			}
			if !strings.HasPrefix(res.Quit, "+OK") {
				t.Errorf("poplib quit: %q", res.Quit)
			}
		})
		t.Run(m.name+"/dele", func(t *testing.T) {
			seedUser(t, "dele")
			w := watchLog(t, envValue(t, "DOVECOT_LOG"))
			res := corePoplib(t, m.addr, "dele", "dele")
			for what, v := range map[string]string{"dele 1": res.Dele1, "rset": res.Rset, "dele 2": res.Dele2, "quit": res.Quit} {
				if !strings.HasPrefix(v, "+OK") {
					t.Errorf("poplib %s: %q", what, v)
				}
			}
			if res.Stat2[0] != 4 {
				t.Errorf("poplib stat after dele 1, rset, dele 2: %v, want 4 messages", res.Stat2)
			}
			files := maildirMessages(t, root, "dele")
			if len(files) != 4 {
				t.Fatalf("dele has %d files after poplib's quit, want 4", len(files))
			}
			for i, n := range []int{1, 3, 4, 5} {
				if want := fmt.Sprintf("Subject: dele message %d\r\n", n); !bytes.Contains(files[i], []byte(want)) {
					t.Errorf("remaining file %d lacks %q", i+1, want)
				}
			}
			coreSettle(t, w, "dele", 1)
		})
	}
}

// coreCurl runs curl on url with credentials from a private netrc file
// and returns its output and the login command it used (e.g. "AUTH
// CRAM-MD5", "APOP", "USER"), taken from its verbose trace.
func coreCurl(t *testing.T, netrc, url string) ([]byte, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "curl", "-sS", "-v", "--max-time", "50", "--netrc-file", netrc, url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	login := ""
	if m := regexp.MustCompile(`(?m)^> (AUTH [A-Z0-9-]+|APOP|USER)`).FindStringSubmatch(stderr.String()); m != nil {
		login = m[1]
	}
	if err != nil {
		// The trace holds credentials: show only the protocol verbs.
		verbs := regexp.MustCompile(`(?m)^[<>*] .{0,40}`).FindAllString(stderr.String(), -1)
		t.Fatalf("curl %s: %v (login %q); trace start: %q", url, err, login, verbs[:min(len(verbs), 12)])
	}
	return out, login
}

func TestCoreCurl(t *testing.T) {
	px := coreStart(t, "")
	list, _, retr, _ := coreDirectBodies(t, "alice")
	netrc := filepath.Join(t.TempDir(), "netrc")
	if err := os.WriteFile(netrc, []byte("machine 127.0.0.1 login alice password "+itPassword(t, "a", "alice")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			base := "pop3://" + m.addr + "/"
			out, login := coreCurl(t, netrc, base)
			if !bytes.Equal(out, list) {
				t.Errorf("curl LIST: %s", coreDiff(out, list))
			}
			switch m.name {
			case "after-auth": // popgate offers SASL PLAIN LOGIN and no APOP timestamp
				if login != "AUTH PLAIN" && login != "AUTH LOGIN" {
					t.Errorf("curl logged in with %q, want AUTH PLAIN or AUTH LOGIN", login)
				}
			case "on-accept": // Dovecot's mechanisms pass through
				if !strings.HasPrefix(login, "AUTH ") && login != "APOP" {
					t.Errorf("curl logged in with %q, want one of Dovecot's SASL mechanisms or APOP", login)
				}
			}
			t.Logf("curl logged in with %s", login)
			for i := range retr {
				out, _ := coreCurl(t, netrc, fmt.Sprintf("%s%d", base, i+1))
				if !bytes.Equal(out, retr[i]) {
					t.Errorf("curl RETR %d differs from the direct fetch: %s", i+1, coreDiff(out, retr[i]))
				}
			}
		})
	}
}
