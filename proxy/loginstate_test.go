package proxy

import (
	"strings"
	"testing"
	"time"
)

// countingState wraps a LocalLoginState and counts the calls a login
// makes: the shared store's round trips.
type countingState struct {
	*LocalLoginState
	calls int
}

func (c *countingState) Fail(keys []string) int { c.calls++; return c.LocalLoginState.Fail(keys) }
func (c *countingState) Refund(keys []string)   { c.calls++; c.LocalLoginState.Refund(keys) }
func (c *countingState) Succeed(r, f []string, l SessionLease, n int) bool {
	c.calls++
	return c.LocalLoginState.Succeed(r, f, l, n)
}

func TestMaxSessionsPerUserOnAccept(t *testing.T) {
	fb := newFakeBackend(t)
	srv, addr := startProxy(t, fb.addr(), func(c *Config) { c.Listeners[0].Limits.MaxSessionsPerUser = 1 })
	first := dialClient(t, addr)
	first.login()
	second := dialClient(t, addr)
	second.expect("+OK")
	second.send("USER A\r\nPASS secret\r\n")
	second.expect("+OK")
	if got := second.expect("-ERR"); !strings.HasPrefix(got, "-ERR [IN-USE]") {
		t.Fatalf("login over max_sessions_per_user answered %q, want -ERR [IN-USE]", got)
	}
	second.expectClosed()
	if got := fb.waitEnd(); got != "closed" {
		t.Fatalf("the refused session sent QUIT to the backend: %q", got)
	}
	if n := srv.state.(*LocalLoginState).Sessions("a"); n != 1 {
		t.Fatalf("user a holds %d leases, want 1", n)
	}
	first.send("QUIT\r\n")
	first.expect("+OK")
	first.expectClosed()
	waitFor(t, func() bool { return srv.state.(*LocalLoginState).Sessions("a") == 0 })
	third := dialClient(t, addr)
	third.login()
}

func TestMaxSessionsPerUserAfterAuth(t *testing.T) {
	fb := newFakeBackend(t)
	_, addr := startProxy(t, fb.addr(), func(c *Config) {
		c.Listeners[0].Connect = ConnectAfterAuth
		c.Listeners[0].Limits.MaxSessionsPerUser = 1
	})
	first := dialClient(t, addr)
	first.login()
	second := dialClient(t, addr)
	second.expect("+OK")
	second.send("USER a\r\nPASS secret\r\n")
	second.expect("+OK")
	if got := second.expect("-ERR"); !strings.HasPrefix(got, "-ERR [IN-USE]") {
		t.Fatalf("login over max_sessions_per_user answered %q, want -ERR [IN-USE]", got)
	}
	if got := fb.waitEnd(); got != "closed" {
		t.Fatalf("the refused login sent QUIT to the backend: %q", got)
	}
	// The client may try again once the other session is gone.
	first.send("QUIT\r\n")
	first.expect("+OK")
	first.expectClosed()
	second.send("USER a\r\nPASS secret\r\n")
	second.expect("+OK")
	second.expect("+OK")
}

func TestLoginStateCallsPerSuccessfulLogin(t *testing.T) {
	fb := newFakeBackend(t)
	st := &countingState{LocalLoginState: NewLocalLoginState()}
	srv, addr := startProxy(t, fb.addr(), func(c *Config) { c.Listeners[0].Limits.MaxSessionsPerUser = 5 })
	srv.SetLoginState(st)
	c := dialClient(t, addr)
	c.login()
	if st.calls != 2 {
		t.Fatalf("a successful login made %d LoginState calls, want 2 (charge, settle)", st.calls)
	}
	if n := st.Sessions("a"); n != 1 {
		t.Fatalf("%d leases after one login, want 1", n)
	}
}

// expectClosed reads until the proxy closes the connection; nothing more
// may arrive.
func (c *testClient) expectClosed() {
	c.t.Helper()
	if l, err := c.r.ReadString('\n'); err == nil || l != "" {
		c.t.Fatalf("connection still open: read %q, %v", l, err)
	}
}

// waitFor polls cond until it holds, for at most five seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
