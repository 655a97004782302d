package proxy

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/popgate/popgate/authhttp"
	"github.com/popgate/popgate/filters"
)

// authService is an httptest auth_http service whose answers a test
// decides; it records the headers of every request.
type authService struct {
	srv    *httptest.Server
	mu     sync.Mutex
	seen   []http.Header
	answer func(h http.Header) map[string]string
}

func newAuthService(t *testing.T, answer func(h http.Header) map[string]string) *authService {
	t.Helper()
	a := &authService{answer: answer}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen = append(a.seen, r.Header.Clone())
		a.mu.Unlock()
		for k, v := range a.answer(r.Header) {
			w.Header().Set(k, v)
		}
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *authService) requests() []http.Header {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]http.Header(nil), a.seen...)
}

// hostPort splits a scriptBackend's address into Auth-Server and Auth-Port.
func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// startAuthProxy runs an after-auth listener asking svc, in front of
// backend "b" (addr) and, when addr2 is not "", backend "b2".
func startAuthProxy(t *testing.T, svcURL, addr, addr2 string, mutate func(*Config, *AuthService)) string {
	t.Helper()
	client, err := authhttp.New(authhttp.Options{URL: svcURL, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, paddr := startProxy(t, addr, func(c *Config) {
		c.Listeners[0].Connect = ConnectAfterAuth
		if addr2 != "" {
			c.Backends["b2"] = &Backend{Name: "b2", Address: addr2, ConnectTimeout: 2 * time.Second}
		}
		svc := &AuthService{Name: "dir", Client: client}
		c.Listeners[0].Auth = svc
		if mutate != nil {
			mutate(c, svc)
		}
	})
	return paddr
}

// mailboxOf starts a fake backend with n messages.
func mailboxOf(t *testing.T, n int) *scriptBackend {
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = "Subject: x\r\n\r\nbody\r\n"
	}
	return newFakeBackend(t, msgs...)
}

func TestAuthServiceRoutesByAddressAndName(t *testing.T) {
	a, b := mailboxOf(t, 1), mailboxOf(t, 2)
	bHost, bPort := hostPort(t, b.addr())
	svc := newAuthService(t, func(h http.Header) map[string]string {
		switch h.Get("Auth-User") {
		case "byaddr":
			return map[string]string{"Auth-Status": "OK", "Auth-Server": bHost, "Auth-Port": bPort}
		case "byname":
			return map[string]string{"Auth-Status": "OK", "Auth-Server": "b2"}
		}
		return map[string]string{"Auth-Status": "OK"} // no server: the listener's routing
	})
	addr := startAuthProxy(t, svc.srv.URL, a.addr(), b.addr(), nil)
	for user, want := range map[string]string{"byaddr": "+OK 2 ", "byname": "+OK 2 ", "nobody": "+OK 1 "} {
		c := dialClient(t, addr)
		c.expect("+OK")
		c.send("USER " + user + "\r\nPASS secret\r\nSTAT\r\n")
		c.expect("+OK")
		c.expect("+OK logged in")
		c.expect(want)
	}
}

func TestAuthServiceRequestHeaders(t *testing.T) {
	be := mailboxOf(t, 1)
	svc := newAuthService(t, func(h http.Header) map[string]string {
		if h.Get("Auth-Pass") == "secret" {
			return map[string]string{"Auth-Status": "OK"}
		}
		return map[string]string{"Auth-Status": "Invalid login or password"}
	})
	addr := startAuthProxy(t, svc.srv.URL, be.addr(), "", func(c *Config, s *AuthService) {
		client, _ := authhttp.New(authhttp.Options{URL: svc.srv.URL, Headers: map[string]string{"X-Auth-Key": "k"}})
		s.Client = client
	})
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("USER al%ice\r\nPASS wrong one\r\n")
	c.expect("+OK")
	c.expect("-ERR [AUTH] Invalid login or password")
	c.send("AUTH PLAIN " + b64("\x00al%ice\x00secret") + "\r\n")
	c.expect("+OK")
	reqs := svc.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	for i, want := range []map[string]string{
		{"Auth-Method": "plain", "Auth-User": "al%25ice", "Auth-Pass": "wrong%20one", "Auth-Login-Attempt": "1",
			"Auth-Protocol": "pop3", "Client-Ip": "127.0.0.1", "X-Auth-Key": "k", "Client-Host": "[UNAVAILABLE]"},
		{"Auth-Method": "plain", "Auth-Pass": "secret", "Auth-Login-Attempt": "2"},
	} {
		for k, v := range want {
			if got := reqs[i].Get(k); got != v {
				t.Errorf("request %d %s: %q, want %q", i+1, k, got, v)
			}
		}
	}
}

func TestAuthServiceRewritesLogin(t *testing.T) {
	be := newScriptBackend(t, newMailbox().serve)
	svc := newAuthService(t, func(http.Header) map[string]string {
		return map[string]string{"Auth-Status": "OK", "Auth-User": "real@example.com", "Auth-Pass": "pass word"}
	})
	addr := startAuthProxy(t, svc.srv.URL, be.addr(), "", nil)
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("USER alias\r\nPASS typed\r\n")
	c.expect("+OK")
	c.expect("+OK logged in")
	got := strings.Join(be.received(), "|")
	if !strings.Contains(got, "USER real@example.com|PASS pass word") {
		t.Fatalf("backend saw %q", got)
	}
}

// apopSecret is what the test service knows of alice.
const apopSecret = "tanstaaf"

// digestService verifies APOP (md5(salt+secret)) and CRAM-MD5
// (hmac-md5(secret, salt)) for alice and answers with her password.
func digestService(t *testing.T) *authService {
	return newAuthService(t, func(h http.Header) map[string]string {
		salt, got := h.Get("Auth-Salt"), h.Get("Auth-Pass")
		var want string
		switch h.Get("Auth-Method") {
		case "apop":
			sum := md5.Sum([]byte(salt + apopSecret))
			want = hex.EncodeToString(sum[:])
		case "cram-md5":
			m := hmac.New(md5.New, []byte(apopSecret))
			m.Write([]byte(salt))
			want = hex.EncodeToString(m.Sum(nil))
		}
		if h.Get("Auth-User") != "alice" || salt == "" || got != want {
			return map[string]string{"Auth-Status": "Invalid login or password"}
		}
		return map[string]string{"Auth-Status": "OK", "Auth-Pass": "secret"}
	})
}

func TestAuthServiceAPOPToPass(t *testing.T) {
	be := newScriptBackend(t, newMailbox().serve)
	addr := startAuthProxy(t, digestService(t).srv.URL, be.addr(), "", nil)
	c := dialClient(t, addr)
	g := c.expect("+OK")
	ts := timestampRE.FindString(g)
	if ts == "" {
		t.Fatalf("greeting %q has no APOP timestamp", g)
	}
	c.send("APOP alice 00000000000000000000000000000000\r\n")
	c.expect("-ERR [AUTH] Invalid login or password")
	sum := md5.Sum([]byte(ts + apopSecret))
	c.send("APOP alice " + hex.EncodeToString(sum[:]) + "\r\n")
	c.expect("+OK logged in")
	if got := strings.Join(be.received(), "|"); !strings.Contains(got, "USER alice|PASS secret") {
		t.Fatalf("backend saw %q", got)
	}
}

func TestAuthServiceCRAMMD5(t *testing.T) {
	be := newScriptBackend(t, newMailbox().serve)
	addr := startAuthProxy(t, digestService(t).srv.URL, be.addr(), "", nil)
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("CAPA\r\n")
	c.expect("+OK")
	if capa := c.body(); !strings.Contains(capa, "CRAM-MD5") {
		t.Fatalf("CAPA %q lacks CRAM-MD5", capa)
	}
	c.send("AUTH CRAM-MD5\r\n")
	ch := strings.TrimPrefix(c.expect("+ "), "+ ")
	salt, err := b64decode(ch)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(md5.New, []byte(apopSecret))
	m.Write([]byte(salt))
	c.send(b64("alice "+hex.EncodeToString(m.Sum(nil))) + "\r\n")
	c.expect("+OK logged in")
	if got := strings.Join(be.received(), "|"); !strings.Contains(got, "USER alice|PASS secret") {
		t.Fatalf("backend saw %q", got)
	}
}

func TestAuthServiceRefusalsAndFailures(t *testing.T) {
	be := mailboxOf(t, 1)
	other := mailboxOf(t, 3) // in no backend block
	oHost, oPort := hostPort(t, other.addr())
	release := make(chan struct{})
	svc := newAuthService(t, func(h http.Header) map[string]string {
		switch h.Get("Auth-User") {
		case "smtpcode":
			return map[string]string{"Auth-Status": "Bad credentials", "Auth-Error-Code": "535 5.7.8"}
		case "inuse":
			return map[string]string{"Auth-Status": "[IN-USE] mailbox busy"}
		case "malformed":
			return map[string]string{"Auth-Server": "127.0.0.1", "Auth-Port": "110"}
		case "badport":
			return map[string]string{"Auth-Status": "OK", "Auth-Server": "127.0.0.1", "Auth-Port": "0"}
		case "hostname":
			return map[string]string{"Auth-Status": "OK", "Auth-Server": "mail.example.com", "Auth-Port": "110"}
		case "elsewhere":
			return map[string]string{"Auth-Status": "OK", "Auth-Server": oHost, "Auth-Port": oPort}
		case "slow":
			<-release
		}
		return map[string]string{"Auth-Status": "OK"}
	})
	t.Cleanup(func() { close(release) }) // before the service's own cleanup, which waits for handlers
	addr := startAuthProxy(t, svc.srv.URL, be.addr(), "", nil)
	for user, want := range map[string]string{
		"smtpcode":  "-ERR [AUTH] Bad credentials",
		"inuse":     "-ERR [IN-USE] mailbox busy",
		"malformed": "-ERR [SYS/TEMP]",
		"badport":   "-ERR [SYS/TEMP]",
		"hostname":  "-ERR [SYS/TEMP]",
		"elsewhere": "-ERR [SYS/TEMP]",
		"slow":      "-ERR [SYS/TEMP]",
	} {
		t.Run(user, func(t *testing.T) {
			c := dialClient(t, addr)
			c.expect("+OK")
			c.send("USER " + user + "\r\nPASS secret\r\n")
			c.expect("+OK")
			if got := c.line(); got != want && !strings.HasPrefix(got, want+" ") {
				t.Fatalf("got %q, want %q", got, want)
			}
			// The session goes on: a later login may still succeed.
			c.send("USER ok\r\nPASS secret\r\n")
			c.expect("+OK")
			c.expect("+OK logged in")
		})
	}
	if n := other.connections(); n != 0 {
		t.Fatalf("a server in no backend block and not allowed was contacted %d times", n)
	}
}

func TestAuthServiceDown(t *testing.T) {
	be := mailboxOf(t, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/auth"
	ln.Close()
	addr := startAuthProxy(t, url, be.addr(), "", nil)
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("USER alice\r\nPASS secret\r\n")
	c.expect("+OK")
	c.expect("-ERR [SYS/TEMP]")
	if be.connections() != 0 {
		t.Fatal("backend contacted although the service is down")
	}
}

func TestAuthServiceAllowedBackends(t *testing.T) {
	be := mailboxOf(t, 1)
	other := mailboxOf(t, 3)
	oHost, oPort := hostPort(t, other.addr())
	svc := newAuthService(t, func(http.Header) map[string]string {
		return map[string]string{"Auth-Status": "OK", "Auth-Server": oHost, "Auth-Port": oPort}
	})
	for _, tc := range []struct {
		rule, want string
	}{
		{"127.0.0.0/8", "+OK 3 "},
		{"127.0.0.0/8:" + oPort, "+OK 3 "},
		{"127.0.0.0/8:1", "-ERR [SYS/TEMP]"},
		{"10.0.0.0/8", "-ERR [SYS/TEMP]"},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			r, err := ParseDestinationRule(tc.rule)
			if err != nil {
				t.Fatal(err)
			}
			addr := startAuthProxy(t, svc.srv.URL, be.addr(), "", func(_ *Config, s *AuthService) {
				s.AllowedBackends = []DestinationRule{r}
			})
			c := dialClient(t, addr)
			c.expect("+OK")
			c.send("USER alice\r\nPASS secret\r\n")
			c.expect("+OK")
			if strings.HasPrefix(tc.want, "+OK") {
				c.expect("+OK logged in")
				c.send("STAT\r\n")
			}
			c.expect(tc.want)
		})
	}
}

func TestAuthServiceMasterUserNeedsVerifiesPassword(t *testing.T) {
	svc := newAuthService(t, func(http.Header) map[string]string {
		return map[string]string{"Auth-Status": "OK", "Auth-User": "alice@example.com"}
	})
	for _, verifies := range []bool{true, false} {
		mb := &masterBackend{}
		addr := startAuthProxy(t, svc.srv.URL, mb.start(t), "", func(c *Config, s *AuthService) {
			s.VerifiesPassword = verifies
			b := c.Backends["b"]
			b.Login, b.MasterUser, b.MasterPassword = LoginSASLPlain, "master", "mpw"
		})
		c := dialClient(t, addr)
		c.expect("+OK")
		c.send("USER alice\r\nPASS anything\r\n")
		c.expect("+OK")
		conns, plains := 0, []string(nil)
		if verifies {
			c.expect("+OK logged in")
			if _, plains = mb.seen(); len(plains) != 1 || plains[0] != "alice@example.com\x00master\x00mpw" {
				t.Fatalf("master PLAIN %q", plains)
			}
			continue
		}
		c.expect("-ERR [AUTH]")
		if conns, plains = mb.seen(); conns != 0 || len(plains) != 0 {
			t.Fatalf("unverified master login reached the backend: %d, %q", conns, plains)
		}
	}
}

func TestAuthServiceWaitDelaysRefusal(t *testing.T) {
	be := mailboxOf(t, 1)
	svc := newAuthService(t, func(http.Header) map[string]string {
		return map[string]string{"Auth-Status": "Invalid login or password", "Auth-Wait": "1"}
	})
	addr := startAuthProxy(t, svc.srv.URL, be.addr(), "", nil)
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("USER alice\r\n")
	c.expect("+OK")
	start := time.Now()
	c.send("PASS x\r\n")
	c.expect("-ERR [AUTH] Invalid login or password")
	if d := time.Since(start); d < time.Second {
		t.Fatalf("refusal after %s, want the service's Auth-Wait of 1s", d)
	}
}

func TestAuthServiceKeepsLoginThrottling(t *testing.T) {
	be := mailboxOf(t, 1)
	svc := newAuthService(t, func(h http.Header) map[string]string {
		if h.Get("Auth-User") == "broken" {
			return map[string]string{"Auth-Server": "b"} // no Auth-Status: a service error
		}
		return map[string]string{"Auth-Status": "Invalid login or password"}
	})
	addr := startAuthProxy(t, svc.srv.URL, be.addr(), "", nil)
	timed := func(c *testClient, user, want string) time.Duration {
		t.Helper()
		c.send("USER " + user + "\r\n")
		c.expect("+OK")
		start := time.Now()
		c.send("PASS x\r\n")
		c.expect(want)
		return time.Since(start)
	}
	c := dialClient(t, addr)
	c.expect("+OK")
	// A service that cannot answer is no guess: never delayed, never counted.
	for i := 0; i < 4; i++ {
		if d := timed(c, "broken", "-ERR [SYS/TEMP]"); d > 400*time.Millisecond {
			t.Fatalf("service error answered after %s: it was throttled", d)
		}
	}
	// A refusal is a failed guess: throttled like a backend's refusal.
	if d := timed(c, "mallory", "-ERR [AUTH]"); d < 400*time.Millisecond {
		t.Fatalf("refused login answered after %s, want the throttle's delay", d)
	}
}

func TestAuthServiceHook(t *testing.T) {
	be := mailboxOf(t, 1)
	svc := newAuthService(t, func(h http.Header) map[string]string {
		if h.Get("Auth-Pass") == "secret" {
			return map[string]string{"Auth-Status": "OK"}
		}
		return map[string]string{"Auth-Status": "no"}
	})
	var mu sync.Mutex
	var results []string
	client, err := authhttp.New(authhttp.Options{URL: svc.srv.URL, CacheTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	addr := startAuthProxy(t, svc.srv.URL, be.addr(), "", func(c *Config, s *AuthService) {
		s.Client = client
		c.Hooks.AuthService = func(service, result string, _ time.Duration) {
			mu.Lock()
			results = append(results, service+":"+result)
			mu.Unlock()
		}
	})
	for _, pass := range []string{"wrong", "secret", "secret"} {
		c := dialClient(t, addr)
		c.expect("+OK")
		c.send("USER alice\r\nPASS " + pass + "\r\nQUIT\r\n")
		c.expect("+OK")
		c.line()
		c.expect("+OK")
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(results, " "); got != "dir:refused dir:ok dir:cached" {
		t.Fatalf("hook saw %q", got)
	}
}

// TestAuthServicePinsAPoolMember checks that an Auth-Server address that
// is one server of a pool backend reaches that server, whatever the
// pool's own choice would be, and that the pool still picks for a login
// the service names no server for.
func TestAuthServicePinsAPoolMember(t *testing.T) {
	a, b := mailboxOf(t, 1), mailboxOf(t, 2)
	bHost, bPort := hostPort(t, b.addr())
	svc := newAuthService(t, func(h http.Header) map[string]string {
		if h.Get("Auth-User") == "pinned" {
			return map[string]string{"Auth-Status": "OK", "Auth-Server": bHost, "Auth-Port": bPort}
		}
		return map[string]string{"Auth-Status": "OK"}
	})
	addr := startAuthProxy(t, svc.srv.URL, a.addr(), "", func(c *Config, _ *AuthService) {
		pool := c.Backends["b"]
		pool.Servers = []string{a.addr(), b.addr()}
		pool.Balance = BalanceFirst
	})
	for user, want := range map[string]string{"pinned": "+OK 2 ", "free": "+OK 1 "} {
		c := dialClient(t, addr)
		c.expect("+OK")
		c.send("USER " + user + "\r\nPASS secret\r\nSTAT\r\n")
		c.expect("+OK")
		c.expect("+OK logged in")
		c.expect(want)
	}
}

// A mailbox an administrator blocked stays blocked when the auth service
// maps another login name to it (Auth-User): the block list is checked
// again on the name the backend would get.
func TestAuthServiceAuthUserOfABlockedMailboxIsRefused(t *testing.T) {
	be := mailboxOf(t, 1)
	svc := newAuthService(t, func(h http.Header) map[string]string {
		return map[string]string{"Auth-Status": "OK", "Auth-User": "alice"}
	})
	client, err := authhttp.New(authhttp.Options{URL: svc.srv.URL, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv, addr := startProxy(t, be.addr(), func(c *Config) {
		c.Listeners[0].Connect = ConnectAfterAuth
		c.Listeners[0].Auth = &AuthService{Name: "dir", Client: client}
	})
	srv.Block(Block{User: "Alice", Until: time.Now().Add(time.Hour)})
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("USER alias\r\nPASS secret\r\n")
	c.expect("+OK")
	c.expect("-ERR [AUTH] authentication failed")
	// Counted like a wrong password: the answer tells nothing.
	if n := srv.state.(*LocalLoginState).Fails("user:alias"); n != 1 {
		t.Fatalf("%d failures counted for the blocked login, want 1", n)
	}
	srv.Block(Block{User: "Alice", Until: time.Now().Add(-time.Second)}) // lifted
	c.send("USER alias\r\nPASS secret\r\nSTAT\r\n")
	c.expect("+OK")
	c.expect("+OK logged in")
	c.expect("+OK 1 ")
}

// A success forgets the failures of the name the client typed as well as
// those of the name the auth service mapped it to (Auth-User): a user
// who mistyped a password and then logged in starts again from zero.
func TestAuthServiceSuccessForgetsTheTypedName(t *testing.T) {
	be := mailboxOf(t, 1)
	svc := newAuthService(t, func(h http.Header) map[string]string {
		if h.Get("Auth-Pass") == "secret" {
			return map[string]string{"Auth-Status": "OK", "Auth-User": "alice@example.com"}
		}
		return map[string]string{"Auth-Status": "Invalid login or password"}
	})
	client, err := authhttp.New(authhttp.Options{URL: svc.srv.URL, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv, addr := startProxy(t, be.addr(), func(c *Config) {
		c.Listeners[0].Connect = ConnectAfterAuth
		c.Listeners[0].Auth = &AuthService{Name: "dir", Client: client}
	})
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("USER alias\r\nPASS wrong\r\n")
	c.expect("+OK")
	c.expect("-ERR [AUTH]")
	st := srv.state.(*LocalLoginState)
	if n := st.Fails("user:alias"); n != 1 {
		t.Fatalf("%d failures counted for alias after a refusal, want 1", n)
	}
	c.send("USER alias\r\nPASS secret\r\n")
	c.expect("+OK")
	c.expect("+OK logged in")
	if n := st.Fails("user:alias"); n != 0 {
		t.Fatalf("%d failures still counted for alias after its login succeeded, want 0", n)
	}
}

// A service that does not verify passwords (verifies_password = false)
// may route, but not choose whom a master login acts for: a client that
// proved its own password locally is not logged in, through the master
// user, to the mailbox the service names in Auth-User. Without Auth-User
// the local proof still opens the client's own mailbox.
func TestAuthServiceUnverifiedAuthUserIsNoMasterTarget(t *testing.T) {
	svc := newAuthService(t, func(h http.Header) map[string]string {
		if h.Get("Auth-User") == "alice" {
			return map[string]string{"Auth-Status": "OK", "Auth-User": "bob"}
		}
		return map[string]string{"Auth-Status": "OK"}
	})
	mb := &masterBackend{}
	addr := startAuthProxy(t, svc.srv.URL, mb.start(t), "", func(c *Config, s *AuthService) {
		c.Listeners[0].Filters = []filters.Filter{secretsVerifier{"alice": "right", "carol": "carolpw"}}
		b := c.Backends["b"]
		b.Login, b.MasterUser, b.MasterPassword = LoginSASLPlain, "master", "mpw"
	})
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("USER alice\r\nPASS right\r\n")
	c.expect("+OK")
	c.expect("-ERR [AUTH]")
	if conns, plains := mb.seen(); conns != 0 || len(plains) != 0 {
		t.Fatalf("a master login acted for the service's Auth-User: %d connections, %q", conns, plains)
	}
	c.send("USER carol\r\nPASS carolpw\r\n")
	c.expect("+OK")
	c.expect("+OK logged in")
	if _, plains := mb.seen(); len(plains) != 1 || plains[0] != "carol\x00master\x00mpw" {
		t.Fatalf("master PLAIN %q, want carol's", plains)
	}
}
