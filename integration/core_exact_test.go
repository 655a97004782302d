//go:build integration

package integration

// The core relay is byte-exact: greetings and logins on both connect
// modes, every answer through popgate compared with Dovecot's own, and
// the 50 MiB message relayed in constant memory.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

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
