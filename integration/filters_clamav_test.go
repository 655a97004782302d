//go:build integration

package integration

// End-to-end tests of the clamav filter with the shared clamd: an infected
// message replaced by a notice or rejected, clean messages byte-exact, the
// 50 MiB message scanned in flat memory, and pipelined RETRs answered in
// order.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

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
