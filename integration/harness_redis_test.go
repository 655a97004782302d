//go:build integration

package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RedisServer is a private redis-server a test started: no persistence,
// a unix socket in the test's own directory, stopped by its PID at cleanup.
// Tests of the cluster block (and of the fleet behind HAProxy) share this
// helper.
type RedisServer struct {
	t    testing.TB
	Dir  string
	Sock string
	cmd  *exec.Cmd
}

// startRedis starts a private redis-server, or skips the test when the
// binary is missing (integration/setup.sh installs the Debian package
// redis-server, so CI always has it).
func startRedis(t testing.TB) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (Debian package redis-server; integration/setup.sh installs it)")
	}
	// A short directory: a unix socket path is limited to 107 octets.
	dir, err := os.MkdirTemp("", "pg-redis")
	if err != nil {
		t.Fatal(err)
	}
	r := &RedisServer{t: t, Dir: dir, Sock: filepath.Join(dir, "redis.sock")}
	r.Start()
	t.Cleanup(func() {
		r.Kill()
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(dir, "redis.log")); err == nil {
				t.Logf("redis-server log:\n%s", log)
			}
		}
		os.RemoveAll(dir)
	})
	return r
}

// URL is the server's address for a cluster block.
func (r *RedisServer) URL() string { return "unix://" + r.Sock }

// Start runs redis-server (again, after Kill: with an empty data set) and
// waits until it accepts connections on its socket.
func (r *RedisServer) Start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", "0", "--unixsocket", r.Sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", r.Dir, "--logfile", filepath.Join(r.Dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("starting redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", r.Sock)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server did not accept connections within 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server with SIGKILL, by its PID, as a crash would.
func (r *RedisServer) Kill() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
	os.Remove(r.Sock)
}

// Cli runs redis-cli against the server and returns its trimmed output.
func (r *RedisServer) Cli(args ...string) string {
	r.t.Helper()
	out, err := exec.Command("redis-cli", append([]string{"-s", r.Sock}, args...)...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}
