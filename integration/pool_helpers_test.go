//go:build integration

package integration

// Helpers of the backend pool tests (pool_test.go): the pool's Dovecot
// instances (integration/pools.sh), which share one mail root and passwd
// file, popgate configurations in front of them, and telling from the
// instances' own logs which server each login reached. The tests read
// load users' mailboxes and never change them.

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// poolPassword is the password of every load user (integration/mkmail).
const poolPassword = "load-pw"

// poolMembers returns the addresses of the pool's three shared instances
// and a watch of each one's log, from now on.
func poolMembers(t *testing.T) ([]string, []*logWatch) {
	t.Helper()
	addrs := strings.Split(envValue(t, "POOL_ADDRS"), ",")
	logs := strings.Split(envValue(t, "POOL_LOGS"), ",")
	if len(addrs) != 3 || len(logs) != 3 {
		t.Fatalf("POOL_ADDRS %v, POOL_LOGS %v: want three of each (integration/pools.sh)", addrs, logs)
	}
	var watches []*logWatch
	for _, l := range logs {
		watches = append(watches, watchLog(t, l))
	}
	return addrs, watches
}

// poolConfig is a configuration with an after-auth listener at listen in
// front of the pool "pool" of servers, and metrics at metrics. backend
// adds attributes to the backend block.
func poolConfig(listen, metrics string, servers []string, backend string) string {
	quoted := make([]string, len(servers))
	for i, s := range servers {
		quoted[i] = strconv.Quote(s)
	}
	return fmt.Sprintf(`listener "pool" {
  address = %q
  connect = "after-auth"
  backend = "pool"
}
backend "pool" {
  servers         = [%s]
  connect_timeout = "6s"
%s}
metrics {
  address = %q
}
`, listen, strings.Join(quoted, ", "), backend, metrics)
}

// poolLogin logs user in through popgate at addr; any error is fatal.
func poolLogin(t *testing.T, addr, user string) *popClient {
	t.Helper()
	c, err := tryDialPOP(addr, nil)
	if err != nil {
		t.Fatalf("%s: connect: %v", user, err)
	}
	if err := c.Login(user, poolPassword); err != nil {
		c.Close()
		t.Fatalf("%s: login: %v", user, err)
	}
	return c
}

// poolLoginCount returns how many logins of user the text of a Dovecot
// log holds.
func poolLoginCount(text, user string) int {
	return strings.Count(text, "Login: user=<"+user+">,")
}

// poolWhere waits (bounded) until the logs, together, show want logins of
// each of users since their watches began, and returns for each user how
// many landed on each server, in the order of watches.
func poolWhere(t *testing.T, watches []*logWatch, users []string, want int) map[string][]int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		texts := make([]string, len(watches))
		for i, w := range watches {
			texts[i] = w.Since(t)
		}
		out := map[string][]int{}
		missing := ""
		for _, u := range users {
			counts := make([]int, len(watches))
			total := 0
			for i, text := range texts {
				counts[i] = poolLoginCount(text, u)
				total += counts[i]
			}
			out[u] = counts
			if total < want && missing == "" {
				missing = fmt.Sprintf("%s: %d of %d logins", u, total, want)
			}
		}
		if missing == "" {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pool's logs never showed every login (%s)", missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// only returns the index of the one server with logins in counts, or -1
// when there are none or several.
func only(counts []int) int {
	at := -1
	for i, n := range counts {
		if n > 0 {
			if at >= 0 {
				return -1
			}
			at = i
		}
	}
	return at
}

// poolSpare is the fourth pool member, which a test starts, kills and
// restarts itself (integration/pools.sh configures it, never starts it).
type poolSpare struct {
	addr, conf, log, pidfile string
}

func newPoolSpare(t *testing.T) *poolSpare {
	t.Helper()
	s := &poolSpare{addr: envValue(t, "POOL_SPARE_ADDR"), conf: envValue(t, "POOL_SPARE_CONF"),
		log: envValue(t, "POOL_SPARE_LOG"), pidfile: envValue(t, "POOL_SPARE_PIDFILE")}
	s.stop(t) // left over from an interrupted run of this test
	if _, err := os.Stat(s.log); err != nil {
		os.WriteFile(s.log, nil, 0o644)
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// start starts the spare and waits (bounded) until it greets.
func (s *poolSpare) start(t *testing.T) {
	t.Helper()
	// Dovecot keeps the stdout and stderr it was started with: it gets a
	// file of its own, never a pipe the test would wait on.
	errFile, err := os.CreateTemp(t.TempDir(), "dovecot-spare-*.err")
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	cmd := exec.Command("dovecot", "-c", s.conf)
	cmd.Stdout, cmd.Stderr = errFile, errFile
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(errFile.Name())
		t.Fatalf("start the spare pool member: %v\n%s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := tryDialPOP(s.addr, nil)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the spare pool member does not greet on %s: %v", s.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pid returns the spare's master pid, or 0 when it is not running. The
// pid file is trusted only when that process runs the spare's config.
func (s *poolSpare) pid() int {
	data, err := os.ReadFile(s.pidfile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), s.conf) {
		return 0
	}
	return pid
}

// stop stops the spare by its pid (SIGTERM, which ends its sessions too)
// and waits (bounded) until the process is gone.
func (s *poolSpare) stop(t *testing.T) {
	t.Helper()
	pid := s.pid()
	if pid == 0 {
		return
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("stop the spare pool member: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the spare pool member (pid %d) ignored SIGTERM for 15 s", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// poolWaitUp polls /metrics (bounded) until popgate_backend_server_up of
// server in backend "pool" is want.
func poolWaitUp(t *testing.T, metrics, server string, want float64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	labels := map[string]string{"backend": "pool", "server": server}
	for {
		v, ok := opsValue(opsScrape(t, metrics), "popgate_backend_server_up", labels)
		if ok && v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("popgate_backend_server_up%v = %v (present %v) after %v; want %v", labels, v, ok, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
