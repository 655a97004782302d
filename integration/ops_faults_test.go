//go:build integration

package integration

// Fault injection with real processes: a Dovecot session process killed
// mid-transfer, backends that are down or stall, clients that vanish, a
// full spool file system, SIGTERM during a 50 MiB retrieval. Every test
// logs what the client saw and checks what the mailbox holds afterwards.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// opsSocket is one TCP socket as `ss -tnpH` shows it.
type opsSocket struct {
	local, peer int // ports
	pids        []int
}

var (
	opsSSLine = regexp.MustCompile(`(\S+):(\d+)\s+(\S+):(\d+)\s+users:\((.*)\)\s*$`)
	opsSSPid  = regexp.MustCompile(`pid=(\d+)`)
)

// opsSockets lists established TCP sockets with their owning processes.
func opsSockets(t *testing.T) []opsSocket {
	t.Helper()
	out, err := exec.Command("ss", "-tnpH", "state", "established").Output()
	if err != nil {
		t.Fatalf("ss -tnpH: %v", err)
	}
	var socks []opsSocket
	for _, line := range strings.Split(string(out), "\n") {
		m := opsSSLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		s := opsSocket{}
		s.local, _ = strconv.Atoi(m[2])
		s.peer, _ = strconv.Atoi(m[4])
		for _, pm := range opsSSPid.FindAllStringSubmatch(m[5], -1) {
			pid, _ := strconv.Atoi(pm[1])
			s.pids = append(s.pids, pid)
		}
		socks = append(socks, s)
	}
	return socks
}

func (s opsSocket) ownedBy(pid int) bool {
	for _, p := range s.pids {
		if p == pid {
			return true
		}
	}
	return false
}

// opsBackendProcess returns the PID of the Dovecot A "pop3" process that
// serves user's session, and checks with ss that its connection is
// popgate's backend connection (its peer port is a port of popgate's).
func opsBackendProcess(t *testing.T, p *Popgate, user string) int {
	t.Helper()
	out, err := exec.Command("doveadm", "-c", envValue(t, "DOVECOT_CONF"), "who", "-1", user).Output()
	if err != nil {
		t.Fatalf("doveadm who %s: %v", user, err)
	}
	var pids []int
	for _, line := range strings.Split(string(out), "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == user && f[1] == "pop3" {
			pid, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatalf("doveadm who line %q: %v", line, err)
			}
			pids = append(pids, pid)
		}
	}
	if len(pids) != 1 {
		t.Fatalf("doveadm who %s lists %d sessions, want 1:\n%s", user, len(pids), out)
	}
	pid := pids[0]
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || strings.TrimSpace(string(comm)) != "pop3" {
		t.Fatalf("process %d is %q (%v), want Dovecot's pop3", pid, comm, err)
	}
	_, port, _ := net.SplitHostPort(envValue(t, "POP3_ADDR"))
	dovecotPort, _ := strconv.Atoi(port)
	socks := opsSockets(t)
	for _, d := range socks {
		if !d.ownedBy(pid) || d.local != dovecotPort {
			continue
		}
		for _, s := range socks {
			if s.ownedBy(p.Cmd.Process.Pid) && s.local == d.peer && s.peer == dovecotPort {
				return pid
			}
		}
	}
	t.Fatalf("pop3 process %d of %s holds no connection to popgate (pid %d)", pid, user, p.Cmd.Process.Pid)
	return 0
}

// TestOpsFaultBackendKilled kills the Dovecot process serving a 50 MiB
// RETR after the client received part of the body.
func TestOpsFaultBackendKilled(t *testing.T) {
	const user, other = "load454", "load455"
	opsSeedBig(t, user)
	seedUser(t, other)
	addr := freePort(t)
	p := opsStart(t, opsReloadConfig("pop3", addr, envValue(t, "POP3_ADDR")))
	w := watchLog(t, envValue(t, "DOVECOT_LOG"))

	c := opsLogin(t, addr, user)
	opsCmdOK(t, c, "DELE 1")
	victim := opsBackendProcess(t, p, user)
	parallel := opsLogin(t, addr, other)

	opsCmdOK(t, c, fmt.Sprintf("RETR %d", opsBigMsg))
	head := make([]byte, 1<<20)
	if _, err := io.ReadFull(c.R, head); err != nil {
		t.Fatalf("first MiB of the body: %v", err)
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatalf("kill Dovecot pop3 process %d: %v", victim, err)
	}
	rest := opsReadToEOF(t, c, 30*time.Second)
	got := append(head, rest...)
	t.Logf("backend killed mid-RETR: client got +OK and %d of about %d body octets, then EOF; ends %q",
		len(got), 50<<20, got[max(0, len(got)-16):])
	if bytes.HasSuffix(got, []byte("\r\n.\r\n")) {
		t.Errorf("the truncated body ends with the terminating dot: it looks complete")
	}
	if len(got) >= 50<<20 {
		t.Errorf("the client got %d octets: the whole message, not a truncated one", len(got))
	}
	ended := opsSessionEnd(t, p, c)

	// Other sessions carry on, and new ones start.
	if line := opsCmdOK(t, parallel, "STAT"); !strings.HasPrefix(line, fmt.Sprintf("+OK %d ", opsLoadMsgs)) {
		t.Errorf("parallel session STAT = %q", line)
	}
	opsCmdOK(t, parallel, "QUIT")
	fresh := dialPOP(t, addr)
	opsCmdOK(t, fresh, "QUIT")

	// The killed process never saw a QUIT: nothing was expunged.
	if s := w.Since(t); regexp.MustCompile(`pop3\(` + user + `\)[^\n]*Logged out`).MatchString(s) {
		t.Errorf("Dovecot logged a QUIT of %s:\n%s", user, s)
	}
	opsWantMailbox(t, user, opsBigMsg)
	if !strings.Contains(ended, "reason=backend-error") {
		t.Errorf("a backend that dies mid-body ends the session as %q: logged as \"session closed while writing a response\" and counted as a client write error", ended)
	}
}

// opsSessionEnd waits for popgate's "session ended" line of client c and
// returns it.
func opsSessionEnd(t *testing.T, p *Popgate, c *popClient) string {
	t.Helper()
	key := "session ended: client=" + c.Conn.LocalAddr().String() + " "
	logs := p.WaitLog(t, key, 10*time.Second)
	line := logs[strings.Index(logs, key):]
	line, _, _ = strings.Cut(line, "\n")
	return line
}

// TestOpsFaultBackendUnreachable points listeners at a port nobody
// listens on.
func TestOpsFaultBackendUnreachable(t *testing.T) {
	onAccept, afterAuth := freePort(t), freePort(t)
	opsStart(t, fmt.Sprintf(`
listener "on-accept" {
  address = %q
}
listener "after-auth" {
  address = %q
  connect = "after-auth"
}
backend "dead" {
  address = %q
}
`, onAccept, afterAuth, opsDeadAddr(t)))

	c, err := tryDialPOP(onAccept, nil)
	var pe *popError
	if !errors.As(err, &pe) || !strings.HasPrefix(pe.Line, "-ERR [SYS/TEMP] ") {
		if c != nil {
			c.Close()
		}
		t.Fatalf("on-accept greeting with the backend down: %v, want -ERR [SYS/TEMP]", err)
	}
	t.Logf("on-accept, backend down: greeting %q", pe.Line)

	a := dialPOP(t, afterAuth)
	opsCmdOK(t, a, "USER load460")
	line, err := a.Cmd("PASS " + itPassword(t, "a", "load460"))
	if !strings.HasPrefix(line, "-ERR [SYS/TEMP] ") {
		t.Errorf("after-auth PASS with the backend down: %q (%v), want -ERR [SYS/TEMP]", line, err)
	}
	t.Logf("after-auth, backend down: PASS answered %q", line)
	// Not counted as a failed login: the session stays usable.
	if line, err := a.Cmd("QUIT"); err != nil {
		t.Errorf("QUIT after the failed backend connection: %q, %v", line, err)
	}
}

// opsFakeBackend is a POP3 server that greets (unless silent) and then
// never answers; it records what it was sent.
type opsFakeBackend struct {
	ln    net.Listener
	mu    sync.Mutex
	got   bytes.Buffer
	conns []net.Conn
}

func opsStartFake(t *testing.T, greet bool) *opsFakeBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &opsFakeBackend{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, conn)
			f.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if greet {
					conn.Write([]byte("+OK fake backend ready\r\n"))
				}
				buf := make([]byte, 4096)
				for {
					n, err := conn.Read(buf)
					f.mu.Lock()
					f.got.Write(buf[:n])
					f.mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return f
}

// received returns what the fake was sent so far.
func (f *opsFakeBackend) received() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got.String()
}

// TestOpsFaultBackendStall runs sessions against a backend that stops
// answering, with backend_timeout = "2s" (and connect_timeout = "2s" for
// one that never greets).
func TestOpsFaultBackendStall(t *testing.T) {
	stall, silent := opsStartFake(t, true), opsStartFake(t, false)
	onAccept, afterAuth, mute := freePort(t), freePort(t), freePort(t)
	p := opsStart(t, fmt.Sprintf(`
limits {
  backend_timeout = "2s"
}
listener "on-accept" {
  address = %q
  backend = "stall"
}
listener "after-auth" {
  address = %q
  backend = "stall"
  connect = "after-auth"
}
listener "mute" {
  address = %q
  backend = "silent"
}
backend "stall" {
  address = %q
}
backend "silent" {
  address = %q
  connect_timeout = "2s"
}
`, onAccept, afterAuth, mute, stall.ln.Addr(), silent.ln.Addr()))

	timed := func(t *testing.T, c *popClient, cmd string) (string, time.Duration) {
		t.Helper()
		start := time.Now()
		line, _ := c.Cmd(cmd)
		d := time.Since(start)
		if !strings.HasPrefix(line, "-ERR [SYS/TEMP] ") {
			t.Errorf("%s to a stalled backend: %q, want -ERR [SYS/TEMP]", cmd, line)
		}
		if d < 1500*time.Millisecond || d > 6*time.Second {
			t.Errorf("%s answered after %v, want about the 2 s backend_timeout", cmd, d)
		}
		return line, d
	}

	t.Run("OnAccept", func(t *testing.T) {
		c := dialPOP(t, onAccept)
		if c.Greeting != "+OK fake backend ready" {
			t.Fatalf("greeting %q, want the fake's", c.Greeting)
		}
		line, d := timed(t, c, "USER someone")
		rest := opsReadToEOF(t, c, 5*time.Second)
		t.Logf("on-accept, backend stalls after greeting: USER answered %q after %v, then %q and EOF", line, d.Round(time.Millisecond), rest)
		if len(rest) != 0 {
			t.Errorf("after the -ERR popgate sent %q, want the connection closed", rest)
		}
		if !strings.Contains(stall.received(), "USER someone\r\n") {
			t.Errorf("the fake backend never got the USER command; it got %q", stall.received())
		}
	})
	t.Run("AfterAuth", func(t *testing.T) {
		c := dialPOP(t, afterAuth)
		opsCmdOK(t, c, "USER someone")
		line, d := timed(t, c, "PASS secret")
		// popgate keeps the session: the client may try again or QUIT.
		q, err := c.Cmd("QUIT")
		t.Logf("after-auth, backend stalls at login: PASS answered %q after %v; QUIT answered %q (%v)", line, d.Round(time.Millisecond), q, err)
		if err != nil {
			t.Errorf("QUIT after the stalled login: %q, %v", q, err)
		}
	})
	t.Run("NeverGreets", func(t *testing.T) {
		start := time.Now()
		c, err := tryDialPOP(mute, nil)
		d := time.Since(start)
		var pe *popError
		if !errors.As(err, &pe) || !strings.HasPrefix(pe.Line, "-ERR [SYS/TEMP] ") {
			if c != nil {
				c.Close()
			}
			t.Fatalf("greeting via a backend that never greets: %v, want -ERR [SYS/TEMP]", err)
		}
		if d < 1500*time.Millisecond || d > 6*time.Second {
			t.Errorf("refused after %v, want about the 2 s connect_timeout", d)
		}
		t.Logf("on-accept, backend never greets: client got %q after %v", pe.Line, d.Round(time.Millisecond))
	})
	select {
	case <-p.Done():
		t.Fatalf("popgate exited: %v", p.ExitErr())
	default:
	}
}

// TestOpsFaultClientVanishes drops the client (with a TCP reset) right
// after DELE.
func TestOpsFaultClientVanishes(t *testing.T) {
	const user = "load456"
	seedUser(t, user)
	addr := freePort(t)
	p := opsStart(t, opsReloadConfig("pop3", addr, envValue(t, "POP3_ADDR")))
	w := watchLog(t, envValue(t, "DOVECOT_LOG"))
	c := opsLogin(t, addr, user)
	opsCmdOK(t, c, "DELE 1")
	opsCmdOK(t, c, "DELE 2")
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		tc.SetLinger(0) // close with RST, as a vanished client's host would
	}
	key := "session ended: client=" + c.Conn.LocalAddr().String() + " "
	c.Close()
	p.WaitLog(t, key, 10*time.Second)
	reason := opsDovecotEnd(t, w, user, 10*time.Second)
	t.Logf("client vanished (RST) after DELE 1, DELE 2: Dovecot logged %q", reason)
	opsNoQuit(t, reason)
	opsWantMailbox(t, user, opsLoadMsgs)
}

// TestOpsFaultSpoolFull gives the clamav filter a 1 MiB spool file system
// and retrieves a 10 MiB message (user virus, message 4; read-only).
func TestOpsFaultSpoolFull(t *testing.T) {
	spool := filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", spool, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		// Fallback: a spool directory that disappears after validation.
		t.Logf("mount tmpfs: %v; using a spool_dir that is removed instead", err)
	} else {
		t.Cleanup(func() {
			if err := syscall.Unmount(spool, 0); err != nil {
				t.Errorf("unmount %s: %v", spool, err)
			}
		})
	}
	addr := freePort(t)
	p := opsStart(t, fmt.Sprintf(`
listener "pop3" {
  address = %q
}
%s
filter "clamav" {
  address      = "unix://%s"
  spool_dir    = %q
  spool_memory = "64KiB"
}
`, addr, opsBackendA(t), envValue(t, "CLAMD_UNIX"), spool))
	if !opsMounted(spool) {
		if err := os.Remove(spool); err != nil {
			t.Fatal(err)
		}
	}
	c := opsLogin(t, addr, "virus")
	line, err := c.Cmd("RETR 4")
	t.Logf("RETR of a 10 MiB message with a 1 MiB spool: %q", line)
	if !strings.HasPrefix(line, "-ERR [SYS/TEMP] ") {
		t.Fatalf("RETR 4 with a full spool: %q (%v), want -ERR [SYS/TEMP]", line, err)
	}
	if opsMounted(spool) {
		p.WaitLog(t, "no space left on device", 5*time.Second)
	}
	// The session goes on, in step with the backend.
	if line := opsCmdOK(t, c, "STAT"); !strings.HasPrefix(line, "+OK 4 ") {
		t.Errorf("STAT after the spool failure = %q", line)
	}
	body, err := c.Multi("RETR 1")
	if err != nil || !bytes.Contains(body, []byte("Subject: clean before\r\n")) {
		t.Errorf("RETR 1 after the spool failure: %v\n%.200s", err, body)
	}
	opsCmdOK(t, c, "QUIT")
	if entries, err := os.ReadDir(spool); err == nil && len(entries) != 0 {
		t.Errorf("spool files left behind: %v", entries)
	}
	fresh := dialPOP(t, addr)
	opsCmdOK(t, fresh, "QUIT")
}

// opsMounted reports whether dir is a mount point.
func opsMounted(dir string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// TestOpsFaultSIGTERMMidRETR stops popgate while a 50 MiB message is on
// its way: with shutdown_timeout = "30s" the transfer completes intact
// before popgate exits.
func TestOpsFaultSIGTERMMidRETR(t *testing.T) {
	const user = "load457"
	opsSeedBig(t, user)
	wantSum, wantLen := opsDirectHash(t, user, opsBigMsg)
	addr := freePort(t)
	p := opsStart(t, "shutdown_timeout = \"30s\"\n"+opsReloadConfig("pop3", addr, envValue(t, "POP3_ADDR")))
	c := opsLogin(t, addr, user)
	opsCmdOK(t, c, fmt.Sprintf("RETR %d", opsBigMsg))
	if _, err := c.R.Peek(60 << 10); err != nil {
		t.Fatalf("first 60 KiB of the body: %v", err)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, "shutting down", 5*time.Second)
	sum, n, err := opsHashBody(c)
	if err != nil {
		t.Fatalf("body after SIGTERM: %v (%d octets)", err, n)
	}
	t.Logf("SIGTERM mid-RETR: client got %d octets and the terminator", n)
	if n != wantLen || sum != wantSum {
		t.Errorf("body through popgate: %d octets, SHA-256 %x; direct fetch: %d octets, %x", n, sum, wantLen, wantSum)
	}
	select {
	case <-p.Done():
		t.Fatalf("popgate exited (%v) while the session was open", p.ExitErr())
	default:
	}
	opsCmdOK(t, c, "QUIT")
	if err := p.WaitExit(t, 10*time.Second); err != nil {
		t.Errorf("popgate exit: %v, want status 0", err)
	}
	opsWantMailbox(t, user, opsBigMsg)
}
