package cluster

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"unix:///run/redis/redis-server.sock", true},
		{"unix:///run/redis/redis-server.sock?db=2", true},
		{"redis://127.0.0.1:6379/0", true},
		{"rediss://redis.example.org:6380/1", true},
		{"redis://popgate@127.0.0.1:6379/0", true}, // an ACL user, no password
		{"redis://popgate:secret@127.0.0.1:6379/0", false},
		{"redis://:secret@127.0.0.1:6379/0", false},
		{"http://127.0.0.1:6379", false},
		{"unix://", false},
		{"redis://", false},
		{"redis://127.0.0.1:6379/notanumber", false},
		{"redis://popgate:secret@127.0.0.1:port/0", false},  // does not parse: no URL in the error
		{"redis://popgate:se/cret@127.0.0.1:port/0", false}, // a '/' in the password
	} {
		err := CheckURL(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q) = %v, want ok=%v", tc.url, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("CheckURL(%q) repeats the password: %v", tc.url, err)
		}
	}
}

func TestClientPasswordFile(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (Debian package redis-server; integration/setup.sh installs it)")
	}
	r := startRedis(t)
	r.stop()
	// Again, with a password.
	r.cmd = exec.Command("redis-server", "--port", "0", "--unixsocket", r.sock, "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--requirepass", "s3cret-pw")
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "redis-server with a password listens", func() bool {
		_, err := os.Stat(r.sock)
		return err == nil
	})
	good, bad := filepath.Join(r.dir, "good"), filepath.Join(r.dir, "bad")
	os.WriteFile(good, []byte("s3cret-pw\n"), 0o600)
	os.WriteFile(bad, []byte("wrong-pw\n"), 0o600)

	c, err := New(Options{Redis: r.url(), PasswordFile: good, Instance: "a"}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Up() {
		t.Fatalf("not up with the right password: %+v", c.Health())
	}
	c2, err := New(Options{Redis: r.url(), PasswordFile: bad, Instance: "b"}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	h := c2.Health()
	if c2.Up() || h.Redis != "down" {
		t.Fatalf("up with a wrong password: %+v", h)
	}
	if strings.Contains(h.Error, "wrong-pw") || strings.Contains(h.Error, "s3cret") {
		t.Fatalf("the health report shows a password: %q", h.Error)
	}
	if _, err := New(Options{Redis: r.url(), PasswordFile: filepath.Join(r.dir, "missing"), Instance: "c"}, nil); err == nil {
		t.Fatal("a missing password file was accepted")
	}
}
