package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestRendezvousStability: every user has one server, users spread over
// all of them, and removing a server moves only the users it held.
func TestRendezvousStability(t *testing.T) {
	servers := []string{"10.0.0.5:110", "10.0.0.6:110", "10.0.0.7:110"}
	states := func(addrs []string) []*serverState {
		var out []*serverState
		for _, a := range addrs {
			out = append(out, newServerState("mail", a, hclog.NewNullLogger()))
		}
		return out
	}
	all, two := states(servers), states(servers[:2])
	count := map[string]int{}
	const users = 3000
	for i := 0; i < users; i++ {
		u := fmt.Sprintf("user%d@example.com", i)
		first := order(all, BalanceUser, u)[0].addr
		if again := order(all, BalanceUser, u)[0].addr; again != first {
			t.Fatalf("%s: %s, then %s", u, first, again)
		}
		count[first]++
		after := order(two, BalanceUser, u)[0].addr
		if first != servers[2] && after != first {
			t.Errorf("%s moved from %s to %s though its server stayed", u, first, after)
		}
	}
	for _, s := range servers {
		if n := count[s]; n < users/3*8/10 || n > users/3*12/10 {
			t.Errorf("server %s holds %d of %d users; want about a third", s, n, users)
		}
	}
}

// TestBalanceOrders: first keeps the configured order, least-conn puts
// the least used first, source hashes the client address as user hashes
// the login name.
func TestBalanceOrders(t *testing.T) {
	var states []*serverState
	for _, a := range []string{"a:1", "b:1", "c:1"} {
		states = append(states, newServerState("p", a, hclog.NewNullLogger()))
	}
	if got := addrs(order(states, BalanceFirst, "")); got != "a:1 b:1 c:1" {
		t.Errorf("first: %s", got)
	}
	firsts := map[string]bool{}
	for i := 0; i < 50; i++ {
		firsts[order(states, BalanceLeastConn, "")[0].addr] = true
	}
	if len(firsts) != 3 {
		t.Errorf("least-conn on an idle pool always starts with %v; ties should spread", firsts)
	}
	states[0].open.Store(5)
	states[1].open.Store(2)
	if got := addrs(order(states, BalanceLeastConn, "")); got != "c:1 b:1 a:1" {
		t.Errorf("least-conn: %s", got)
	}
	if addrs(order(states, BalanceSource, "192.0.2.1")) != addrs(order(states, BalanceUser, "192.0.2.1")) {
		t.Error("source and user hash differently")
	}
	if addrs(states) != "a:1 b:1 c:1" {
		t.Error("order changed its input")
	}
}

func addrs(states []*serverState) string {
	var out []string
	for _, st := range states {
		out = append(out, st.addr)
	}
	return strings.Join(out, " ")
}

// syncBuffer is a log sink safe for the checkers' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), substr)
}

// TestHealthStateMachine: down after fail_threshold consecutive failures,
// skipped for the backoff, then one probe at a time; each change logged
// once.
func TestHealthStateMachine(t *testing.T) {
	var logs syncBuffer
	st := newServerState("mail", "10.0.0.5:110", hclog.New(&hclog.LoggerOptions{Output: &logs}))
	now := time.Unix(1000, 0)
	st.now = func() time.Time { return now }
	st.configure(&Backend{Name: "mail", Health: HealthOptions{FailThreshold: 3, DownBackoff: time.Minute}})
	fail := func() { st.failed(fmt.Errorf("connect: refused"), "session") }

	fail()
	st.succeeded("session") // a success resets the count
	fail()
	fail()
	if !st.status().Up || !st.admit() {
		t.Fatal("down after 2 consecutive failures; threshold is 3")
	}
	fail()
	if st.status().Up || st.admit() {
		t.Fatal("still up after 3 consecutive failures")
	}
	fail() // a last-resort attempt while down
	now = now.Add(59 * time.Second)
	if st.admit() {
		t.Fatal("admitted before its backoff is over")
	}
	now = now.Add(2 * time.Second)
	if !st.admit() {
		t.Fatal("not admitted as a probe after its backoff")
	}
	if st.admit() {
		t.Fatal("a second session admitted while the first probes")
	}
	fail() // the probe fails: another backoff
	if st.admit() {
		t.Fatal("admitted right after a failed probe")
	}
	now = now.Add(time.Minute)
	if !st.admit() {
		t.Fatal("no probe after the second backoff")
	}
	st.abandon() // the probing session went away: someone else may probe
	if !st.admit() {
		t.Fatal("an abandoned probe blocks the next")
	}
	st.succeeded("session")
	if s := st.status(); !s.Up || s.Failures != 6 {
		t.Fatalf("after a good probe: %+v; want up with 6 failures counted", s)
	}
	if n := logs.count("backend server down"); n != 1 {
		t.Errorf("down logged %d times; want once\n%s", n, logs.b.String())
	}
	if n := logs.count("backend server up"); n != 1 {
		t.Errorf("up logged %d times; want once", n)
	}
}

// refusedAddr is a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	b := newScriptBackend(t, func(*scriptConn) {})
	addr := b.addr()
	b.close()
	return addr
}

// refusingBackend greets with -ERR.
func refusingBackend(t *testing.T) *scriptBackend {
	return newScriptBackend(t, func(bc *scriptConn) { bc.send("-ERR [SYS/TEMP] maintenance") })
}

// startPool starts an after-auth listener in front of a pool of servers.
func startPool(t *testing.T, servers []string, mutate func(*Config)) (*Server, string) {
	t.Helper()
	return startProxy(t, "", func(c *Config) {
		c.Listeners[0].Connect = ConnectAfterAuth
		b := c.Backends["b"]
		b.Address, b.Servers, b.Balance = "", servers, BalanceFirst
		if mutate != nil {
			mutate(c)
		}
	})
}

// TestPoolFailover: a server that refuses connections and one that greets
// with -ERR are passed over; the client logs in on the third and sees
// nothing of it, and only the third ever saw the password.
func TestPoolFailover(t *testing.T) {
	refused, erring, good := refusedAddr(t), refusingBackend(t), newFakeBackend(t)
	srv, addr := startPool(t, []string{refused, erring.addr(), good.addr()}, nil)
	c := dialClient(t, addr)
	c.login()
	c.send("STAT\r\n")
	c.expect("+OK 0 100")
	if contains(erring.received(), "PASS secret") || !contains(good.received(), "PASS secret") {
		t.Errorf("password went to %q (refusing) and %q (good)", erring.received(), good.received())
	}
	for _, st := range srv.Pools() {
		want := uint64(1)
		if st.Server == good.addr() {
			want = 0
		}
		if st.Failures != want || !st.Up {
			t.Errorf("%s: %+v; want up with %d failure", st.Server, st, want)
		}
	}
}

// TestPoolNoRetryAfterCredentials: a server that dies after PASS is never
// replaced by another for the same login: the client gets [SYS/TEMP], and
// the password went out exactly once.
func TestPoolNoRetryAfterCredentials(t *testing.T) {
	dying := newScriptBackend(t, func(bc *scriptConn) {
		bc.send("+OK ready")
		for {
			l, err := bc.readLine()
			if err != nil || strings.HasPrefix(l, "PASS") {
				return // dies mid-login
			}
			if strings.HasPrefix(l, "USER") {
				bc.send("+OK")
			}
		}
	})
	spare := newFakeBackend(t)
	_, addr := startPool(t, []string{dying.addr(), spare.addr()}, nil)
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("USER a\r\nPASS secret\r\n")
	c.expect("+OK")
	c.expect("-ERR [SYS/TEMP]")
	passes := 0
	for _, l := range dying.received() {
		if strings.HasPrefix(l, "PASS") {
			passes++
		}
	}
	if passes != 1 {
		t.Errorf("the dying server got PASS %d times; want 1", passes)
	}
	if n := spare.connections(); n != 0 {
		t.Errorf("the spare server got %d connections after credentials were sent; want 0", n)
	}
}

// TestPoolAllFail: when no server answers the client gets [SYS/TEMP], in
// both connect modes; on accept, failover happens before any greeting.
func TestPoolAllFail(t *testing.T) {
	t.Run("after-auth", func(t *testing.T) {
		_, addr := startPool(t, []string{refusedAddr(t), refusingBackend(t).addr()}, nil)
		c := dialClient(t, addr)
		c.expect("+OK")
		c.send("USER a\r\nPASS secret\r\n")
		c.expect("+OK")
		c.expect("-ERR [SYS/TEMP]")
	})
	t.Run("on-accept", func(t *testing.T) {
		_, addr := startPool(t, []string{refusedAddr(t), refusingBackend(t).addr()}, func(c *Config) {
			c.Listeners[0].Connect = ConnectOnAccept
		})
		c := dialClient(t, addr)
		c.expect("-ERR [SYS/TEMP]")
	})
	t.Run("on-accept failover", func(t *testing.T) {
		good := newFakeBackend(t)
		_, addr := startPool(t, []string{refusedAddr(t), good.addr()}, func(c *Config) {
			c.Listeners[0].Connect = ConnectOnAccept
			c.Backends["b"].Balance = BalanceDefault // least-conn on accept
		})
		c := dialClient(t, addr)
		c.expect("+OK fake ready")
	})
}

// TestPoolBudget: a hung server (accepts, never greets) gets only its
// share of the connect timeout, and the next one still answers in time.
func TestPoolBudget(t *testing.T) {
	hung := newScriptBackend(t, func(bc *scriptConn) { bc.readLine() })
	good := newFakeBackend(t)
	_, addr := startPool(t, []string{hung.addr(), good.addr()}, func(c *Config) {
		c.Backends["b"].ConnectTimeout = 4 * time.Second
	})
	start := time.Now()
	c := dialClient(t, addr)
	c.login()
	if d := time.Since(start); d > 3500*time.Millisecond {
		t.Errorf("login took %v; the hung server should have had half the 4s budget", d)
	}
}

// TestPoolDownSkipped: a server down after fail_threshold failures gets
// no more sessions during its backoff; when every server is down they are
// tried anyway.
func TestPoolDownSkipped(t *testing.T) {
	flaky := refusingBackend(t)
	good := newFakeBackend(t)
	srv, addr := startPool(t, []string{flaky.addr(), good.addr()}, func(c *Config) {
		c.Backends["b"].Health = HealthOptions{FailThreshold: 2, DownBackoff: time.Hour}
	})
	for i := 0; i < 5; i++ {
		c := dialClient(t, addr)
		c.login()
		c.send("QUIT\r\n")
		c.expect("+OK")
	}
	if n := flaky.connections(); n != 2 {
		t.Errorf("the failing server got %d connections; want 2 (then down)", n)
	}
	for _, st := range srv.Pools() {
		if st.Up != (st.Server == good.addr()) {
			t.Errorf("%s: up=%v", st.Server, st.Up)
		}
	}
	// Every server down: they are tried anyway, and the good one answers.
	srv.pools.states(srv.cfg.Load().Backends["b"])[1].failed(fmt.Errorf("test"), "test")
	srv.pools.states(srv.cfg.Load().Backends["b"])[1].failed(fmt.Errorf("test"), "test")
	c := dialClient(t, addr)
	c.login()
}

// TestPoolUserAffinity: each user lands on the same server every time,
// and the users spread over the servers.
func TestPoolUserAffinity(t *testing.T) {
	var backends []*scriptBackend
	var servers []string
	for i := 0; i < 3; i++ {
		b := newFakeBackend(t)
		backends = append(backends, b)
		servers = append(servers, b.addr())
	}
	_, addr := startPool(t, servers, func(c *Config) { c.Backends["b"].Balance = BalanceDefault })
	where := func(user string) int {
		c := dialClient(t, addr)
		c.expect("+OK")
		c.send("USER " + user + "\r\nPASS secret\r\n")
		c.expect("+OK")
		c.expect("+OK logged in")
		c.send("QUIT\r\n")
		c.expect("+OK")
		for i, b := range backends {
			if contains(b.received(), "USER "+user) {
				return i
			}
		}
		t.Fatalf("no server saw %s", user)
		return -1
	}
	used := map[int]bool{}
	for i := 0; i < 12; i++ {
		u := fmt.Sprintf("u%d", i)
		first := where(u)
		used[first] = true
		if again := where(strings.ToUpper(u)); again != first {
			t.Errorf("%s on server %d, then on %d", u, first, again)
		}
		if want := order(newStates(servers), BalanceUser, u)[0].addr; servers[first] != want {
			t.Errorf("%s on %s; rendezvous says %s", u, servers[first], want)
		}
	}
	if len(used) < 2 {
		t.Errorf("12 users all on one server")
	}
}

func newStates(servers []string) []*serverState {
	var out []*serverState
	for _, a := range servers {
		out = append(out, newServerState("b", a, hclog.NewNullLogger()))
	}
	return out
}

// TestPoolReload: a reload keeps the state of servers it keeps, drops
// the ones it removes, and adds new ones up.
func TestPoolReload(t *testing.T) {
	a, b, c := refusingBackend(t), newFakeBackend(t), newFakeBackend(t)
	srv, addr := startPool(t, []string{a.addr(), b.addr()}, nil)
	cl := dialClient(t, addr)
	cl.login() // a fails once, b serves
	cfg := *srv.cfg.Load()
	be := *cfg.Backends["b"]
	be.Servers = []string{a.addr(), c.addr()}
	cfg.Backends = map[string]*Backend{"b": &be}
	cfg.Listeners = append([]Listener(nil), cfg.Listeners...)
	if err := srv.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	got := map[string]ServerStatus{}
	for _, st := range srv.Pools() {
		got[st.Server] = st
	}
	if len(got) != 2 || got[a.addr()].Failures != 1 || got[c.addr()].Failures != 0 || !got[c.addr()].Up {
		t.Errorf("after reload: %+v", got)
	}
	cl.send("STAT\r\n") // the open session stays on b
	cl.expect("+OK 0 100")
}

// TestActiveCheck: the active check takes a dead server down without any
// session, and brings it back once it answers again after its backoff; it
// never logs in.
func TestActiveCheck(t *testing.T) {
	b := newFakeBackend(t)
	addr := b.addr()
	srv, _ := startPool(t, []string{addr}, func(c *Config) {
		c.Backends["b"].Health = HealthOptions{Interval: 20 * time.Millisecond, FailThreshold: 2, DownBackoff: 100 * time.Millisecond}
	})
	waitPool := func(up bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if st := srv.Pools(); len(st) == 1 && st[0].Up == up {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("server never went up=%v: %+v", up, srv.Pools())
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.connections() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, l := range b.received() {
		if l != "QUIT" {
			t.Fatalf("the check sent %q", l)
		}
	}
	b.close()
	waitPool(false)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "+OK back\r\n")
			bufio.NewReader(c).ReadString('\n')
			fmt.Fprintf(c, "+OK bye\r\n")
			c.Close()
		}
	}()
	waitPool(true)
}

// TestDialAddress: a pinned dial reaches the one address it is given, with
// the backend's settings, and never fails over to the pool.
func TestDialAddress(t *testing.T) {
	good := newFakeBackend(t)
	refused := refusedAddr(t)
	srv, _ := startPool(t, []string{good.addr()}, nil)
	cfg := srv.cfg.Load()
	client, peer := net.Pipe()
	defer client.Close()
	defer peer.Close()
	s := newSession(srv, cfg, &cfg.Listeners[0], peer, "pinned")
	defer s.cancel()
	b := cfg.Backends["b"]
	if bc, err := s.dialAddress(s.ctx, b, refused); err == nil {
		bc.close()
		t.Fatal("a pinned dial to a dead address failed over")
	} else if !strings.Contains(err.Error(), refused) {
		t.Errorf("error %q does not name the address", err)
	}
	if n := good.connections(); n != 0 {
		t.Errorf("the pool's server got %d connections from a pinned dial", n)
	}
	bc, err := s.dialAddress(s.ctx, b, good.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer bc.close()
	if bc.addr != good.addr() || bc.greeting.Text != "fake ready <1.2@fake>" || bc.server != nil {
		t.Errorf("pinned connection: addr %s, greeting %q, pool server %v", bc.addr, bc.greeting.Text, bc.server)
	}
}

// TestReloadStopsCheckers: a reload that removes a server stops its active
// check; a server kept keeps its checker and takes the new settings.
func TestReloadStopsCheckers(t *testing.T) {
	a, b := newFakeBackend(t), newFakeBackend(t)
	srv, _ := startPool(t, []string{a.addr(), b.addr()}, func(c *Config) {
		c.Backends["b"].Health = HealthOptions{Interval: time.Hour}
	})
	before := srv.pools.states(srv.cfg.Load().Backends["b"])
	cfg := *srv.cfg.Load()
	be := *cfg.Backends["b"]
	be.Servers = []string{b.addr()}
	be.ConnectTimeout = 3 * time.Second
	cfg.Backends = map[string]*Backend{"b": &be}
	if err := srv.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	before[0].mu.Lock()
	removed, stopped := before[0].retired, before[0].checker == nil
	before[0].mu.Unlock()
	if !removed || !stopped {
		t.Errorf("removed server: retired %v, checker stopped %v", removed, stopped)
	}
	after := srv.pools.states(&be)
	before[1].mu.Lock()
	kept := before[1].checker
	before[1].mu.Unlock()
	if after[0] != before[1] || kept == nil || kept.backend.Load() != &be {
		t.Errorf("kept server: same state %v, checker %v with the new settings %v", after[0] == before[1], kept != nil, kept != nil && kept.backend.Load() == &be)
	}
	srv.pools.close()
	before[1].mu.Lock()
	defer before[1].mu.Unlock()
	if before[1].checker != nil {
		t.Error("a checker survived the server's shutdown")
	}
}

// BenchmarkPoolLogin measures a whole after-auth session (connect, USER,
// PASS, QUIT) through a pool of three servers with balance "user", against
// BenchmarkPoolLoginSingle, the same through one address.
func BenchmarkPoolLogin(b *testing.B) { benchLogin(b, 3) }

// BenchmarkPoolLoginSingle is BenchmarkPoolLogin with one address.
func BenchmarkPoolLoginSingle(b *testing.B) { benchLogin(b, 1) }

// BenchmarkPoolLoginFailover is BenchmarkPoolLogin where every session
// first tries a server that refuses connections (a threshold so high that
// it is never taken down): the worst case of a failover.
func BenchmarkPoolLoginFailover(b *testing.B) { benchLogin(b, -3) }

// benchLogin runs logins through a pool of |n| servers; n < 0 puts a dead
// server first, with balance "first".
func benchLogin(b *testing.B, n int) {
	var servers []string
	if n < 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		servers = append(servers, ln.Addr().String())
		ln.Close()
	}
	for len(servers) < max(n, -n) {
		servers = append(servers, newFakeBackend(b).addr())
	}
	_, addr := startProxy(b, servers[0], func(c *Config) {
		c.Listeners[0].Connect = ConnectAfterAuth
		if len(servers) > 1 {
			c.Backends["b"].Address, c.Backends["b"].Servers = "", servers
		}
		if n < 0 {
			c.Backends["b"].Balance = BalanceFirst
			c.Backends["b"].Health.FailThreshold = 1 << 30
		}
	})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		r := bufio.NewReader(c)
		fmt.Fprintf(c, "USER u%d\r\nPASS secret\r\nQUIT\r\n", i%1000)
		for j := 0; j < 4; j++ {
			if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
				b.Fatalf("line %d: %q %v", j, l, err)
			}
		}
		c.Close()
	}
}

// BenchmarkRendezvousOrder is the cost of ranking a pool of three servers
// for one login.
func BenchmarkRendezvousOrder(b *testing.B) {
	states := newStates([]string{"10.0.0.5:110", "10.0.0.6:110", "10.0.0.7:110"})
	for i := 0; i < b.N; i++ {
		order(states, BalanceUser, "user@example.com")
	}
}

// TestPoolFailoverXCLIENT: a server that refuses XCLIENT is passed over
// like one that cannot be reached; the next one gets the client.
func TestPoolFailoverXCLIENT(t *testing.T) {
	refusing := newScriptBackend(t, func(bc *scriptConn) {
		bc.send("+OK [XCLIENT] ready")
		if l, err := bc.readLine(); err == nil && strings.HasPrefix(l, "XCLIENT") {
			bc.send("-ERR not from you")
		}
		bc.readLine()
	})
	good := newFakeBackend(t)
	srv, addr := startPool(t, []string{refusing.addr(), good.addr()}, func(c *Config) {
		c.Backends["b"].Forward = ForwardXCLIENT
	})
	c := dialClient(t, addr)
	c.login()
	if contains(refusing.received(), "PASS secret") {
		t.Error("the server that refused XCLIENT got the password")
	}
	if st := srv.Pools(); st[0].Failures+st[1].Failures != 1 {
		t.Errorf("pools: %+v; want one failure counted", st)
	}
}

// TestTLSConfigForAServerOutsideTheBlock checks that a server an auth
// service names outside the backend's own is verified under its own host
// when the backend's server name was the default (its own host), and
// under the backend's explicit server_name otherwise.
func TestTLSConfigForAServerOutsideTheBlock(t *testing.T) {
	own := &Backend{Address: "mail.example.test:995", TLSConfig: &tls.Config{ServerName: "mail.example.test"}}
	if got := own.tlsConfigFor("mail.example.test:995").ServerName; got != "mail.example.test" {
		t.Errorf("the backend's own server: %q", got)
	}
	if got := own.tlsConfigFor("192.0.2.7:995").ServerName; got != "192.0.2.7" {
		t.Errorf("a server outside the block, default name: %q, want its own host", got)
	}
	if own.TLSConfig.ServerName != "mail.example.test" {
		t.Errorf("the backend's configuration was changed: %q", own.TLSConfig.ServerName)
	}
	explicit := &Backend{Address: "10.0.0.5:995", TLSConfig: &tls.Config{ServerName: "pop.example.test"}}
	if got := explicit.tlsConfigFor("192.0.2.7:995").ServerName; got != "pop.example.test" {
		t.Errorf("explicit server_name: %q, want it kept", got)
	}
	pool := &Backend{Servers: []string{"a.example.test:995"}, TLSConfig: &tls.Config{},
		ServerTLS: map[string]*tls.Config{"a.example.test:995": {ServerName: "a.example.test"}}}
	if got := pool.tlsConfigFor("a.example.test:995").ServerName; got != "a.example.test" {
		t.Errorf("a pool member: %q", got)
	}
	if got := pool.tlsConfigFor("192.0.2.8:995").ServerName; got != "192.0.2.8" {
		t.Errorf("outside a pool: %q", got)
	}
}

// TestPoolReloadRemovedServerGetsNoNewLogin: a session accepted before a
// reload that removed a server logs in after it: the removed server gets
// no connection, the one kept serves the login.
func TestPoolReloadRemovedServerGetsNoNewLogin(t *testing.T) {
	removed, kept := newFakeBackend(t), newFakeBackend(t)
	srv, addr := startPool(t, []string{removed.addr(), kept.addr()}, nil)
	cl := dialClient(t, addr)
	cl.expect("+OK") // accepted under the old configuration
	cfg := *srv.cfg.Load()
	be := *cfg.Backends["b"]
	be.Servers = []string{kept.addr()}
	cfg.Backends = map[string]*Backend{"b": &be}
	cfg.Listeners = append([]Listener(nil), cfg.Listeners...)
	if err := srv.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	cl.send("USER a\r\nPASS secret\r\nSTAT\r\n")
	cl.expect("+OK")
	cl.expect("+OK")
	cl.expect("+OK 0 100")
	if n := removed.connections(); n != 0 {
		t.Errorf("the removed server got %d connections after the reload; want 0", n)
	}
	if n := kept.connections(); n != 1 {
		t.Errorf("the kept server got %d connections; want 1", n)
	}
}

// TestPoolUnsendableCredentialsAreNotTheServersFault: AUTH PLAIN or LOGIN
// can carry a password no PASS command can (empty, or with a TAB). Such a
// login fails with [AUTH], like a wrong password, and never counts
// against the server: a client must not be able to take a pool member
// down with logins of its own making.
func TestPoolUnsendableCredentialsAreNotTheServersFault(t *testing.T) {
	be := newFakeBackend(t)
	srv, addr := startPool(t, []string{be.addr()}, func(c *Config) {
		c.Backends["b"].Health.FailThreshold = 1
	})
	for _, plain := range []string{"\x00alice\x00", "\x00alice\x00pa\tss", "\x00al\tice\x00secret"} {
		c := dialClient(t, addr)
		c.expect("+OK")
		c.send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte(plain)) + "\r\n")
		c.expect("-ERR [AUTH]")
	}
	for _, st := range srv.Pools() {
		if st.Failures != 0 || !st.Up {
			t.Errorf("%s: %+v; want up without failures", st.Server, st)
		}
	}
	c := dialClient(t, addr)
	c.login() // the server still serves
}

// TestPoolKickMidLoginIsNotTheServersFault: a session kicked (or shut
// down) while the server is still answering its login ends that login,
// and the server, which did nothing wrong, counts no failure.
func TestPoolKickMidLoginIsNotTheServersFault(t *testing.T) {
	gotPass := make(chan struct{}, 1)
	slow := newScriptBackend(t, func(bc *scriptConn) {
		bc.send("+OK ready")
		for {
			l, err := bc.readLine()
			if err != nil {
				return
			}
			switch {
			case strings.HasPrefix(l, "USER"):
				bc.send("+OK")
			case strings.HasPrefix(l, "PASS"):
				gotPass <- struct{}{}
				bc.readLine() // checks the password slowly: until popgate hangs up
				return
			}
		}
	})
	srv, addr := startPool(t, []string{slow.addr()}, func(c *Config) {
		c.Backends["b"].Health.FailThreshold = 1
	})
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("USER a\r\nPASS secret\r\n")
	c.expect("+OK")
	select {
	case <-gotPass:
	case <-time.After(5 * time.Second):
		t.Fatal("the login never reached the server")
	}
	if n := srv.Kick(Match{Addr: netip.MustParsePrefix("127.0.0.1/32")}); n != 1 {
		t.Fatalf("kicked %d sessions, want 1", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.Sessions() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // no signal for the session's end: bounded polling
	}
	for _, st := range srv.Pools() {
		if st.Failures != 0 || !st.Up {
			t.Errorf("%s: %+v; want up without failures after a kick mid-login", st.Server, st)
		}
	}
}
