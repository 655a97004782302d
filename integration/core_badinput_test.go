//go:build integration

package integration

// Bad input against the real binary in both connect modes: over-long
// lines, binary garbage, bare CR/LF smuggling, commands in the wrong
// state, a pipelined flood, a client that stops reading, and max_errors.
// Each gets a clear -ERR or a closed connection, never a crash, never a
// command at the backend the client did not send as its own line, and
// popgate's memory stays bounded.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// coreWriteAsync writes raw in the background (popgate may answer while
// the client is still writing) and returns the write's result channel.
func coreWriteAsync(c *popClient, raw []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		c.Conn.SetWriteDeadline(time.Now().Add(time.Minute))
		_, err := c.Conn.Write(raw)
		done <- err
	}()
	return done
}

// coreExpectErr reads one line and requires -ERR (and, if want is not
// empty, that the line contains want).
func coreExpectErr(t *testing.T, c *popClient, what, want string) {
	t.Helper()
	line, err := c.ReadLine()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !strings.HasPrefix(line, "-ERR") || !strings.Contains(line, want) {
		t.Fatalf("%s: got %q, want -ERR ...%s", what, line, want)
	}
}

// coreExpectOK sends cmd and requires +OK.
func coreExpectOK(t *testing.T, c *popClient, cmd string) string {
	t.Helper()
	line, err := c.Cmd(cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return line
}

func TestCoreLongLines(t *testing.T) {
	px := coreStart(t, "")
	huge := append(bytes.Repeat([]byte("A"), 1<<20), "\r\n"...)
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			c := dialPOP(t, m.addr)
			// 255 octets with CRLF is the limit (RFC 2449): accepted.
			edge := "USER " + strings.Repeat("u", 248)
			if len(edge)+2 != 255 {
				t.Fatalf("edge line is %d octets", len(edge)+2)
			}
			if err := c.Write([]byte(edge + "\r\n")); err != nil {
				t.Fatal(err)
			}
			if line, err := c.ReadLine(); err != nil || strings.Contains(line, "too long") {
				t.Errorf("255-octet line: %q, %v; want it taken as a command", line, err)
			}
			for _, state := range []string{"before login", "after login"} {
				// 300 octets, then a megabyte without CRLF until its end.
				if err := c.Write([]byte("USER " + strings.Repeat("x", 293) + "\r\n")); err != nil {
					t.Fatal(err)
				}
				coreExpectErr(t, c, state+": 300-octet line", "too long")
				werr := coreWriteAsync(c, huge)
				coreExpectErr(t, c, state+": 1 MiB line", "too long")
				if err := <-werr; err != nil {
					t.Fatalf("%s: writing 1 MiB: %v", state, err)
				}
				coreCheckRSS(t, px.p, state+" after a 1 MiB line")
				if state == "before login" {
					if err := c.Login("alice", itPassword(t, "a", "alice")); err != nil {
						t.Fatalf("login after over-long lines: %v", err)
					}
				} else {
					coreExpectOK(t, c, "NOOP")
				}
			}
			if n := coreStat(t, c); n != 6 {
				t.Errorf("STAT %d, want 6", n)
			}
			coreQuit(t, c)
		})
	}
}

// coreGarbageLine returns n random octets without CR or LF (NULs
// included), from rng.
func coreGarbageLine(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		for {
			b[i] = byte(rng.Intn(256))
			if b[i] != '\r' && b[i] != '\n' {
				break
			}
		}
	}
	b[n/2] = 0
	return b
}

func TestCoreBinaryGarbage(t *testing.T) {
	px := coreStart(t, "")
	rng := rand.New(rand.NewSource(2449))
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			c := dialPOP(t, m.addr)
			for _, state := range []string{"before login", "after login"} {
				for i := 0; i < 3; i++ {
					if err := c.Write(append(coreGarbageLine(rng, 1+rng.Intn(200)), "\r\n"...)); err != nil {
						t.Fatal(err)
					}
					coreExpectErr(t, c, fmt.Sprintf("%s: garbage line %d", state, i+1), "")
				}
				if state == "before login" {
					if err := c.Login("alice", itPassword(t, "a", "alice")); err != nil {
						t.Fatalf("login after garbage: %v", err)
					}
				}
			}
			if n := coreStat(t, c); n != 6 {
				t.Errorf("STAT after garbage: %d, want 6", n)
			}
			// Lines of random octets (bare CR, bare LF and NUL among
			// them), each ended by CRLF: only -ERR answers, then the close
			// after max_errors.
			var blob []byte
			for i := 0; i < 50; i++ {
				seg := make([]byte, 1+rng.Intn(400))
				rng.Read(seg)
				blob = append(append(blob, seg...), "\r\n"...)
			}
			werr := coreWriteAsync(c, blob)
			var lines []string
			for {
				line, err := c.ReadLine()
				if err != nil {
					if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") {
						t.Errorf("after the blob: %v; want the connection closed", err)
					}
					break
				}
				lines = append(lines, line)
				if len(lines) > 100 {
					t.Fatalf("more than 100 answers to garbage; max_errors should have closed the session: %q", lines)
				}
			}
			<-werr // EPIPE or reset are expected once popgate closed
			for _, l := range lines {
				if !strings.HasPrefix(l, "-ERR") {
					t.Errorf("answer to garbage %q is not -ERR (all: %q)", l, lines)
				}
			}
			if len(lines) > 0 && lines[len(lines)-1] != "-ERR too many errors, closing" {
				t.Logf("last answer before the close: %q", lines[len(lines)-1])
			}
			// A new session works.
			if n := coreStat(t, coreLogin(t, m.addr, "alice")); n != 6 {
				t.Errorf("new session STAT %d, want 6", n)
			}
		})
	}
}

func TestCoreSmuggling(t *testing.T) {
	px := coreStart(t, "")
	root := envValue(t, "MAIL_ROOT")
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			seedUser(t, "dele")
			w := watchLog(t, envValue(t, "DOVECOT_LOG"))
			c := coreLogin(t, m.addr, "dele")
			for _, line := range []string{"NOOP\nDELE 1\r\n", "NOOP\rDELE 2\r\n", "NOOP\r\rDELE 3\r\n", "DELE 4\n", "DELE 5\x00\r\n"} {
				if err := c.Write([]byte(line)); err != nil {
					t.Fatal(err)
				}
				if line == "DELE 4\n" {
					// A bare LF does not end a line: it joins the next one.
					continue
				}
				coreExpectErr(t, c, fmt.Sprintf("%q", line), "")
			}
			if n := coreStat(t, c); n != 5 {
				t.Errorf("STAT after smuggling attempts: %d, want 5", n)
			}
			coreQuit(t, c)
			line := coreWaitDovecotEnd(t, w, "dele", func(string) bool { return true })
			if !strings.Contains(line, "Logged out") || !strings.Contains(line, "del=0/5") {
				t.Errorf("Dovecot's end of session: %q; want Logged out with del=0/5", line)
			}
			if n := len(maildirFiles(t, root, "dele")); n != 5 {
				t.Errorf("dele has %d files after the smuggling attempts and QUIT, want 5", n)
			}
		})
	}
}

func TestCoreWrongState(t *testing.T) {
	px := coreStart(t, "")
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			c := dialPOP(t, m.addr)
			for _, cmd := range []string{"RETR 1", "STAT", "DELE 1"} {
				if line, err := c.Cmd(cmd); err == nil {
					t.Errorf("%s before login: %q, want -ERR", cmd, line)
				}
			}
			if err := c.Login("alice", itPassword(t, "a", "alice")); err != nil {
				t.Fatalf("login after wrong-state commands: %v", err)
			}
			for _, cmd := range []string{"USER bob", "PASS x", "STLS", "APOP bob 0123456789abcdef0123456789abcdef"} {
				if line, err := c.Cmd(cmd); err == nil {
					t.Errorf("%s after login: %q, want -ERR", cmd, line)
				}
				coreExpectOK(t, c, "NOOP") // the session stays usable
			}
			if n := coreStat(t, c); n != 6 {
				t.Errorf("STAT %d, want 6 (still alice's mailbox)", n)
			}
			coreQuit(t, c)
		})
	}
}

func TestCoreMaxErrors(t *testing.T) {
	px := coreStart(t, "")
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			c := coreLogin(t, m.addr, "alice")
			// Four errors and a success: the count starts again.
			for round := 0; round < 2; round++ {
				for i := 0; i < 4; i++ {
					if _, err := c.Cmd("XYZZY"); err == nil {
						t.Fatalf("XYZZY: +OK")
					}
				}
				coreExpectOK(t, c, "NOOP")
			}
			// Five protocol errors in a row close the session: unknown
			// commands, a malformed message number, a command in the wrong
			// state. Dovecot's own -ERR (no such message) neither counts
			// nor breaks the run: it is not the client's protocol error.
			for i, cmd := range []string{"XYZZY", "RETR 99", "XYZZY", "RETR x", "LIST 0", "XYZZY", "USER alice"} {
				if line, err := c.Cmd(cmd); err == nil {
					t.Fatalf("error %d (%s): %q, want -ERR", i+1, cmd, line)
				}
			}
			rest, err := coreReadToEOF(c, 10*time.Second)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after 5 protocol errors: %v; want the connection closed", err)
			}
			if s := string(rest); s != "" && !strings.HasPrefix(s, "-ERR") {
				t.Errorf("after 5 errors popgate wrote %q", s)
			}
			// Before login too.
			c = dialPOP(t, m.addr)
			for i := 0; i < 5; i++ {
				if err := c.Write([]byte("XYZZY\r\n")); err != nil {
					t.Fatal(err)
				}
			}
			got, err := coreReadToEOF(c, 10*time.Second)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after 5 errors before login: %v; want the connection closed", err)
			}
			if n := strings.Count(string(got), "-ERR"); n < 5 || strings.Contains(string(got), "+OK") {
				t.Errorf("answers to 5 bad commands before login: %q", got)
			}
		})
	}
}

// coreRSSSampler records popgate's highest RSS until stopped.
type coreRSSSampler struct {
	stop chan struct{}
	done chan int64
	err  error // the first failed sample, valid after Peak
}

// coreSampleRSS samples the RSS of pid every 50 ms.
func coreSampleRSS(pid int) *coreRSSSampler {
	s := &coreRSSSampler{stop: make(chan struct{}), done: make(chan int64, 1)}
	go func() {
		var peak int64
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			rss, err := coreReadRSS(pid)
			if err != nil && s.err == nil {
				s.err = err
			}
			peak = max(peak, rss)
			select {
			case <-s.stop:
				s.done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// Peak stops sampling and returns the highest RSS seen, or the first
// error of a sample.
func (s *coreRSSSampler) Peak() (int64, error) {
	close(s.stop)
	return <-s.done, s.err
}

func TestCoreFlood(t *testing.T) {
	const total = 200000
	px := coreStart(t, "")
	direct := coreDirect(t, "bob")
	sizes := map[string]string{}
	list, err := direct.Multi("LIST")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range coreLines(list) {
		n, size, _ := strings.Cut(l, " ")
		sizes[n] = size
	}
	// Every 997th command is LIST k with a changing k, so the order of
	// the answers is checked, not only their number.
	cmdAt := func(i int) string {
		if i%997 == 996 {
			return fmt.Sprintf("LIST %d", i/997%1000+1)
		}
		return "NOOP"
	}
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			c := coreLogin(t, m.addr, "bob")
			sampler := coreSampleRSS(px.p.Cmd.Process.Pid)
			c.Conn.SetDeadline(time.Now().Add(3 * time.Minute))
			var wg sync.WaitGroup
			wg.Add(1)
			var werr error
			go func() {
				defer wg.Done()
				var buf bytes.Buffer
				for i := 0; i < total; i++ {
					buf.WriteString(cmdAt(i) + "\r\n")
					if buf.Len() >= 32<<10 || i == total-1 {
						if _, werr = c.Conn.Write(buf.Bytes()); werr != nil {
							return
						}
						buf.Reset()
					}
				}
			}()
			start := time.Now()
			for i := 0; i < total; i++ {
				line, err := c.ReadLine()
				if err != nil {
					t.Fatalf("answer %d of %d: %v", i+1, total, err)
				}
				cmd := cmdAt(i)
				want := "+OK"
				if n, ok := strings.CutPrefix(cmd, "LIST "); ok {
					want = "+OK " + n + " " + sizes[n]
				}
				if line != want && !(cmd == "NOOP" && strings.HasPrefix(line, "+OK")) {
					t.Fatalf("answer %d to %s: %q, want %q", i+1, cmd, line, want)
				}
			}
			wg.Wait()
			if werr != nil {
				t.Fatalf("writing the flood: %v", werr)
			}
			peak, err := sampler.Peak()
			if err != nil {
				t.Errorf("sampling popgate's RSS: %v", err)
			}
			t.Logf("%d pipelined commands answered in %v; popgate peak RSS %d MiB", total, time.Since(start).Round(time.Millisecond), peak>>20)
			if peak > coreRSSLimit {
				t.Errorf("popgate peak RSS during the flood %d MiB, want < %d MiB", peak>>20, coreRSSLimit>>20)
			}
			coreQuit(t, c)
		})
	}
}

func TestCoreSlowReader(t *testing.T) {
	for _, mode := range []string{"on-accept", "after-auth"} {
		t.Run(mode, func(t *testing.T) {
			px := coreStart(t, "limits {\n  write_timeout = \"2s\"\n}\n")
			addr := px.modes[0].addr
			if mode == "after-auth" {
				addr = px.modes[1].addr
			}
			w := watchLog(t, envValue(t, "DOVECOT_LOG"))
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			c := newPopClient(conn)
			if c.Greeting, err = c.ReadLine(); err != nil {
				t.Fatal(err)
			}
			if err := c.Login("big", itPassword(t, "a", "big")); err != nil {
				t.Fatal(err)
			}
			if err := c.Write([]byte("RETR 1\r\n")); err != nil {
				t.Fatal(err)
			}
			// Never read: popgate's write to us must time out. Meanwhile
			// another session works.
			other := coreLogin(t, addr, "alice")
			if body, err := other.Multi("RETR 1"); err != nil || !bytes.Contains(body, []byte("Hello Alice.")) {
				t.Errorf("another session during the stall: %v %q", err, body)
			}
			coreCheckRSS(t, px.p, "during the stall")
			px.p.WaitLog(t, "session closed while writing a response", 60*time.Second)
			logs := px.p.WaitLog(t, "write-error", 10*time.Second)
			if !strings.Contains(logs, "session ended") {
				t.Errorf("no session end logged:\n%s", logs)
			}
			// The connection was closed: what we read ends without the
			// terminating dot, well short of 50 MiB.
			got, err := coreReadToEOF(c, 30*time.Second)
			if !errors.Is(err, io.EOF) && !strings.Contains(fmt.Sprint(err), "reset") {
				t.Errorf("stalled connection: %v after %d octets; want it closed", err, len(got))
			}
			if len(got) >= 50<<20 || bytes.HasSuffix(got, []byte("\r\n.\r\n")) {
				t.Errorf("stalled connection got %d octets ending %q; want a truncated body without terminator", len(got), got[max(0, len(got)-10):])
			}
			// The backend connection was closed without QUIT.
			// Other tests may read big too: wait for a session end that is
			// not a logout and whose RETR was cut short (Dovecot counts the
			// octets of a RETR only when it completes).
			line := coreWaitDovecotEnd(t, w, "big", func(l string) bool {
				var n, octets int64
				_, after, _ := strings.Cut(l, " retr=")
				_, err := fmt.Sscanf(after, "%d/%d", &n, &octets)
				return !strings.Contains(l, "Logged out") && err == nil && n >= 1 && octets < 50<<20
			})
			t.Logf("Dovecot: %s", line)
			coreCheckRSS(t, px.p, "after the stall")
			if body, err := other.Multi("RETR 2"); err != nil || !bytes.Contains(body, []byte("two leading dots")) {
				t.Errorf("the other session after the stall: %v %q", err, body)
			}
			coreQuit(t, other)
		})
	}
}
