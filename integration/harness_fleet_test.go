//go:build integration

package integration

// The fleet harness: HAProxy started from the shipped contrib/haproxy.cfg
// (addresses replaced), its statistics socket, a private redis-server, and
// the readiness endpoints of popgate instances.

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Fixed loopback ports of the fleet tests (integration/lib.sh reserves
// 14140-14149 for them).
const (
	fleetPOP3Port   = 14140 // HAProxy's POP3 frontend
	fleetPOP3SPort  = 14141 // HAProxy's POP3S frontend
	fleetStatsPort  = 14142 // HAProxy's statistics page
	fleetPortBaseA  = 14143 // instance A: POP3, POP3S, metrics
	fleetPortBaseB  = 14146 // instance B: POP3, POP3S, metrics
	haproxyBin      = "/usr/sbin/haproxy"
	haproxyUpWithin = 20 * time.Second
)

// fleetInstance is the addresses of one popgate instance behind HAProxy.
type fleetInstance struct {
	Name    string // the HAProxy server name and audit instance name
	POP3    string
	POP3S   string
	Metrics string
}

// fleetInstanceAt returns instance name with its three ports from base.
func fleetInstanceAt(name string, base int) fleetInstance {
	at := func(p int) string { return fmt.Sprintf("127.0.0.1:%d", p) }
	return fleetInstance{Name: name, POP3: at(base), POP3S: at(base + 1), Metrics: at(base + 2)}
}

// HAProxy is a running haproxy process (in the foreground, -db), stopped at
// test cleanup, with the path of its statistics socket.
type HAProxy struct {
	*Popgate // the process; its Logs are HAProxy's output
	Socket   string
}

// startHAProxy writes cfg to a temporary directory and runs `haproxy -db
// -f FILE` there, waiting until every address in waitAddrs accepts TCP
// connections. cfg must hold a "stats socket @SOCKET@" line, which is
// pointed at a socket in that directory. `haproxy -c` runs first, so a
// configuration error fails the test with HAProxy's own diagnostics.
func startHAProxy(t testing.TB, cfg string, waitAddrs ...string) *HAProxy {
	t.Helper()
	if _, err := os.Stat(haproxyBin); err != nil {
		t.Fatalf("haproxy is not installed (integration/setup.sh installs it): %v", err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	if !strings.Contains(cfg, "@SOCKET@") {
		t.Fatal("startHAProxy: the configuration has no stats socket @SOCKET@ line")
	}
	cfg = strings.ReplaceAll(cfg, "@SOCKET@", sock)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(haproxyBin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, cfg)
	}
	p, err := startProcess(t, dir, haproxyBin, []string{"-db", "-f", path}, nil, waitAddrs)
	if err == nil {
		err = p.waitSocket(sock)
	}
	if err != nil {
		t.Fatalf("haproxy not ready: %v\noutput:\n%s", err, p.Logs())
	}
	return &HAProxy{Popgate: p, Socket: sock}
}

// contribHAProxy returns contrib/haproxy.cfg with the example addresses
// replaced by the fleet test's ports and instances (the third example
// instance removed when only two are given), HAProxy run as the test's
// user, and its statistics socket left for startHAProxy. Every text
// replaced must be in the file, so the test notices when the shipped
// configuration changes shape.
func contribHAProxy(t testing.TB, instances ...fleetInstance) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "contrib", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(data)
	replace := func(old, new string) {
		t.Helper()
		if !strings.Contains(cfg, old) {
			t.Fatalf("contrib/haproxy.cfg no longer contains %q", old)
		}
		cfg = strings.ReplaceAll(cfg, old, new)
	}
	replace("stats socket /run/haproxy/admin.sock", "stats socket @SOCKET@")
	replace("  user haproxy\n  group haproxy\n", "")
	replace("log /dev/log local0", "log stderr format short local0 notice")
	replace("bind :110\n", fmt.Sprintf("bind 127.0.0.1:%d\n", fleetPOP3Port))
	replace("bind :995\n", fmt.Sprintf("bind 127.0.0.1:%d\n", fleetPOP3SPort))
	replace("bind 127.0.0.1:8404", fmt.Sprintf("bind 127.0.0.1:%d", fleetStatsPort))
	for i, ex := range []string{"pg1 192.0.2.11", "pg2 192.0.2.12", "pg3 192.0.2.13"} {
		if i >= len(instances) {
			replace("  server "+ex+":110\n", "")
			replace("  server "+ex+":995\n", "")
			continue
		}
		in := instances[i]
		_, mport, _ := net.SplitHostPort(in.Metrics)
		replace("server "+ex+":110\n", fmt.Sprintf("server %s %s port %s\n", in.Name, in.POP3, mport))
		replace("server "+ex+":995\n", fmt.Sprintf("server %s %s port %s\n", in.Name, in.POP3S, mport))
	}
	return cfg
}

// ServerStatus returns the "status" column of HAProxy's `show stat` for
// server in backend ("UP", "DOWN", "UP 1/2", ...).
func (h *HAProxy) ServerStatus(t testing.TB, backend, server string) string {
	t.Helper()
	return h.Stat(t, backend, server, "status")
}

// Stat returns one column of HAProxy's `show stat` for server in backend
// ("status", "scur", "stot", "wredis", ...).
func (h *HAProxy) Stat(t testing.TB, backend, server, column string) string {
	t.Helper()
	for _, row := range h.stat(t) {
		if row["pxname"] == backend && row["svname"] == server {
			return row[column]
		}
	}
	t.Fatalf("HAProxy has no server %s/%s", backend, server)
	return ""
}

// WaitServerStatus polls the statistics socket (HAProxy offers no
// notification) until server's status starts with want, or fails after
// within.
func (h *HAProxy) WaitServerStatus(t testing.TB, backend, server, want string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := h.ServerStatus(t, backend, server)
		if strings.HasPrefix(got, want) {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("HAProxy server %s/%s is %q after %v, want %s", backend, server, got, within, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Command sends one command to HAProxy's runtime API (the stats socket,
// level admin) and returns its answer; an answer that is not empty (the
// "set" commands answer nothing when they succeed) fails the test.
func (h *HAProxy) Command(t testing.TB, cmd string) {
	t.Helper()
	if out := h.ask(t, cmd); strings.TrimSpace(out) != "" {
		t.Fatalf("HAProxy %q: %s", cmd, out)
	}
}

// ask sends one command to the stats socket and returns the answer.
func (h *HAProxy) ask(t testing.TB, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", h.Socket, 2*time.Second)
	if err != nil {
		t.Fatalf("HAProxy stats socket: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		t.Fatalf("HAProxy stats socket: %v", err)
	}
	data, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("HAProxy %s: %v", cmd, err)
	}
	return string(data)
}

// stat returns the rows of `show stat` as maps of column name to value.
func (h *HAProxy) stat(t testing.TB) []map[string]string {
	t.Helper()
	data := h.ask(t, "show stat")
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(data), "# ")))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil || len(recs) < 2 {
		t.Fatalf("HAProxy show stat: %v\n%s", err, data)
	}
	var rows []map[string]string
	for _, rec := range recs[1:] {
		row := map[string]string{}
		for i, name := range recs[0] {
			if i < len(rec) {
				row[name] = rec[i]
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// fleetReadiness is one answer of /readyz.
type fleetReadiness struct {
	Code     int
	Status   string `json:"status"`
	Sessions int    `json:"sessions"`
}

// readyz asks an instance's /readyz.
func readyz(t testing.TB, metricsAddr string) fleetReadiness {
	t.Helper()
	var r fleetReadiness
	r.Code = fleetGetJSON(t, "http://"+metricsAddr+"/readyz", &r)
	return r
}

// fleetGetJSON GETs url, decodes its JSON body into v and returns the
// HTTP status.
func fleetGetJSON(t testing.TB, url string, v any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp.StatusCode
}

// fleetCluster returns a cluster block naming instance, backed by a
// private redis-server (harness_redis_test.go) that is started once per
// test, at the first call.
func fleetCluster(t *testing.T, redis *string, instance string) string {
	t.Helper()
	if *redis == "" {
		*redis = startRedis(t).Sock
	}
	return fmt.Sprintf("cluster {\n  redis    = %q\n  instance = %q\n}\n", "unix://"+*redis, instance)
}

// waitSocket polls the unix socket sock until it accepts a connection,
// the process exits, or readyTimeout passes.
func (p *Popgate) waitSocket(sock string) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			return c.Close()
		}
		select {
		case <-p.done:
			return fmt.Errorf("process exited (%v) before %s accepted connections", p.exitErr, sock)
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not accept connections within %v: %w", sock, readyTimeout, err)
		}
	}
}

// fleetAuditFor returns the records of user's sessions in the audit trail
// at path: every record of a session whose auth record names user.
func fleetAuditFor(t testing.TB, path, user string) []fltRecord {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var all []fltRecord
	sessions := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r fltRecord
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue
		}
		all = append(all, r)
		if r.str("event") == "auth" && r.str("client_user") == user {
			sessions[r.str("session")] = true
		}
	}
	var out []fltRecord
	for _, r := range all {
		if sessions[r.str("session")] {
			out = append(out, r)
		}
	}
	return out
}
