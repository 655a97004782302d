//go:build integration

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFleetContribFilesValid: the shipped contrib/haproxy.cfg passes
// `haproxy -c` as it is, and holds what docs/CLUSTER.md promises (TCP
// mode, PROXY v2 to every server, checks of /readyz on the metrics port, a
// per-source stick table, no shutdown-sessions that would cut a drain);
// the rsyslog files pass `rsyslogd -N1`.
func TestFleetContribFilesValid(t *testing.T) {
	cfg := filepath.Join("..", "contrib", "haproxy.cfg")
	if out, err := exec.Command(haproxyBin, "-c", "-f", cfg).CombinedOutput(); err != nil {
		t.Errorf("haproxy -c -f contrib/haproxy.cfg: %v\n%s", err, out)
	}
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []string{"mode tcp", "send-proxy-v2", "option httpchk", "http-check send meth GET uri /readyz",
		"http-check expect status 200", "check port 9110", "stick-table type ipv6", "track-sc0 src", "sc0_conn_cur", "sc0_conn_rate",
		"option redispatch", "timeout client 11m"} {
		if !strings.Contains(text, want) {
			t.Errorf("contrib/haproxy.cfg lacks %q", want)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if l := strings.TrimSpace(line); !strings.HasPrefix(l, "#") && strings.Contains(l, "shutdown-sessions") {
			t.Errorf("contrib/haproxy.cfg cuts sessions of a server marked down: %q", l)
		}
	}
	for _, name := range []string{"rsyslog-popgate-ship.conf", "rsyslog-popgate-collect.conf"} {
		if out, err := exec.Command(rsyslogBin, "-N1", "-f", filepath.Join("..", "contrib", name)).CombinedOutput(); err != nil {
			t.Errorf("rsyslogd -N1 contrib/%s: %v\n%s", name, err, out)
		}
	}
}
