//go:build integration

package integration

// SIGHUP with a changed cluster block keeps the running Redis connection
// (and says so), while a changed max_sessions_per_user applies at once.

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestClusterReload(t *testing.T) {
	r := startRedis(t)
	fake := fakePOP3(t)
	a := clusterStart(t, "pg-a", r, fake, "limits {\n  max_sessions_per_user = 1\n}\n")
	held := dialPOP(t, a.Addr)
	if err := held.Login("erin", fakePassword); err != nil {
		t.Fatal(err)
	}
	second := func() error {
		c := dialPOP(t, a.Addr)
		defer c.Close()
		return c.Login("erin", fakePassword)
	}
	if err := second(); err == nil || !strings.Contains(err.Error(), "[IN-USE]") {
		t.Fatalf("a second session with max_sessions_per_user = 1: %v, want [IN-USE]", err)
	}
	cfg, err := os.ReadFile(a.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(cfg), `instance = "pg-a"`, `instance = "pg-renamed"`, 1)
	changed = strings.Replace(changed, "max_sessions_per_user = 1", "max_sessions_per_user = 2", 1)
	if err := os.WriteFile(a.ConfigPath, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	a.WaitLog(t, "changing the cluster block needs a restart", 10*time.Second)
	a.WaitLog(t, "configuration reloaded", 10*time.Second)
	if err := second(); err != nil {
		t.Fatalf("a second session after raising max_sessions_per_user to 2: %v", err)
	}
	// The running instance name is kept until a restart.
	if members := r.Cli("ZRANGE", "popgate:sessions:erin", "0", "-1"); !strings.HasPrefix(members, "pg-a/") {
		t.Fatalf("leases after the reload: %q, want the running instance name pg-a", members)
	}
}
