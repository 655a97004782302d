//go:build integration

package integration

// Harness of the interception tests (intercept_test.go, issue 13): the
// namespaces of integration/netns/netns.sh (a client, a router running
// popgate behind nftables redirect and TPROXY rules, a server running its
// own Dovecot), popgate started inside the router namespace, clients that
// connect from inside the client namespace, and the nftables counters that
// count connections independently of popgate.

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nsScript is the namespace script, relative to the tests' directory.
const nsScript = "netns/netns.sh"

// nsUp creates the namespaces (netns.sh up) and registers their removal
// (netns.sh down) at cleanup, before creating them, so that a failing test
// or a half-finished up leaves nothing behind. It skips the test when not
// root, and returns the values netns.sh wrote to $POPGATE_IT_DIR/netns/env.
func nsUp(t *testing.T) map[string]string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("interception tests need root (network namespaces, nftables, Dovecot on port 110 in its own namespace)")
	}
	itEnv(t) // netns.sh uses the mkmail tool and templates start.sh made
	t.Cleanup(func() {
		if out, err := exec.Command("bash", nsScript, "down").CombinedOutput(); err != nil {
			t.Errorf("netns.sh down: %v\n%s", err, out)
		}
	})
	if out, err := exec.Command("bash", nsScript, "up").CombinedOutput(); err != nil {
		t.Fatalf("netns.sh up: %v\n%s", err, out)
	}
	env, err := readEnvFile(filepath.Join(itDir(), "netns", "env"))
	if err != nil {
		t.Fatalf("netns.sh up wrote no env: %v", err)
	}
	return env
}

// nsDial connects from namespace ns (from source address src, when not
// empty) to addr. The socket is created by a goroutine locked to an OS
// thread that joins ns for the dial and returns to the original namespace
// before it is unlocked; if it cannot return, the thread stays locked and
// the runtime retires it with the goroutine, so no other goroutine ever
// runs in ns. The connection stays in ns whichever thread uses it later.
func nsDial(ns, src, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		conn, err, back := dialInNetns(ns, src, addr)
		if back {
			runtime.UnlockOSThread()
		}
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// dialInNetns is nsDial on the calling, locked thread; back reports
// whether the thread is in its original namespace again.
func dialInNetns(ns, src, addr string) (conn net.Conn, err error, back bool) {
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("own namespace: %w", err), true
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", ns, err), true
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("setns %s: %w", ns, err), true
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	conn, err = d.Dial("tcp", addr)
	if err != nil {
		err = fmt.Errorf("dial %s from %s in %s: %w", addr, src, ns, err)
	}
	return conn, err, unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil
}

// nsGreet connects from ns (source src) to addr and reads the first line,
// whatever it is. The connection is closed at cleanup; failures are fatal.
func nsGreet(t *testing.T, ns, src, addr string) *popClient {
	t.Helper()
	conn, err := nsDial(ns, src, addr)
	if err != nil {
		t.Fatal(err)
	}
	c := newPopClient(conn)
	c.Timeout = 15 * time.Second
	t.Cleanup(func() { c.Close() })
	if c.Greeting, err = c.ReadLine(); err != nil {
		t.Fatalf("greeting from %s (client %s in %s): %v", addr, src, ns, err)
	}
	return c
}

// nsPopgate starts popgate with configHCL inside namespace ns (`ip netns
// exec`, which executes popgate in place, so the process is popgate
// itself) and waits until it listens on every port in ports inside ns.
func nsPopgate(t *testing.T, ns, configHCL string, ports ...int) *Popgate {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "popgate.hcl")
	if err := os.WriteFile(cfg, []byte(configHCL), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := startProcess(t, dir, "ip", []string{"netns", "exec", ns, buildPopgate(t), "run", "-config", cfg}, nil, nil)
	p.ConfigPath = cfg
	for _, port := range ports {
		if err := p.waitListeningProc(port); err != nil {
			t.Fatalf("popgate in %s not ready: %v\noutput:\n%s", ns, err, p.Logs())
		}
	}
	return p
}

// waitListeningProc polls /proc/PID/net/tcp and tcp6 (the tables of the
// process's own network namespace; "0.0.0.0:N" in Go is a dual-stack
// socket, listed in tcp6) until a socket listens on port. Unlike a test
// connection it creates no session, so counters and audit trails only see
// the tests' own connections.
func (p *Popgate) waitListeningProc(port int) error {
	want := fmt.Sprintf(":%04X", port)
	deadline := time.Now().Add(readyTimeout)
	for {
		for _, table := range []string{"tcp", "tcp6"} {
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", p.Cmd.Process.Pid, table))
			if err != nil {
				continue
			}
			sc := bufio.NewScanner(strings.NewReader(string(data)))
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				// sl local_address rem_address st ...; st 0A is LISTEN.
				if len(f) > 3 && strings.HasSuffix(f[1], want) && f[3] == "0A" {
					return nil
				}
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("process exited (%v) before listening on port %d", p.exitErr, port)
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on port %d within %v", port, readyTimeout)
		}
	}
}

// nftPackets matches the packet count of `nft list counter`.
var nftPackets = regexp.MustCompile(`packets (\d+)`)

// nsCounter returns the packets of the named counter of table ip popgate_it
// in namespace ns (netns.sh: each counts the first packet of new
// connections).
func nsCounter(t *testing.T, ns, name string) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "counter", "ip", "popgate_it", name).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list counter %s in %s: %v\n%s", name, ns, err, out)
	}
	m := nftPackets.FindSubmatch(out)
	if m == nil {
		t.Fatalf("nft list counter %s in %s: no packet count in\n%s", name, ns, out)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// dovecotLoginRIP matches Dovecot's login line: the user and its rip=.
var dovecotLoginRIP = regexp.MustCompile(`Login: user=<([^>]*)>.*?rip=([0-9a-f.:]+)`)

// nsLoginRIP waits for Dovecot's login line of user in the log w follows
// and returns the remote address Dovecot saw.
func nsLoginRIP(t *testing.T, w *logWatch, user string) string {
	t.Helper()
	text := w.Wait(t, "Login: user=<"+user+">", 10*time.Second)
	for _, m := range dovecotLoginRIP.FindAllStringSubmatch(text, -1) {
		if m[1] == user {
			return m[2]
		}
	}
	t.Fatalf("Dovecot's login line of %s has no rip=:\n%s", user, text)
	return ""
}
