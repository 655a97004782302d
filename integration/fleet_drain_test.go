//go:build integration

package integration

// Two popgate instances behind HAProxy (the shipped contrib/haproxy.cfg)
// in front of Dovecot A: readiness, a SIGTERM drain during a 50 MiB RETR,
// and the audit trail of each instance verified as its own chain.

import (
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fleetPopgateConfig is one instance's configuration: plain and implicit
// TLS listeners that take PROXY v2 from HAProxy only, the metrics
// listener HAProxy checks, and a chained audit trail of its own.
func fleetPopgateConfig(t *testing.T, in fleetInstance, trail, cluster string) string {
	return cluster + fmt.Sprintf(`shutdown_timeout = "60s"
state_dir = "./state"
listener "pop3" {
  address         = %q
  backend         = "main"
  proxy_protocol  = true
  trusted_proxies = ["127.0.0.1/32"]
}
listener "pop3s" {
  address         = %q
  tls             = "implicit"
  server_name     = ["localhost"]
  backend         = "main"
  proxy_protocol  = true
  trusted_proxies = ["127.0.0.1/32"]
}
metrics {
  address = %q
}
`, in.POP3, in.POP3S, in.Metrics) + opsBackendA(t) + fltAudit(trail, true)
}

// fleetLoginQuit logs user in through addr, runs STAT and QUIT, and
// returns the client's own address (what PROXY v2 tells the instance).
func fleetLoginQuit(t *testing.T, addr, user string) string {
	t.Helper()
	c := opsLogin(t, addr, user)
	defer c.Close()
	local := c.Conn.LocalAddr().String()
	opsCmdOK(t, c, "STAT")
	opsCmdOK(t, c, "QUIT")
	return local
}

// TestFleetDrainBehindHAProxy: two instances behind HAProxy; both are
// ready and UP. A client RETRs the 50 MiB message through HAProxy; the
// instance serving it gets SIGTERM mid-body. Its /readyz answers 503 at
// once (while /healthz stays "ok"), its listener refuses, new sessions
// through HAProxy all succeed and are served by the other instance
// (its audit trail has them, with the client's real address from PROXY
// v2; the draining one's has none), HAProxy marks the draining instance
// DOWN, and the message completes byte-identical before the instance
// exits 0. `popgate audit verify` then passes on both trails together.
func TestFleetDrainBehindHAProxy(t *testing.T) {
	const bigUser, tlsUser = "load700", "load707"
	newUsers := []string{"load701", "load702", "load703", "load704", "load705", "load706"}
	opsSeedBig(t, bigUser)
	for _, u := range append([]string{tlsUser}, newUsers...) {
		seedUser(t, u)
	}
	wantSum, wantLen := opsDirectHash(t, bigUser, opsBigMsg)

	dir := t.TempDir()
	var redis string
	ins := []fleetInstance{fleetInstanceAt("pg-a", fleetPortBaseA), fleetInstanceAt("pg-b", fleetPortBaseB)}
	procs := map[string]*Popgate{}
	trails := map[string]string{}
	clustered := false
	for _, in := range ins {
		trails[in.Name] = filepath.Join(dir, in.Name+".jsonl")
		cluster := fleetCluster(t, &redis, in.Name)
		clustered = cluster != ""
		procs[in.Name] = opsStart(t, fleetPopgateConfig(t, in, trails[in.Name], cluster))
		if r := readyz(t, in.Metrics); r.Code != 200 || r.Status != "ready" {
			t.Fatalf("%s /readyz after start: %+v, want 200 ready", in.Name, r)
		}
	}
	// A third instance configured with pg-a's trail is refused: one chain,
	// one writer.
	third := fleetInstance{Name: "pg-c", POP3: freePort(t), POP3S: freePort(t), Metrics: freePort(t)}
	p3, err := tryStartPopgate(t, fleetPopgateConfig(t, third, trails["pg-a"], ""), third.POP3)
	if err == nil {
		t.Fatal("a third instance on pg-a's audit trail started")
	}
	if exit := p3.WaitExit(t, 10*time.Second); exit == nil || !strings.Contains(p3.Logs(), "every instance needs an audit file of its own") {
		t.Errorf("a third instance on pg-a's trail: exit %v, want a failure naming the remedy:\n%s", exit, p3.Logs())
	}
	if !clustered {
		t.Log("this build has no cluster block: instances run without Redis, and audit records name no instance")
	}
	front := fmt.Sprintf("127.0.0.1:%d", fleetPOP3Port)
	hap := startHAProxy(t, contribHAProxy(t, ins...), front, fmt.Sprintf("127.0.0.1:%d", fleetPOP3SPort))
	for _, in := range ins {
		hap.WaitServerStatus(t, "popgate_pop3", in.Name, "UP", haproxyUpWithin)
	}

	// POP3S passes through HAProxy to popgate's own TLS, PROXY v2 first.
	tc := dialPOPS(t, fmt.Sprintf("127.0.0.1:%d", fleetPOP3SPort), &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err := tc.Login(tlsUser, itPassword(t, "a", tlsUser)); err != nil {
		t.Fatalf("POP3S login through HAProxy: %v", err)
	}
	opsCmdOK(t, tc, "QUIT")
	tc.Close()

	// Three idle sessions on B (A's weight 0 meanwhile), then the big RETR
	// on A, which leastconn now prefers; so it would also send A the next
	// sessions: what reaches B once A drains is HAProxy's doing (the
	// refused connection redispatched, then A marked DOWN).
	drained, other := ins[0], ins[1]
	hap.Command(t, "set weight popgate_pop3/"+drained.Name+" 0")
	var idle []*popClient
	for range 3 {
		idle = append(idle, dialPOP(t, front))
	}
	hap.Command(t, "set weight popgate_pop3/"+drained.Name+" 100%")
	if r := readyz(t, other.Metrics); r.Sessions != 3 {
		t.Fatalf("%s holds %d sessions, want the 3 idle ones", other.Name, r.Sessions)
	}
	c := opsLogin(t, front, bigUser)
	defer c.Close()
	if r := readyz(t, drained.Metrics); r.Sessions != 1 {
		t.Fatalf("the big RETR session did not go to %s (%+v)", drained.Name, r)
	}
	opsCmdOK(t, c, fmt.Sprintf("RETR %d", opsBigMsg))
	if _, err := c.R.Peek(60 << 10); err != nil {
		t.Fatalf("first 60 KiB of the body: %v", err)
	}
	p := procs[drained.Name]
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, "shutting down", 5*time.Second)
	if r := readyz(t, drained.Metrics); r.Code != 503 || r.Status != "draining" || r.Sessions != 1 {
		t.Errorf("%s /readyz once the drain started: %+v, want 503 draining with the open session", drained.Name, r)
	}
	var health struct {
		Status    string `json:"status"`
		Readiness string `json:"readiness"`
	}
	if code := fleetGetJSON(t, "http://"+drained.Metrics+"/healthz", &health); health.Readiness != "draining" {
		t.Errorf("%s /healthz while draining: HTTP %d, %+v; want readiness draining", drained.Name, code, health)
	}
	if r := readyz(t, other.Metrics); r.Code != 200 {
		t.Errorf("%s /readyz while the other drains: %+v", other.Name, r)
	}
	if !opsRefused(drained.POP3) {
		t.Errorf("%s still accepts connections while draining", drained.Name)
	}

	// New sessions while the body is held: every one succeeds, at once
	// and after HAProxy has marked the draining instance DOWN.
	clients := map[string]string{} // user -> the client's address
	for _, u := range newUsers[:3] {
		clients[u] = fleetLoginQuit(t, front, u)
	}
	took := hap.WaitServerStatus(t, "popgate_pop3", drained.Name, "DOWN", 15*time.Second)
	t.Logf("HAProxy marked %s DOWN %v after the first new sessions", drained.Name, took)
	for _, u := range newUsers[3:] {
		clients[u] = fleetLoginQuit(t, front, u)
	}
	if n := hap.Stat(t, "popgate_pop3", drained.Name, "wredis"); n == "0" || n == "" {
		t.Errorf("HAProxy redispatched no connection away from %s (wredis %q): the new sessions never tried it", drained.Name, n)
	} else {
		t.Logf("HAProxy redispatched %s connections away from %s", n, drained.Name)
	}
	if st := hap.ServerStatus(t, "popgate_pop3", other.Name); st != "UP" {
		t.Errorf("%s is %q in HAProxy, want UP", other.Name, st)
	}

	// The held message completes, byte-identical, and the instance exits.
	sum, n, err := opsHashBody(c)
	if err != nil {
		t.Fatalf("body after SIGTERM: %v (%d octets)", err, n)
	}
	if n != wantLen || sum != wantSum {
		t.Errorf("body through HAProxy and the draining instance: %d octets, SHA-256 %x; direct: %d octets, %x", n, sum, wantLen, wantSum)
	}
	opsCmdOK(t, c, "QUIT")
	for _, ic := range idle {
		ic.Close()
	}
	if err := p.WaitExit(t, 15*time.Second); err != nil {
		t.Errorf("%s exit after the drain: %v, want status 0", drained.Name, err)
	}
	opsWantMailbox(t, bigUser, opsBigMsg)

	// Who served what: the audit trails.
	for _, u := range newUsers {
		if recs := fleetAuditFor(t, trails[drained.Name], u); len(recs) > 0 {
			t.Errorf("%s, draining, served %s: %v", drained.Name, u, recs[0])
		}
		recs := fleetAuditFor(t, trails[other.Name], u)
		if len(fltFind(recs, "session_end", nil)) != 1 {
			t.Errorf("%s did not serve %s whole: %d records", other.Name, u, len(recs))
			continue
		}
		if got := recs[0].str("client"); got != clients[u] {
			t.Errorf("%s records %s's client as %q, want %q (PROXY v2 from HAProxy)", other.Name, u, got, clients[u])
		}
	}
	big := fleetAuditFor(t, trails[drained.Name], bigUser)
	if rs := fltFind(big, "retrieve", nil); len(rs) != 1 || rs[0]["complete"] != true {
		t.Errorf("%s's trail lacks the complete retrieve of the big message: %v", drained.Name, rs)
	}
	if clustered {
		for _, in := range ins {
			for _, r := range auditLines(t, trails[in.Name]) {
				if r.str("instance") != in.Name {
					t.Errorf("%s's trail has a record naming instance %q: %v", in.Name, r.str("instance"), r)
					break
				}
			}
		}
	}

	// Both trails verify, each as its own chain, in one command.
	out, err := exec.Command(buildPopgate(t), "audit", "verify", trails["pg-a"], trails["pg-b"]).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "all 2 audit files verified") {
		t.Errorf("popgate audit verify of both trails: %v\n%s", err, out)
	}
	// One edited byte in one trail fails the whole command, and names it.
	data, _ := os.ReadFile(trails[other.Name])
	edited := filepath.Join(dir, "edited.jsonl")
	os.WriteFile(edited, []byte(strings.Replace(string(data), `"STAT"`, `"STAX"`, 1)), 0o600)
	out, err = exec.Command(buildPopgate(t), "audit", "verify", trails[drained.Name], edited).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), edited+": FAILED") {
		t.Errorf("audit verify with one edited trail: %v, want exit 1 naming it\n%s", err, out)
	}
}
