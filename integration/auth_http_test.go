//go:build integration

package integration

// The external auth and routing service (auth_http): popgate asks
// integration/authsvc, a small service written to nginx's documented
// protocol, about every login, against real Dovecot A, B and C.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// authsvcBuild is the once-per-test-binary build of integration/authsvc.
var authsvcBuild struct {
	once sync.Once
	path string
	err  error
}

// startAuthSvc builds and starts integration/authsvc with the given users
// file lines and flags, on a free port; it returns the service's URL.
func startAuthSvc(t *testing.T, users []string, flags ...string) string {
	t.Helper()
	authsvcBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "popgate-it-authsvc")
		if err != nil {
			authsvcBuild.err = err
			return
		}
		authsvcBuild.path = filepath.Join(dir, "authsvc")
		cmd := exec.Command("go", "build", "-o", authsvcBuild.path, "./authsvc")
		if out, err := cmd.CombinedOutput(); err != nil {
			authsvcBuild.err = fmt.Errorf("go build authsvc: %w\n%s", err, out)
		}
	})
	if authsvcBuild.err != nil {
		t.Fatal(authsvcBuild.err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "users")
	if err := os.WriteFile(file, []byte(strings.Join(users, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	args := append([]string{"-listen", addr, "-users", file}, flags...)
	p, err := startProcess(t, dir, authsvcBuild.path, args, nil, []string{addr})
	if err != nil {
		t.Fatalf("authsvc not ready: %v\n%s", err, p.Logs())
	}
	return "http://" + addr + "/auth"
}

// authHTTPLogin logs in with USER/PASS and returns the last answer.
func authHTTPLogin(t *testing.T, addr, user, pass string) (*popClient, error) {
	t.Helper()
	c := authDial(t, addr, authIP())
	return c, c.Login(user, pass)
}

func TestAuthHTTPRoutingRewritingAndRefusals(t *testing.T) {
	alicePW, carolPW, bobPW := itPassword(t, "a", "alice"), itPassword(t, "b", "carol"), itPassword(t, "b", "bob")
	_, aPort, _ := net.SplitHostPort(envValue(t, "POP3_ADDR"))
	_, bPort, _ := net.SplitHostPort(envValue(t, "POP3B_ADDR"))
	_, cPort, _ := net.SplitHostPort(envValue(t, "POP3_WRONG_ADDR")) // Dovecot C: A's users, in no backend block
	const key = "svc-key-4e1d"
	url := startAuthSvc(t, []string{
		"alice " + alicePW + " 127.0.0.1 " + aPort,
		"carol " + carolPW + " 127.0.0.1 " + bPort,
		"bob " + bobPW + " b -", // a backend block's name: popgate's extension
		"boss " + alicePW + " 127.0.0.1 " + aPort + " alice",
		"rogue " + alicePW + " 127.0.0.1 " + cPort + " alice",
		"slow " + alicePW + " 127.0.0.1 " + aPort + " alice",
	}, "-key", key, "-slow-user", "slow", "-slow", "5s")
	main, allowed, quick, down, nokey := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	r := authStart(t, fmt.Sprintf(`
listener "main" {
  address = %[1]q
  connect = "after-auth"
  backend = "a"
  auth    = "dir"
}
listener "allowed" {
  address = %[2]q
  connect = "after-auth"
  backend = "a"
  auth    = "dir-allowing-c"
}
listener "quick" {
  address = %[3]q
  connect = "after-auth"
  backend = "a"
  auth    = "quick"
}
listener "down" {
  address = %[4]q
  connect = "after-auth"
  backend = "a"
  auth    = "down"
}
listener "nokey" {
  address = %[5]q
  connect = "after-auth"
  backend = "a"
  auth    = "nokey"
}
auth_http "dir" {
  url     = %[6]q
  headers = { "X-Auth-Key" = %[7]q }
}
auth_http "dir-allowing-c" {
  url              = %[6]q
  headers          = { "X-Auth-Key" = %[7]q }
  allowed_backends = ["127.0.0.1/32:%[8]s"]
}
auth_http "quick" {
  url     = %[6]q
  headers = { "X-Auth-Key" = %[7]q }
  timeout = "500ms"
}
auth_http "down" {
  url = "http://%[9]s/auth"
}
auth_http "nokey" {
  url = %[6]q
}
backend "b" {
  address = %[10]q
}
`, main, allowed, quick, down, nokey, url, key, cPort, freePort(t), envValue(t, "POP3B_ADDR"))+authBackendA(t),
		main, allowed, quick, down, nokey)
	r.secret(alicePW, carolPW, bobPW, key)

	t.Run("routing", func(t *testing.T) {
		for _, tc := range []struct{ login, pass, subject string }{
			{"alice", alicePW, ""},
			{"carol", carolPW, "Subject: backend B: hello carol"},
			{"bob", bobPW, "Subject: backend B: hello bob"},
		} {
			c, err := authHTTPLogin(t, main, tc.login, tc.pass)
			if err != nil {
				t.Fatalf("%s: %v", tc.login, err)
			}
			if tc.subject == "" {
				if n := authStat(t, c); n != 6 {
					t.Errorf("alice reached %d messages, want Dovecot A's 6", n)
				}
			} else if top := authTop(t, c, 1); !strings.Contains(top, tc.subject) {
				t.Errorf("%s: TOP 1 0 = %q, want %q", tc.login, top, tc.subject)
			}
		}
	})
	t.Run("rewriting", func(t *testing.T) {
		ip := authIP()
		w := watchLog(t, envValue(t, "DOVECOT_LOG"))
		c := authDial(t, main, ip)
		if err := c.Login("boss", alicePW); err != nil {
			t.Fatal(err)
		}
		w.Wait(t, authLoginLine("alice", "PLAIN", ip), 10*time.Second)
		if n := authStat(t, c); n != 6 {
			t.Errorf("boss reached %d messages, want alice's 6", n)
		}
	})
	t.Run("wrong-password", func(t *testing.T) {
		c, err := authHTTPLogin(t, main, "alice", "totally-wrong")
		if err == nil || c.Last != "-ERR [AUTH] Invalid login or password" {
			t.Fatalf("wrong password: %q, %v", c.Last, err)
		}
	})
	t.Run("not-allowed-server-refused", func(t *testing.T) {
		c, err := authHTTPLogin(t, main, "rogue", alicePW)
		if err == nil || !strings.HasPrefix(c.Last, "-ERR [SYS/TEMP] ") {
			t.Fatalf("server in no backend block: %q, %v; want -ERR [SYS/TEMP]", c.Last, err)
		}
		authWaitLine(t, r.P, 10*time.Second, "auth service answer refused", "not in allowed_backends")
	})
	t.Run("allowed-server", func(t *testing.T) {
		c, err := authHTTPLogin(t, allowed, "rogue", alicePW)
		if err != nil {
			t.Fatalf("server in allowed_backends: %v", err)
		}
		if n := authStat(t, c); n != 6 {
			t.Errorf("reached %d messages through Dovecot C, want alice's 6", n)
		}
	})
	t.Run("slow-service", func(t *testing.T) {
		start := time.Now()
		c, err := authHTTPLogin(t, quick, "slow", alicePW)
		if err == nil || !strings.HasPrefix(c.Last, "-ERR [SYS/TEMP] ") {
			t.Fatalf("slow service: %q, %v; want -ERR [SYS/TEMP]", c.Last, err)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("answered after %s; the timeout is 500ms", d)
		}
	})
	t.Run("service-down", func(t *testing.T) {
		c, err := authHTTPLogin(t, down, "alice", alicePW)
		if err == nil || !strings.HasPrefix(c.Last, "-ERR [SYS/TEMP] ") {
			t.Fatalf("service down: %q, %v; want -ERR [SYS/TEMP]", c.Last, err)
		}
	})
	t.Run("service-error", func(t *testing.T) {
		// Without the key the service answers without Auth-Status.
		c, err := authHTTPLogin(t, nokey, "alice", alicePW)
		if err == nil || !strings.HasPrefix(c.Last, "-ERR [SYS/TEMP] ") {
			t.Fatalf("malformed answer: %q, %v; want -ERR [SYS/TEMP]", c.Last, err)
		}
	})
	t.Run("apop-to-pass-python-poplib", func(t *testing.T) {
		script := `import poplib, sys
p = poplib.POP3(sys.argv[1], int(sys.argv[2]), timeout=20)
p.apop(sys.argv[3], sys.argv[4])
print(p.stat()[0])
p.quit()
`
		host, port, _ := net.SplitHostPort(main)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "python3", "-c", script, host, port, "alice", alicePW).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "6" {
			t.Fatalf("python3 poplib APOP: %v\n%s", err, out)
		}
	})
	t.Run("cram-md5-curl", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "curl", "-sS", "--login-options", "AUTH=CRAM-MD5", "-u", "carol:"+carolPW, "pop3://"+main+"/")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("curl CRAM-MD5: %v\n%s", err, out)
		}
		if lines := strings.Fields(strings.TrimSpace(string(out))); len(lines) == 0 {
			t.Fatalf("curl listed nothing: %q", out)
		}
		authWaitLine(t, r.P, 10*time.Second, "login", "mechanism=cram-md5", "backend=b")
	})
}

func TestAuthHTTPMasterUserWithVerifyingService(t *testing.T) {
	alicePW := itPassword(t, "a", "alice")
	url := startAuthSvc(t, []string{"alice " + alicePW + " master -"})
	addr := freePort(t)
	r := authStart(t, fmt.Sprintf(`
listener "m" {
  address = %q
  connect = "after-auth"
  backend = "master"
  auth    = "verifier"
}
auth_http "verifier" {
  url               = %q
  verifies_password = true
}
backend "master" {
  address         = %q
  login           = "sasl-plain"
  master_user     = %q
  master_password = %q
  forward_client  = "xclient"
}
`, addr, url, envValue(t, "POP3_ADDR"), envValue(t, "MASTER_USER"), envValue(t, "MASTER_PASSWORD")), addr)
	r.secret(alicePW, envValue(t, "MASTER_PASSWORD"))
	ip := authIP()
	w := watchLog(t, envValue(t, "DOVECOT_LOG"))
	c := authDial(t, addr, ip)
	if err := c.Login("alice", alicePW); err != nil {
		t.Fatalf("login through a verifying service to a master backend: %v", err)
	}
	if n := authStat(t, c); n != 6 {
		t.Errorf("alice has %d messages, want 6", n)
	}
	w.Wait(t, "user=<alice>, method=PLAIN, rip="+ip+",", 10*time.Second)
	// The service refuses a wrong password: the master never acts for it.
	c2 := authDial(t, addr, authIP())
	if err := c2.Login("alice", "totally-wrong"); err == nil || !strings.HasPrefix(c2.Last, "-ERR [AUTH]") {
		t.Fatalf("wrong password: %q, %v", c2.Last, err)
	}
}
