package cluster

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// testRedis is a private redis-server the test started: no persistence,
// a unix socket in the test's directory, stopped by its PID.
type testRedis struct {
	t    testing.TB
	dir  string
	sock string
	cmd  *exec.Cmd
}

// startRedis starts a private redis-server, or skips the test when the
// redis-server binary is not installed (integration/setup.sh installs it
// in CI).
func startRedis(t testing.TB) *testRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (Debian package redis-server; integration/setup.sh installs it)")
	}
	dir := t.TempDir()
	r := &testRedis{t: t, dir: dir, sock: filepath.Join(dir, "redis.sock")}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *testRedis) url() string { return "unix://" + r.sock }

// start runs redis-server and waits until it answers on its socket.
func (r *testRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", "0", "--unixsocket", r.sock,
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("starting redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", r.sock)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			r.t.Fatalf("redis-server did not come up: %v\n%s", err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the server by its PID and waits for it.
func (r *testRedis) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
	os.Remove(r.sock)
}

// newTestClient connects a Client named instance to r.
func newTestClient(t *testing.T, r *testRedis, instance string) *Client {
	t.Helper()
	c, err := New(Options{Redis: r.url(), Instance: instance, Timeout: 300 * time.Millisecond}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if !c.Up() {
		t.Fatalf("client %s: Redis not up after New", instance)
	}
	return c
}

// waitUntil polls cond every 20ms until it holds or the deadline passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var bg = context.Background()
