//go:build integration

package integration

// Helpers of the TestCore tests, which drive popgate's core relay end to
// end: the real binary with one on-accept and one after-auth listener in
// front of Dovecot A's plain port (coreStart), a raw reader that keeps
// every response exactly as it is on the wire, byte-for-byte comparison
// with a direct connection to Dovecot, memory checks and waits on
// Dovecot's log.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
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

// coreLines splits a CRLF body into its lines.
func coreLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\r\n"), "\r\n")
}
