//go:build integration

package integration

// End-to-end tests of the clamav and policy filters: the real popgate
// binary in front of Dovecot A, scanning with the real clamd (whose
// database holds one signature, for the EICAR test string). The audit
// filter's own tests are in filters_audit_test.go; the helpers here (prefix
// flt) serve both files.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fltListener is the name of the plaintext listener of fltStart.
const fltListener = "pop3"

// fltBackend is the name of the backend (Dovecot A) of fltStart.
const fltBackend = "dovecot"

// fltStart starts popgate with one plaintext listener in front of Dovecot
// A, applying the filter blocks in filterHCL in file order, and returns the
// process and the listener's address.
func fltStart(t *testing.T, filterHCL string) (*Popgate, string) {
	t.Helper()
	addr := freePort(t)
	cfg := fmt.Sprintf(`state_dir = "./state"
log {
  level = "debug"
}
listener %q {
  address = %q
  tls     = "none"
  backend = %q
}
backend %q {
  address = %q
}
%s
`, fltListener, addr, fltBackend, fltBackend, envValue(t, "POP3_ADDR"), filterHCL)
	return startPopgate(t, cfg, addr), addr
}

// fltClamdAddr returns the clamav filter address of the shared clamd over
// "tcp" or "unix".
func fltClamdAddr(t *testing.T, network string) string {
	t.Helper()
	if network == "unix" {
		return "unix://" + envValue(t, "CLAMD_UNIX")
	}
	return "tcp://" + envValue(t, "CLAMD_TCP")
}

// fltClamAV returns a filter "clamav" block; extra lines are added inside.
func fltClamAV(address, onInfected, onError string, extra ...string) string {
	return fmt.Sprintf("filter \"clamav\" {\n  address     = %q\n  on_infected = %q\n  on_error    = %q\n%s}\n",
		address, onInfected, onError, fltLines(extra))
}

// fltLines indents lines of HCL for a block body.
func fltLines(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// fltLogin connects to popgate at addr and logs user of Dovecot A in.
func fltLogin(t *testing.T, addr, user string) *popClient {
	t.Helper()
	c := dialPOP(t, addr)
	if err := c.Login(user, itPassword(t, "a", user)); err != nil {
		t.Fatalf("login %s through popgate: %v", user, err)
	}
	return c
}

// fltReadBodyTo is popClient.ReadBody that streams the un-stuffed body to
// w instead of holding it, for the 50 MiB message. It returns the octets
// written.
func fltReadBodyTo(c *popClient, w io.Writer) (int64, error) {
	var n int64
	put := func(p []byte) error {
		m, err := w.Write(p)
		n += int64(m)
		return err
	}
	atLineStart := true
	for {
		c.deadline()
		frag, err := c.R.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return n, fmt.Errorf("read body: %w", err)
		}
		whole := err == nil
		if atLineStart {
			if whole && string(frag) == ".\r\n" {
				return n, nil
			}
			if frag[0] == '.' {
				frag = frag[1:]
			}
		}
		if whole && !bytes.HasSuffix(frag, []byte("\r\n")) {
			return n, fmt.Errorf("read body: %w", errBareLF)
		}
		if err := put(frag); err != nil {
			return n, err
		}
		atLineStart = whole
	}
}

// fltRETRSum sends "RETR n" and returns the status line and, for +OK, the
// hex SHA-256 and length of the un-stuffed body.
func fltRETRSum(t *testing.T, c *popClient, n int) (status, sum string, size int64) {
	t.Helper()
	if err := c.Write([]byte(fmt.Sprintf("RETR %d\r\n", n))); err != nil {
		t.Fatal(err)
	}
	return fltReadSum(t, c)
}

// fltReadSum reads one RETR answer: the status line and, for +OK, the hex
// SHA-256 and length of the body.
func fltReadSum(t *testing.T, c *popClient) (status, sum string, size int64) {
	t.Helper()
	status, err := c.ReadLine()
	if err != nil {
		t.Fatalf("RETR status: %v", err)
	}
	if !strings.HasPrefix(status, "+OK") {
		return status, "", 0
	}
	h := sha256.New()
	size, err = fltReadBodyTo(c, h)
	if err != nil {
		t.Fatalf("RETR body after %d octets: %v", size, err)
	}
	return status, hex.EncodeToString(h.Sum(nil)), size
}

// fltDirectSum returns the SHA-256 and length of message n of user as
// Dovecot A sends it without popgate.
func fltDirectSum(t *testing.T, user string, n int) (string, int64) {
	t.Helper()
	c := loginA(t, user)
	status, sum, size := fltRETRSum(t, c, n)
	if !strings.HasPrefix(status, "+OK") {
		t.Fatalf("direct RETR %d of %s: %q", n, user, status)
	}
	c.Cmd("QUIT")
	return sum, size
}

// fltBig caches the direct fetch of user big's 50 MiB message, which
// several tests compare with.
var fltBig struct {
	once sync.Once
	sum  string
	size int64
}

// fltBigSum returns the SHA-256 and length of big's message 1 fetched
// directly from Dovecot A.
func fltBigSum(t *testing.T) (string, int64) {
	t.Helper()
	fltBig.once.Do(func() { fltBig.sum, fltBig.size = fltDirectSum(t, "big", 1) })
	if fltBig.size != 50<<20 {
		t.Fatalf("direct RETR of big's message: %d octets, want %d", fltBig.size, 50<<20)
	}
	return fltBig.sum, fltBig.size
}

// fltDirect returns the un-stuffed bodies of messages ns of user fetched
// directly from Dovecot A, and its UIDL listing.
func fltDirect(t *testing.T, user string, ns ...int) (map[int][]byte, []byte) {
	t.Helper()
	c := loginA(t, user)
	bodies := map[int][]byte{}
	for _, n := range ns {
		b, err := c.Multi(fmt.Sprintf("RETR %d", n))
		if err != nil {
			t.Fatalf("direct RETR %d of %s: %v", n, user, err)
		}
		bodies[n] = b
	}
	uidl, err := c.Multi("UIDL")
	if err != nil {
		t.Fatalf("direct UIDL of %s: %v", user, err)
	}
	c.Cmd("QUIT")
	return bodies, uidl
}

// fltStat logs in to Dovecot A directly and returns STAT's message count.
func fltStat(t *testing.T, user string) int {
	t.Helper()
	c := loginA(t, user)
	n, _ := stat(t, c)
	c.Cmd("QUIT")
	return n
}

// fltVirusMsg is the message of user virus that carries the EICAR string.
const fltVirusMsg = 2

// fltEICARName matches the signature name clamd reports for the EICAR
// string, loosely ("Popgate-Test-EICAR.UNOFFICIAL" here, "Eicar-Signature"
// with the official database).
var fltEICARName = regexp.MustCompile(`(?i)eicar`)

// fltCheckNotice checks that notice is a well-formed RFC 5322 message with
// CRLF lines that keeps From, To, Date, Subject and Message-ID of orig and
// names the virus.
func fltCheckNotice(t *testing.T, notice, orig []byte) {
	t.Helper()
	if bytes.Contains(notice, []byte(eicar())) {
		t.Fatalf("the notice carries the EICAR string itself:\n%s", notice)
	}
	for i, line := range bytes.SplitAfter(notice, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if !bytes.HasSuffix(line, []byte("\r\n")) || bytes.Count(line, []byte("\r")) != 1 {
			t.Errorf("notice line %d %q does not end in exactly one CRLF", i+1, line)
		}
		if len(line) > 1000 {
			t.Errorf("notice line %d has %d octets, over RFC 5322's 998", i+1, len(line)-2)
		}
	}
	got, err := mail.ReadMessage(bytes.NewReader(notice))
	if err != nil {
		t.Fatalf("the notice is not an RFC 5322 message: %v\n%s", err, notice)
	}
	want, err := mail.ReadMessage(bytes.NewReader(orig))
	if err != nil {
		t.Fatalf("parse the original: %v", err)
	}
	for _, k := range []string{"From", "To", "Date", "Message-Id"} {
		if g, w := got.Header.Get(k), want.Header.Get(k); g != w || w == "" {
			t.Errorf("notice %s = %q, want the original's %q", k, g, w)
		}
	}
	if _, err := got.Header.AddressList("From"); err != nil {
		t.Errorf("notice From does not parse: %v", err)
	}
	if _, err := got.Header.Date(); err != nil {
		t.Errorf("notice Date does not parse: %v", err)
	}
	if s, w := got.Header.Get("Subject"), want.Header.Get("Subject"); !strings.Contains(s, w) {
		t.Errorf("notice Subject %q does not keep the original %q", s, w)
	}
	body, err := io.ReadAll(got.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !fltEICARName.Match(body) || !bytes.Contains(bytes.ToLower(body), []byte("virus")) {
		t.Errorf("notice body does not name the EICAR virus:\n%s", body)
	}
}

// fltOctets checks that a "+OK N octets" status announces size octets;
// other status texts pass.
func fltOctets(t *testing.T, status string, size int) {
	t.Helper()
	m := regexp.MustCompile(`^\+OK (\d+) octets`).FindStringSubmatch(status)
	if m == nil {
		return
	}
	if n, _ := strconv.Atoi(m[1]); n != size {
		t.Errorf("status %q announces %d octets, the body has %d", status, n, size)
	}
}

// TestFilterClamAVInfected retrieves the EICAR message of user virus with
// on_infected "replace" (a notice keeping the original's header fields and
// naming the virus) and "reject" (-ERR [SYS/PERM]); either way the UIDL
// listing is Dovecot's own and the message stays on the server, intact.
func TestFilterClamAVInfected(t *testing.T) {
	direct, directUIDL := fltDirect(t, "virus", 1, fltVirusMsg, 3)
	orig := expectedRETR(maildirMessages(t, envValue(t, "MAIL_ROOT"), "virus")[fltVirusMsg-1])
	if !bytes.Equal(direct[fltVirusMsg], orig) || !bytes.Contains(orig, []byte(eicar())) {
		t.Fatalf("message %d of virus is not the EICAR message this test expects", fltVirusMsg)
	}
	for _, mode := range []string{"replace", "reject"} {
		t.Run(mode, func(t *testing.T) {
			p, addr := fltStart(t, fltClamAV(fltClamdAddr(t, "tcp"), mode, "reject"))
			c := fltLogin(t, addr, "virus")
			uidl, err := c.Multi("UIDL")
			if err != nil || !bytes.Equal(uidl, directUIDL) {
				t.Fatalf("UIDL through popgate = %q, %v; want Dovecot's %q", uidl, err, directUIDL)
			}
			body, err := c.Multi(fmt.Sprintf("RETR %d", fltVirusMsg))
			switch mode {
			case "replace":
				if err != nil {
					t.Fatalf("RETR %d: %v", fltVirusMsg, err)
				}
				fltOctets(t, c.Last, len(body))
				fltCheckNotice(t, body, orig)
			case "reject":
				var pe *popError
				if !errors.As(err, &pe) || !strings.HasPrefix(pe.Line, "-ERR [SYS/PERM]") {
					t.Fatalf("RETR %d = %q, %v; want -ERR [SYS/PERM]", fltVirusMsg, c.Last, err)
				}
			}
			// TOP: the header alone is clean; with the EICAR line it is not.
			top0, err := c.Multi(fmt.Sprintf("TOP %d 0", fltVirusMsg))
			if hdr, _, _ := bytes.Cut(orig, []byte("\r\n\r\n")); err != nil || string(top0) != string(hdr)+"\r\n\r\n" {
				t.Errorf("TOP %d 0: %v, %q; want the original header", fltVirusMsg, err, top0)
			}
			top5, err := c.Multi(fmt.Sprintf("TOP %d 5", fltVirusMsg))
			switch mode {
			case "replace":
				if err != nil {
					t.Fatalf("TOP %d 5: %v", fltVirusMsg, err)
				}
				fltCheckNotice(t, top5, orig)
			case "reject":
				if !strings.HasPrefix(c.Last, "-ERR [SYS/PERM]") {
					t.Errorf("TOP %d 5 = %q, want -ERR [SYS/PERM]", fltVirusMsg, c.Last)
				}
			}
			// The session goes on; clean messages are untouched.
			for _, n := range []int{1, 3} {
				b, err := c.Multi(fmt.Sprintf("RETR %d", n))
				if err != nil || !bytes.Equal(b, direct[n]) {
					t.Errorf("RETR %d after the virus: %v, %d octets, equal %v", n, err, len(b), bytes.Equal(b, direct[n]))
				}
			}
			if uidl, err := c.Multi("UIDL"); err != nil || !bytes.Equal(uidl, directUIDL) {
				t.Errorf("UIDL after the virus = %q, %v; want %q", uidl, err, directUIDL)
			}
			if _, err := c.Cmd("QUIT"); err != nil {
				t.Fatalf("QUIT: %v", err)
			}
			// Still on the server, unchanged: a fresh direct login.
			after, afterUIDL := fltDirect(t, "virus", fltVirusMsg)
			if !bytes.Equal(after[fltVirusMsg], orig) {
				t.Errorf("direct RETR %d after the session differs from the original", fltVirusMsg)
			}
			if !bytes.Equal(afterUIDL, directUIDL) {
				t.Errorf("UIDL changed: %q, want %q", afterUIDL, directUIDL)
			}
			if n := fltStat(t, "virus"); n != 4 {
				t.Errorf("virus has %d messages after the session, want 4", n)
			}
			if mode == "replace" {
				p.WaitLog(t, "virus found", 5*time.Second)
			}
		})
	}
}

// TestFilterClamAVCleanByteExact retrieves a clean message with an
// attachment and the 50 MiB message through the filter, over clamd's TCP
// and unix socket addresses: both arrive byte-identical to a direct fetch.
func TestFilterClamAVCleanByteExact(t *testing.T) {
	const attachMsg = 6 // alice's multipart message with a base64 attachment
	attachSum, attachSize := fltDirectSum(t, "alice", attachMsg)
	bigSum, bigSize := fltBigSum(t)
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			p, addr := fltStart(t, fltClamAV(fltClamdAddr(t, network), "replace", "reject", `max_size = "60MiB"`))
			c := fltLogin(t, addr, "alice")
			status, sum, size := fltRETRSum(t, c, attachMsg)
			if sum != attachSum || size != attachSize {
				t.Errorf("alice RETR %d: %q, %d octets, sha256 %s; want %d octets, %s", attachMsg, status, size, sum, attachSize, attachSum)
			}
			b := fltLogin(t, addr, "big")
			status, sum, size = fltRETRSum(t, b, 1)
			if sum != bigSum || size != bigSize {
				t.Errorf("big RETR 1: %q, %d octets, sha256 %s; want %d octets, %s", status, size, sum, bigSize, bigSum)
			}
			if _, err := b.Cmd("NOOP"); err != nil {
				t.Errorf("NOOP after the big message: %v", err)
			}
			logs := p.Logs()
			if strings.Contains(logs, "message not scanned") || strings.Contains(logs, "virus found") {
				t.Errorf("popgate did not find the messages clean:\n%s", logs)
			}
			t.Logf("peak RSS of popgate after the 50 MiB scan over %s: %d KiB", network, fltPeakRSS(t, p))
		})
	}
}

// fltPeakRSS returns the peak resident set size (VmHWM) of the popgate
// process in KiB.
func fltPeakRSS(t *testing.T, p *Popgate) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		t.Fatalf("read popgate's status: %v", err)
	}
	m := regexp.MustCompile(`(?m)^VmHWM:\s+(\d+) kB$`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("no VmHWM in popgate's status:\n%s", data)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb
}

// TestFilterClamAVFlatMemory scans the 50 MiB message (max_size 60MiB) and
// checks that popgate's peak resident set stays under 64 MiB: the body
// waits in a spool file, not in memory.
func TestFilterClamAVFlatMemory(t *testing.T) {
	const limitKiB = 64 << 10
	bigSum, _ := fltBigSum(t)
	p, addr := fltStart(t, fltClamAV(fltClamdAddr(t, "tcp"), "replace", "reject", `max_size = "60MiB"`))
	before := fltPeakRSS(t, p)
	c := fltLogin(t, addr, "big")
	_, sum, size := fltRETRSum(t, c, 1)
	if sum != bigSum {
		t.Fatalf("big RETR 1 through popgate: %d octets, not the message", size)
	}
	peak := fltPeakRSS(t, p)
	t.Logf("popgate VmHWM: %d KiB at start, %d KiB after scanning and relaying 50 MiB", before, peak)
	if peak > limitKiB {
		t.Errorf("popgate's peak RSS is %d KiB after a 50 MiB message, want under %d KiB", peak, limitKiB)
	}
}

// TestFilterClamAVPipelined sends RETR 1, 2 (infected), 3, 2, 1 in one
// write: the answers come back in order, clean messages byte-exact, the
// infected one replaced or rejected every time.
func TestFilterClamAVPipelined(t *testing.T) {
	direct, directUIDL := fltDirect(t, "virus", 1, 3)
	uids := fltUIDs(t, directUIDL)
	orig := expectedRETR(maildirMessages(t, envValue(t, "MAIL_ROOT"), "virus")[fltVirusMsg-1])
	order := []int{1, fltVirusMsg, 3, fltVirusMsg, 1}
	// "full" puts audit (which asks the backend UIDL n before a first RETR)
	// in front and policy (which asks LIST n) behind: both make RETR an
	// exclusive exchange in the middle of the pipeline.
	for _, mode := range []string{"replace", "reject", "full"} {
		t.Run(mode, func(t *testing.T) {
			trail := t.TempDir() + "/audit.jsonl"
			filters := fltClamAV(fltClamdAddr(t, "tcp"), mode, "reject")
			withAudit := mode == "full"
			if withAudit {
				mode = "replace"
				filters = fltAudit(trail, true) + fltClamAV(fltClamdAddr(t, "tcp"), mode, "reject") +
					"filter \"policy\" {\n  max_message_size = \"1MiB\"\n}\n"
			}
			_, addr := fltStart(t, filters)
			c := fltLogin(t, addr, "virus")
			var batch strings.Builder
			for _, n := range order {
				fmt.Fprintf(&batch, "RETR %d\r\n", n)
			}
			batch.WriteString("NOOP\r\n")
			if err := c.Write([]byte(batch.String())); err != nil {
				t.Fatal(err)
			}
			for i, n := range order {
				status, err := c.ReadLine()
				if err != nil {
					t.Fatalf("answer %d (RETR %d): %v", i+1, n, err)
				}
				if n == fltVirusMsg && mode == "reject" {
					if !strings.HasPrefix(status, "-ERR [SYS/PERM]") {
						t.Fatalf("answer %d (RETR %d) = %q, want -ERR [SYS/PERM]", i+1, n, status)
					}
					continue
				}
				if !strings.HasPrefix(status, "+OK") {
					t.Fatalf("answer %d (RETR %d) = %q, want +OK", i+1, n, status)
				}
				body, err := c.ReadBody()
				if err != nil {
					t.Fatalf("answer %d (RETR %d) body: %v", i+1, n, err)
				}
				if n == fltVirusMsg {
					fltCheckNotice(t, body, orig)
				} else if !bytes.Equal(body, direct[n]) {
					t.Errorf("answer %d (RETR %d) is not message %d:\n%s", i+1, n, n, body)
				}
			}
			if status, err := c.ReadLine(); err != nil || !strings.HasPrefix(status, "+OK") {
				t.Errorf("NOOP after the batch = %q, %v", status, err)
			}
			if !withAudit {
				return
			}
			if _, err := c.Cmd("QUIT"); err != nil {
				t.Fatal(err)
			}
			recs := fltSessionEnd(t, trail, c.Conn.LocalAddr().String())
			var got []string
			for _, r := range fltFind(recs, "retrieve", nil) {
				got = append(got, fmt.Sprintf("%v:%s", r.num("msg"), r.str("uidl")))
			}
			var want []string
			for _, n := range order {
				want = append(want, fmt.Sprintf("%d:%s", n, uids[n]))
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("retrieve records (msg:uidl) %v, want %v", got, want)
			}
		})
	}
}

// TestFilterClamAVUnreachable points the filter at a closed port: with
// on_error "reject" RETR is answered -ERR [SYS/TEMP] and the session goes
// on; with "pass" the message is delivered byte-identical. The audit trail
// records the scan as an error.
func TestFilterClamAVUnreachable(t *testing.T) {
	const msg = 6
	wantSum, wantSize := fltDirectSum(t, "alice", msg)
	closed := freePort(t) // nothing listens there
	for _, onError := range []string{"reject", "pass"} {
		t.Run(onError, func(t *testing.T) {
			trail := t.TempDir() + "/audit.jsonl"
			_, addr := fltStart(t, fltAudit(trail, false)+fltClamAV("tcp://"+closed, "replace", onError, `timeout = "5s"`))
			c := fltLogin(t, addr, "alice")
			status, sum, size := fltRETRSum(t, c, msg)
			switch onError {
			case "reject":
				if !strings.HasPrefix(status, "-ERR [SYS/TEMP]") {
					t.Errorf("RETR %d with clamd down = %q, want -ERR [SYS/TEMP]", msg, status)
				}
			case "pass":
				if sum != wantSum || size != wantSize {
					t.Errorf("RETR %d with clamd down: %q, %d octets; want the message byte-identical (%d octets)", msg, status, size, wantSize)
				}
			}
			if _, err := c.Cmd("NOOP"); err != nil {
				t.Errorf("NOOP after the scan failure: %v", err)
			}
			if _, err := c.Cmd("QUIT"); err != nil {
				t.Fatalf("QUIT: %v", err)
			}
			scan := fltWaitRecord(t, trail, func(r fltRecord) bool { return r.str("event") == "scan" })
			if scan.str("verdict") != "error" || scan.str("error") == "" || scan.num("msg") != msg {
				t.Errorf("scan record %v: want verdict error for msg %d with the error's text", scan, msg)
			}
		})
	}
}

// TestFilterClamAVOversize sets max_size = "1KiB": a larger message is
// answered -ERR [SYS/TEMP] (on_error "reject") or delivered unscanned and
// byte-identical ("pass"), a smaller one is still scanned, and the audit
// trail records "skipped-oversize".
func TestFilterClamAVOversize(t *testing.T) {
	const small, large = 1, 4 // alice: a short message and the 998-octet line
	direct, _ := fltDirect(t, "alice", small, large)
	if len(direct[small]) >= 1024 || len(direct[large]) <= 1024 {
		t.Fatalf("alice's messages %d and %d are %d and %d octets; want one under and one over 1 KiB",
			small, large, len(direct[small]), len(direct[large]))
	}
	for _, onError := range []string{"reject", "pass"} {
		t.Run(onError, func(t *testing.T) {
			trail := t.TempDir() + "/audit.jsonl"
			_, addr := fltStart(t, fltAudit(trail, false)+fltClamAV(fltClamdAddr(t, "tcp"), "replace", onError, `max_size = "1KiB"`))
			c := fltLogin(t, addr, "alice")
			body, err := c.Multi(fmt.Sprintf("RETR %d", large))
			switch onError {
			case "reject":
				if !strings.HasPrefix(c.Last, "-ERR [SYS/TEMP]") {
					t.Errorf("RETR %d over max_size = %q, want -ERR [SYS/TEMP]", large, c.Last)
				}
			case "pass":
				if err != nil || !bytes.Equal(body, direct[large]) {
					t.Errorf("RETR %d over max_size: %q, %v, %d octets; want the message byte-identical", large, c.Last, err, len(body))
				}
			}
			body, err = c.Multi(fmt.Sprintf("RETR %d", small))
			if err != nil || !bytes.Equal(body, direct[small]) {
				t.Errorf("RETR %d under max_size: %v, %d octets; want the message", small, err, len(body))
			}
			if onError == "pass" {
				// The unscanned rest streams straight from the backend.
				bigSum, bigSize := fltBigSum(t)
				b := fltLogin(t, addr, "big")
				status, sum, size := fltRETRSum(t, b, 1)
				if sum != bigSum || size != bigSize {
					t.Errorf("big RETR 1 over max_size: %q, %d octets; want the message byte-identical", status, size)
				}
				b.Cmd("QUIT")
			}
			if _, err := c.Cmd("QUIT"); err != nil {
				t.Fatalf("QUIT: %v", err)
			}
			recs := fltSessionEnd(t, trail, c.Conn.LocalAddr().String())
			verdicts := map[int]string{}
			for _, r := range recs {
				if r.str("event") == "scan" {
					verdicts[int(r.num("msg"))] = r.str("verdict")
				}
			}
			if verdicts[large] != "skipped-oversize" || verdicts[small] != "clean" {
				t.Errorf("scan verdicts %v, want %d: skipped-oversize and %d: clean", verdicts, large, small)
			}
		})
	}
}

// fltPrivateClamd is a clamd of one test's own, started in the foreground
// from a copy of CLAMD_CONF with its own TCP port, pid file, log and
// temporary directory (sharing the signature database).
type fltPrivateClamd struct {
	addr   string // host:port
	tmpDir string // TemporaryDirectory: INSTREAM data lands here
	log    string
	done   chan struct{}
	pid    int
}

// fltStartClamd starts a private clamd and waits until it answers PING.
// It is killed at cleanup if still running.
func fltStartClamd(t *testing.T) *fltPrivateClamd {
	t.Helper()
	src, err := os.ReadFile(envValue(t, "CLAMD_CONF"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cd := &fltPrivateClamd{addr: freePort(t), tmpDir: dir + "/tmp", log: dir + "/clamd.log", done: make(chan struct{})}
	if err := os.Mkdir(cd.tmpDir, 0o700); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(cd.addr, ":")
	own := map[string]string{
		"Foreground": "yes", "PidFile": dir + "/clamd.pid", "LogFile": cd.log,
		"TemporaryDirectory": cd.tmpDir, "TCPSocket": port, "TCPAddr": "127.0.0.1",
		"LocalSocket": "", "LocalSocketMode": "", "FixStaleSocket": "",
	}
	var conf strings.Builder
	for _, line := range strings.Split(string(src), "\n") {
		key, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if _, replaced := own[key]; replaced {
			continue
		}
		conf.WriteString(line + "\n")
	}
	for k, v := range own {
		if v != "" {
			fmt.Fprintf(&conf, "%s %s\n", k, v)
		}
	}
	file := dir + "/clamd.conf"
	if err := os.WriteFile(file, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := newLogBuffer()
	cmd := exec.Command("clamd", "-c", file)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start clamd: %v", err)
	}
	cd.pid = cmd.Process.Pid
	go func() { cmd.Wait(); close(cd.done) }()
	t.Cleanup(func() {
		select {
		case <-cd.done:
		default:
			cmd.Process.Kill()
			<-cd.done
		}
		if t.Failed() {
			logText, _ := os.ReadFile(cd.log)
			t.Logf("private clamd output:\n%s\nlog:\n%s", out.String(), logText)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		// Polling PING is the only readiness signal clamd gives.
		if r, err := clamdPing("tcp", cd.addr); err == nil && r == "PONG" {
			return cd
		}
		select {
		case <-cd.done:
			t.Fatalf("private clamd exited before answering PING:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("private clamd did not answer PING within 60 s")
		}
	}
}

// spooled returns the octets in the private clamd's temporary directory:
// clamd writes an INSTREAM there as it arrives.
func (cd *fltPrivateClamd) spooled() int64 {
	var n int64
	entries, _ := os.ReadDir(cd.tmpDir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n
}

// TestFilterClamAVKilledMidScan kills a private clamd (SIGKILL, by PID)
// while the 50 MiB message streams to it: the client gets -ERR [SYS/TEMP]
// (on_error "reject"), the session stays usable, and the message stays on
// the server.
func TestFilterClamAVKilledMidScan(t *testing.T) {
	cd := fltStartClamd(t)
	p, addr := fltStart(t, fltClamAV("tcp://"+cd.addr, "replace", "reject", `max_size = "60MiB"`))
	c := fltLogin(t, addr, "big")
	if err := c.Write([]byte("RETR 1\r\n")); err != nil {
		t.Fatal(err)
	}
	// The client sees nothing before the verdict; clamd's temporary file
	// growing is the sign that the body is streaming to it.
	const killAt = 1 << 20
	deadline := time.Now().Add(60 * time.Second)
	var seen int64
	for seen = cd.spooled(); seen < killAt; seen = cd.spooled() {
		if time.Now().After(deadline) {
			t.Fatalf("clamd received only %d octets within 60 s", seen)
		}
		time.Sleep(2 * time.Millisecond)
	}
	proc, err := os.FindProcess(cd.pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Kill(); err != nil {
		t.Fatalf("kill clamd: %v", err)
	}
	<-cd.done
	t.Logf("killed clamd after it had received %d octets of %d", seen, 50<<20)
	if seen >= 50<<20 {
		t.Fatalf("clamd had the whole message (%d octets) before it was killed", seen)
	}
	status, err := c.ReadLine()
	if err != nil {
		t.Fatalf("RETR 1 answer: %v", err)
	}
	if !strings.HasPrefix(status, "-ERR [SYS/TEMP]") {
		t.Fatalf("RETR 1 with clamd killed mid-scan = %q, want -ERR [SYS/TEMP]", status)
	}
	if _, err := c.Cmd("NOOP"); err != nil {
		t.Errorf("NOOP after the failed scan: %v", err)
	}
	if line, err := c.Cmd("LIST 1"); err != nil || line != "+OK 1 "+strconv.Itoa(50<<20) {
		t.Errorf("LIST 1 after the failed scan = %q, %v", line, err)
	}
	if _, err := c.Cmd("QUIT"); err != nil {
		t.Errorf("QUIT: %v", err)
	}
	p.WaitLog(t, "message not scanned", 5*time.Second)
	if n := fltStat(t, "big"); n != 1 {
		t.Errorf("big has %d messages after the session, want 1", n)
	}
}

// TestFilterPolicyDeny denies DELE: the command is refused with -ERR
// without reaching the backend, and after QUIT the message is still there.
func TestFilterPolicyDeny(t *testing.T) {
	const user = "load400"
	seedUser(t, user)
	_, addr := fltStart(t, "filter \"policy\" {\n  deny = [\"DELE\"]\n}\n")
	c := fltLogin(t, addr, user)
	line, err := c.Cmd("DELE 1")
	if err == nil || !strings.HasPrefix(line, "-ERR") {
		t.Fatalf("DELE 1 = %q, want -ERR", line)
	}
	if !strings.Contains(line, "DELE") {
		t.Errorf("DELE refusal %q does not say which command was refused", line)
	}
	if _, err := c.Cmd("NOOP"); err != nil {
		t.Errorf("NOOP after the refusal: %v", err)
	}
	if capa, err := c.Multi("CAPA"); err == nil && bytes.Contains(capa, []byte("\r\nDELE")) {
		t.Errorf("CAPA announces DELE:\n%s", capa)
	}
	if _, err := c.Cmd("QUIT"); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
	if n := fltStat(t, user); n != 10 {
		t.Errorf("%s has %d messages after DELE 1 and QUIT, want all 10", user, n)
	}
}

// TestFilterPolicyMaxMessageSize sets max_message_size to the LIST size of
// message 5 of a load user: RETR of messages up to that size works (byte
// exact), RETR of larger ones is refused with -ERR, and the session goes
// on.
func TestFilterPolicyMaxMessageSize(t *testing.T) {
	const user = "load401"
	seedUser(t, user)
	d := loginA(t, user)
	list, err := d.Multi("LIST")
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[int]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(list)), "\r\n") {
		var n, s int
		if _, err := fmt.Sscanf(l, "%d %d", &n, &s); err != nil {
			t.Fatalf("LIST line %q: %v", l, err)
		}
		sizes[n] = s
	}
	d.Cmd("QUIT")
	limit := sizes[5]
	if sizes[6] <= limit || sizes[4] >= limit {
		t.Fatalf("load message sizes %v do not grow with the number", sizes)
	}
	direct, _ := fltDirect(t, user, 1, 5)
	_, addr := fltStart(t, fmt.Sprintf("filter \"policy\" {\n  max_message_size = \"%d\"\n}\n", limit))
	c := fltLogin(t, addr, user)
	for _, n := range []int{1, 5} {
		body, err := c.Multi(fmt.Sprintf("RETR %d", n))
		if err != nil || !bytes.Equal(body, direct[n]) {
			t.Errorf("RETR %d (%d octets, limit %d): %v, %d octets; want the message", n, sizes[n], limit, err, len(body))
		}
	}
	for _, n := range []int{6, 10} {
		line, err := c.Cmd(fmt.Sprintf("RETR %d", n))
		if err == nil || !strings.HasPrefix(line, "-ERR") {
			t.Fatalf("RETR %d (%d octets, limit %d) = %q, want -ERR", n, sizes[n], limit, line)
		}
	}
	if top, err := c.Multi("TOP 10 0"); err != nil || !bytes.Contains(top, []byte("Subject: load message 10\r\n")) {
		t.Errorf("TOP 10 0 (not limited): %v\n%s", err, top)
	}
	if line, err := c.Cmd("RETR 99"); err == nil {
		t.Errorf("RETR 99 (no such message) = %q, want -ERR", line)
	}
	if _, err := c.Cmd("QUIT"); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
}
