//go:build integration

package integration

// Backend pools against real Dovecot instances that share one mail root
// (integration/pools.sh): user affinity over 1,000 logins, a member killed
// and restarted mid-test, servers added and removed by SIGHUP, and a
// password that is never sent twice.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestPoolUserAffinity: 1,000 logins of 50 users through a pool of three
// servers: each user always reaches the same server, and the users spread
// over all three.
func TestPoolUserAffinity(t *testing.T) {
	servers, watches := poolMembers(t)
	listen, metrics := freePort(t), freePort(t)
	opsStart(t, poolConfig(listen, metrics, servers, ""))
	var users []string
	for i := 100; i < 150; i++ {
		users = append(users, fmt.Sprintf("load%03d", i))
	}
	const rounds = 20 // 50 users x 20 = 1,000 logins
	jobs := make(chan string)
	errs := make(chan error, len(users)*rounds)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range jobs {
				c, err := tryDialPOP(listen, nil)
				if err == nil {
					err = c.Login(u, poolPassword)
					if err == nil {
						_, err = c.Cmd("QUIT")
					}
					c.Close()
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", u, err)
				}
			}
		}()
	}
	for r := 0; r < rounds; r++ {
		for _, u := range users {
			jobs <- u
		}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	where := poolWhere(t, watches, users, rounds)
	perServer := make([]int, len(servers))
	for _, u := range users {
		at := only(where[u])
		if at < 0 {
			t.Errorf("%s logged in on several servers: %v", u, where[u])
			continue
		}
		if where[u][at] != rounds {
			t.Errorf("%s: %d logins on %s, want %d", u, where[u][at], servers[at], rounds)
		}
		perServer[at]++
	}
	for i, n := range perServer {
		if n < 5 {
			t.Errorf("server %s holds %d of %d users: %v; want them spread", servers[i], n, len(users), perServer)
		}
	}
}

// TestPoolKillMember: a member killed mid-test costs new sessions nothing
// (they fail over before login), open sessions on the other servers go
// on, the member shows down on /metrics and /healthz, and after it is
// restarted it comes back after its backoff and gets its users again.
func TestPoolKillMember(t *testing.T) {
	shared, watches := poolMembers(t)
	spare := newPoolSpare(t)
	checks := watchLog(t, spare.log)
	spare.start(t)
	watches = append(watches[:2], watchLog(t, spare.log))
	servers := []string{shared[0], shared[1], spare.addr}
	listen, metrics := freePort(t), freePort(t)
	opsStart(t, poolConfig(listen, metrics, servers,
		"  health_check_interval = \"200ms\"\n  fail_threshold = 2\n  down_backoff = \"1s\"\n"))

	var users []string
	for i := 200; i < 230; i++ {
		users = append(users, fmt.Sprintf("load%03d", i))
	}
	open := map[string]*popClient{}
	for _, u := range users {
		open[u] = poolLogin(t, listen, u)
		defer open[u].Close()
	}
	where := poolWhere(t, watches, users, 1)
	var onSpare, onOthers []string
	for _, u := range users {
		switch only(where[u]) {
		case 2:
			onSpare = append(onSpare, u)
		case -1:
			t.Fatalf("%s: logins %v", u, where[u])
		default:
			onOthers = append(onOthers, u)
		}
	}
	if len(onSpare) == 0 || len(onOthers) == 0 {
		t.Fatalf("30 users, %d on the spare and %d elsewhere: cannot test failover", len(onSpare), len(onOthers))
	}

	// Its sessions end with it, or soon after: Dovecot's pop3 processes
	// may outlive their master for a moment; nothing is asserted of them.
	spare.stop(t)
	for _, u := range onOthers {
		if _, err := open[u].Cmd("STAT"); err != nil {
			t.Errorf("%s's open session on a surviving server: STAT: %v", u, err)
		}
	}
	// Every user can log in again at once, those of the killed server too.
	after := []*logWatch{watchLog(t, envSplit(t, "POOL_LOGS", 0)), watchLog(t, envSplit(t, "POOL_LOGS", 1))}
	for _, u := range users {
		c := poolLogin(t, listen, u)
		if _, err := c.Cmd("STAT"); err != nil {
			t.Errorf("%s after the kill: STAT: %v", u, err)
		}
		c.Cmd("QUIT")
		c.Close()
	}
	moved := poolWhere(t, after, onSpare, 1)
	for _, u := range onSpare {
		if only(moved[u]) < 0 {
			t.Errorf("%s moved to %v", u, moved[u])
		}
	}
	poolWaitUp(t, metrics, spare.addr, 0, 10*time.Second)
	if status, parts := poolHealth(t, metrics); status != http.StatusServiceUnavailable || parts.Pools["pool"].Status != "degraded" || parts.Pools["pool"].Up != 2 {
		t.Errorf("/healthz with one server down: HTTP %d, %+v", status, parts.Pools["pool"])
	}

	spare.start(t)
	poolWaitUp(t, metrics, spare.addr, 1, 15*time.Second)
	back := watchLog(t, spare.log)
	c := poolLogin(t, listen, onSpare[0])
	c.Cmd("QUIT")
	c.Close()
	back.Wait(t, "Login: user=<"+onSpare[0]+">,", 10*time.Second)
	if status, parts := poolHealth(t, metrics); status != http.StatusOK || parts.Pools["pool"].Status != "ok" {
		t.Errorf("/healthz with every server up: HTTP %d, %+v", status, parts.Pools["pool"])
	}
	for _, u := range onOthers {
		if _, err := open[u].Cmd("QUIT"); err != nil {
			t.Errorf("%s: QUIT: %v", u, err)
		}
	}
	// The active checks said QUIT before any login, and logged in nobody.
	text := checks.Wait(t, "Aborted login by logging out (no auth attempts", 10*time.Second)
	logins := strings.Count(text, "Login: user=<")
	for _, u := range onSpare {
		logins -= poolLoginCount(text, u)
	}
	if logins != 0 || strings.Contains(text, "auth failed") {
		t.Errorf("the spare saw %d logins of no test user, or a failed one:\n%s", logins, text)
	}
}

// envSplit returns element i of the comma-separated env value key.
func envSplit(t *testing.T, key string, i int) string {
	t.Helper()
	parts := strings.Split(envValue(t, key), ",")
	if i >= len(parts) {
		t.Fatalf("%s has no element %d", key, i)
	}
	return parts[i]
}

// poolHealthParts is the part of /healthz the pools report.
type poolHealthParts struct {
	Pools map[string]struct {
		Status  string `json:"status"`
		Up      int    `json:"up"`
		Servers []struct {
			Server string `json:"server"`
			Up     bool   `json:"up"`
		} `json:"servers"`
	} `json:"pools"`
}

// poolHealth fetches /healthz and returns its HTTP status and pools part.
func poolHealth(t *testing.T, metrics string) (int, poolHealthParts) {
	t.Helper()
	resp, err := http.Get("http://" + metrics + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	defer resp.Body.Close()
	var rep struct {
		Parts poolHealthParts `json:"parts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatalf("/healthz: %v", err)
	}
	return resp.StatusCode, rep.Parts
}

// TestPoolReloadServers: SIGHUP replaces a server of the pool: open
// sessions stay where they are, new ones never reach the removed server,
// and /metrics follows the new list.
func TestPoolReloadServers(t *testing.T) {
	servers, watches := poolMembers(t)
	listen, metrics := freePort(t), freePort(t)
	p := opsStart(t, poolConfig(listen, metrics, servers[:2], ""))
	var users []string
	for i := 300; i < 312; i++ {
		users = append(users, fmt.Sprintf("load%03d", i))
	}
	open := map[string]*popClient{}
	for _, u := range users {
		open[u] = poolLogin(t, listen, u)
		defer open[u].Close()
	}
	where := poolWhere(t, watches, users, 1)
	opsWriteConfig(t, p, poolConfig(listen, metrics, servers[1:], ""))
	removed := watchLog(t, envSplit(t, "POOL_LOGS", 0))
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, "configuration reloaded", 10*time.Second)
	samples := opsScrape(t, metrics)
	for i, s := range servers {
		_, ok := opsValue(samples, "popgate_backend_server_up", map[string]string{"backend": "pool", "server": s})
		if ok != (i > 0) {
			t.Errorf("after the reload %s on /metrics: %v", s, ok)
		}
	}
	for _, u := range users {
		if _, err := open[u].Cmd("STAT"); err != nil {
			t.Errorf("%s (on server %v) after the reload: STAT: %v", u, where[u], err)
		}
		c := poolLogin(t, listen, u)
		c.Cmd("QUIT")
		c.Close()
		open[u].Cmd("QUIT")
	}
	// A direct login to the removed server marks the end of its log: a
	// login popgate had sent there would be logged before it.
	direct := poolDirect(t, servers[0], "load399")
	direct.Close()
	text := removed.Wait(t, "Login: user=<load399>,", 10*time.Second)
	for _, u := range users {
		if poolLoginCount(text, u) > 0 {
			t.Errorf("%s logged in on the removed server %s after the reload", u, servers[0])
		}
	}
}

// poolDirect logs user in on a pool server directly, without popgate.
func poolDirect(t *testing.T, addr, user string) *popClient {
	t.Helper()
	c := dialPOP(t, addr)
	if err := c.Login(user, poolPassword); err != nil {
		t.Fatalf("direct login %s on %s: %v", user, addr, err)
	}
	return c
}

// TestPoolPasswordSentOnce: a server that dies after PASS makes the
// client's login fail with [SYS/TEMP]; popgate never hands the password
// to the next server of the pool.
func TestPoolPasswordSentOnce(t *testing.T) {
	servers, watches := poolMembers(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	passes := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				fmt.Fprintf(c, "+OK dies mid-login\r\n")
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.HasPrefix(line, "PASS ") {
						passes <- strings.TrimSpace(line)
						return // the connection drops before any answer
					}
					if strings.HasPrefix(line, "USER ") {
						fmt.Fprintf(c, "+OK\r\n")
					}
				}
			}()
		}
	}()
	listen, metrics := freePort(t), freePort(t)
	opsStart(t, poolConfig(listen, metrics, []string{ln.Addr().String(), servers[0]}, "  balance = \"first\"\n"))
	c := dialPOP(t, listen)
	if _, err := c.Cmd("USER load400"); err != nil {
		t.Fatal(err)
	}
	line, err := c.Cmd("PASS " + poolPassword)
	if err == nil || !strings.HasPrefix(line, "-ERR [SYS/TEMP]") {
		t.Fatalf("PASS answered %q, %v; want -ERR [SYS/TEMP]", line, err)
	}
	c.Close()
	if got := <-passes; got != "PASS "+poolPassword {
		t.Errorf("the dying server got %q", got)
	}
	select {
	case extra := <-passes:
		t.Errorf("the password went out again: %q", extra)
	default:
	}
	direct := poolDirect(t, servers[0], "load401")
	direct.Close()
	text := watches[0].Wait(t, "Login: user=<load401>,", 10*time.Second)
	if strings.Contains(text, "load400") {
		t.Errorf("the next server of the pool saw load400:\n%s", text)
	}
}
