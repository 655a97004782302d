//go:build integration

package integration

// DELE through the core relay: deletions are committed by QUIT only (also
// when QUIT is pipelined), never by a dropped connection, and commands
// pipelined after QUIT are never executed.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

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
