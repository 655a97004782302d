//go:build integration

package integration

// Login rewriting (strip or add a domain, lower case, a map file) and
// routing of users between Dovecot A and B.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAuthRewrite(t *testing.T) {
	mapFile := filepath.Join(t.TempDir(), "logins.map")
	if err := os.WriteFile(mapFile, []byte("# client login   backend login\nboss@corp.test   alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ls := map[string]string{"strip": freePort(t), "add": freePort(t), "lower": freePort(t), "map": freePort(t)}
	var body strings.Builder
	for _, name := range []string{"strip", "add", "lower", "map"} {
		fmt.Fprintf(&body, "listener %q {\n  address = %q\n  connect = \"after-auth\"\n  backend = \"a\"\n  filters = [\"audit\", %q]\n}\n", name, ls[name], name)
	}
	fmt.Fprintf(&body, `
filter "rewrite" {
  name         = "strip"
  strip_domain = true
}
filter "rewrite" {
  name       = "add"
  add_domain = "example.test"
}
filter "rewrite" {
  name      = "lower"
  lowercase = true
}
filter "rewrite" {
  name     = "map"
  map_file = %q
}
`, mapFile)
	body.WriteString(authBackendA(t))
	r := authStart(t, body.String(), ls["strip"], ls["add"], ls["lower"], ls["map"])
	pw := itPassword(t, "a", "alice")
	r.secret(pw)
	dlog := envValue(t, "DOVECOT_LOG")

	for _, tc := range []struct {
		listener, login, backendUser string
		ok                           bool
	}{
		{"strip", "alice@example.test", "alice", true},
		{"lower", "ALICE", "alice", true},
		{"map", "Boss@Corp.test", "alice", true},
		// Dovecot A knows no alice@example.test: its auth log proves the
		// name it was asked for.
		{"add", "alice", "alice@example.test", false},
	} {
		t.Run(tc.listener, func(t *testing.T) {
			t.Parallel()
			ip := authIP()
			w := watchLog(t, dlog)
			c := authDial(t, ls[tc.listener], ip)
			err := c.Login(tc.login, pw)
			if tc.ok {
				if err != nil {
					t.Fatalf("login as %s: %v", tc.login, err)
				}
				if n := authStat(t, c); n != 6 {
					t.Errorf("%s reached a mailbox with %d messages, want alice's 6", tc.login, n)
				}
				w.Wait(t, authLoginLine(tc.backendUser, "PLAIN", ip), 10*time.Second)
			} else {
				if !strings.HasPrefix(c.Last, "-ERR [AUTH] ") {
					t.Fatalf("login as %s: %q, %v; want -ERR [AUTH]", tc.login, c.Last, err)
				}
				w.Wait(t, fmt.Sprintf("passwd-file(%s,%s,", tc.backendUser, ip), 10*time.Second)
			}
			result := map[bool]string{true: "ok", false: "fail"}[tc.ok]
			rec := authAuditAuth(t, r.Audit, ip, result)
			if rec["client_user"] != tc.login || rec["backend_user"] != tc.backendUser {
				t.Errorf("audit auth record %v: want client_user %q, backend_user %q", rec, tc.login, tc.backendUser)
			}
			authWaitLine(t, r.P, 10*time.Second, "client="+ip+":", "user="+tc.login)
		})
	}
}

func TestAuthRouting(t *testing.T) {
	routes := filepath.Join(t.TempDir(), "routes")
	if err := os.WriteFile(routes, []byte("# user backend\nbob b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plain, strip := freePort(t), freePort(t)
	r := authStart(t, fmt.Sprintf(`
listener "plain" {
  address = %q
  connect = "after-auth"
  backend = "a"
  filters = ["audit"]
}
listener "strip" {
  address = %q
  connect = "after-auth"
  backend = "a"
  filters = ["audit", "rewrite"]
}
filter "rewrite" {
  strip_domain = true
}
backend "b" {
  address = %q
}
route {
  user    = "carol*"
  backend = "b"
}
route {
  user    = "bob"
  backend = "a"
}
route_map {
  file = %q
}
`, plain, strip, envValue(t, "POP3B_ADDR"), routes)+authBackendA(t), plain, strip)

	for _, tc := range []struct {
		name, listener, login, instance, user, backend, subject string
	}{
		{"alice-default", plain, "alice", "a", "alice", "a", "Subject: plain hello"},
		{"carol-route", plain, "carol", "b", "carol", "b", "Subject: backend B: hello carol"},
		// route_map comes before the route blocks that send bob to A.
		{"bob-route-map", plain, "bob", "b", "bob", "b", "Subject: backend B: hello bob"},
		// Routing sees the rewritten name.
		{"carol-rewritten", strip, "carol@example.test", "b", "carol", "b", "Subject: backend B: hello carol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pw := itPassword(t, tc.instance, tc.user)
			r.secret(pw)
			ip := authIP()
			c := authDial(t, tc.listener, ip)
			if err := c.Login(tc.login, pw); err != nil {
				t.Fatalf("login %s: %v", tc.login, err)
			}
			if top := authTop(t, c, 1); !strings.Contains(top, "\r\n"+tc.subject+"\r\n") {
				t.Errorf("%s: message 1 lacks %q:\n%s", tc.login, tc.subject, top)
			}
			if rec := authAuditAuth(t, r.Audit, ip, "ok"); rec["backend"] != tc.backend {
				t.Errorf("audit auth record %v: want backend %q", rec, tc.backend)
			}
			authWaitLine(t, r.P, 10*time.Second, "login:", "client="+ip+":", "backend="+tc.backend+" ")
		})
	}
}
