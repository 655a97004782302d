//go:build integration

package integration

// Pipelining through the core relay: a half-closed client, a login
// pipelined with its transaction, and a seeded burst of valid and invalid
// commands answered in order and byte-identical to Dovecot's answers.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"strings"
	"testing"
	"time"
)

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
