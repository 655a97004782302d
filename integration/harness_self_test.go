//go:build integration

package integration

// Tests of the harness itself: the process helper, the POP3 client's body
// reader, and the rule that no repository file carries the EICAR string.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestHarnessProcess(t *testing.T) {
	addr := freePort(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := startProcess(t, t.TempDir(), exe, nil, []string{"POPGATE_IT_HELPER=listen:" + addr}, []string{addr})
	if err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, "listening on "+addr, 10*time.Second)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitExit(t, 10*time.Second); err != nil {
		t.Fatalf("helper exited with %v, want success", err)
	}
	if !strings.Contains(p.Logs(), "terminating") {
		t.Errorf("output lacks the helper's last line:\n%s", p.Logs())
	}
}

// TestHarnessStartPopgate checks startPopgate with the real binary: a
// plain listener in front of Dovecot A relays a byte-exact RETR, and
// SIGTERM ends the process with status 0.
func TestHarnessStartPopgate(t *testing.T) {
	addr := freePort(t)
	cfg := fmt.Sprintf(`state_dir = "./state"
listener "pop3" {
  address = %q
  tls     = "none"
  backend = "a"
}
backend "a" {
  address = %q
}
`, addr, envValue(t, "POP3_ADDR"))
	p := startPopgate(t, cfg, addr)
	c := dialPOP(t, addr)
	if err := c.Login("alice", itPassword(t, "a", "alice")); err != nil {
		t.Fatal(err)
	}
	body, err := c.Multi("RETR 3")
	if err != nil {
		t.Fatal(err)
	}
	if want := expectedRETR(maildirMessages(t, envValue(t, "MAIL_ROOT"), "alice")[2]); !bytes.Equal(body, want) {
		t.Errorf("RETR 3 through popgate = %q, want %q", body, want)
	}
	if _, err := c.Cmd("QUIT"); err != nil {
		t.Error(err)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitExit(t, 15*time.Second); err != nil {
		t.Errorf("popgate exited with %v after SIGTERM, want status 0", err)
	}
}

// TestHarnessStartPopgateFailure checks that tryStartPopgate reports a
// process that exits at start-up, with its output and exit status.
func TestHarnessStartPopgateFailure(t *testing.T) {
	addr := freePort(t)
	p, err := tryStartPopgate(t, "listener \"pop3\" {\n  address = \""+addr+"\"\n  backend = \"missing\"\n}\n", addr)
	if err == nil {
		t.Fatalf("popgate started with a listener naming a missing backend; output:\n%s", p.Logs())
	}
	if p.ExitErr() == nil {
		t.Errorf("popgate exited with status 0 on a bad configuration")
	}
	if !strings.Contains(strings.ToLower(p.Logs()), "error") {
		t.Errorf("output reports no error:\n%s", p.Logs())
	}
}

// bodyFrom feeds wire to a popClient through a pipe and returns ReadBody's
// result.
func bodyFrom(t *testing.T, wire string) ([]byte, error) {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close() })
	go func() {
		// One byte at a time, to exercise fragment handling.
		for i := 0; i < len(wire); i++ {
			if _, err := server.Write([]byte{wire[i]}); err != nil {
				break
			}
		}
		server.Close()
	}()
	return newPopClient(client).ReadBody()
}

func TestHarnessReadBody(t *testing.T) {
	long := strings.Repeat("x", 200<<10) // longer than the reader's buffer
	cases := []struct {
		name, wire, want string
		err              error
	}{
		{"empty", ".\r\n", "", nil},
		{"unstuff", "..a\r\n...\r\nb.\r\n.\r\n", ".a\r\n..\r\nb.\r\n", nil},
		{"long stuffed line", ".." + long + "\r\n.\r\n", "." + long + "\r\n", nil},
		{"lone dot in body", "a\r\n..\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", nil},
		{"eof", "a\r\nb", "a\r\nb", io.ErrUnexpectedEOF},
		{"eof at line start", "a\r\n", "a\r\n", io.ErrUnexpectedEOF},
		{"bare lf", "a\n.\r\n", "a\n", errBareLF},
		{"dot bare lf", "a\r\n.\n", "a\r\n\n", errBareLF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bodyFrom(t, tc.wire)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if string(got) != tc.want {
				t.Errorf("body = %.80q, want %.80q", got, tc.want)
			}
		})
	}
}

// TestNoEICARInRepo checks every file git tracks or would track (ignored
// build outputs excluded) for the EICAR string.
func TestNoEICARInRepo(t *testing.T) {
	needle := []byte(eicar())
	out, err := exec.Command("git", "-C", "..", "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	files := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(files) < 10 {
		t.Fatalf("git ls-files listed only %d files", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join("..", f))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, needle) {
			t.Errorf("%s contains the EICAR test string; build it from two halves at run time", f)
		}
	}
}
