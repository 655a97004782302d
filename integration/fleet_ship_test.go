//go:build integration

package integration

// The audit shipping recipe of docs/CLUSTER.md, run as shipped: two
// popgate instances write their own trails; rsyslog (contrib's
// rsyslog-popgate-ship.conf) reads both with imfile and forwards them over
// loopback TCP to a second rsyslog (rsyslog-popgate-collect.conf), which
// writes one file per instance; the collected files are byte-identical to
// the trails and `popgate audit verify` passes on them.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fleetCollectorPort is the collector rsyslog's TCP port (lib.sh reserves
// 14140-14149 for the fleet tests).
const fleetCollectorPort = 14149

// rsyslogBin is Debian's rsyslogd (integration/setup.sh installs it).
const rsyslogBin = "/usr/sbin/rsyslogd"

// contribFile returns contrib/name with each old text replaced by its new
// one; a text that is not in the file fails the test, so the test notices
// when the shipped file changes shape.
func contribFile(t *testing.T, name string, pairs ...string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "contrib", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("contrib/%s no longer contains %q", name, pairs[i])
		}
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	return s
}

// startRsyslog checks conf with `rsyslogd -N1` and runs rsyslogd in the
// foreground with it (stopped by its PID at cleanup), waiting for
// waitAddrs.
func startRsyslog(t *testing.T, name, conf string, waitAddrs ...string) *Popgate {
	t.Helper()
	if _, err := os.Stat(rsyslogBin); err != nil {
		t.Fatalf("rsyslogd is not installed (integration/setup.sh installs it): %v", err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, name+".conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(rsyslogBin, "-N1", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd -N1 %s: %v\n%s\n%s", name, err, out, conf)
	}
	p, err := startProcess(t, dir, rsyslogBin, []string{"-n", "-f", path, "-i", filepath.Join(dir, name+".pid")}, nil, waitAddrs)
	if err != nil {
		t.Fatalf("rsyslogd %s not ready: %v\n%s", name, err, p.Logs())
	}
	return p
}

// fleetAddManyMessages adds n small messages to the end of user's freshly
// seeded mailbox on Dovecot A, the first with a Message-ID full of
// characters JSON escapes and non-ASCII ones.
func fleetAddManyMessages(t *testing.T, user string, n int) {
	t.Helper()
	uid, _ := strconv.Atoi(envValue(t, "MAIL_UID"))
	gid, _ := strconv.Atoi(envValue(t, "MAIL_GID"))
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("<many-%d@popgate.test>", i)
		if i == 0 {
			id = "<\"quoted\\back\"\tslash/#percent%-grüße-日本@popgate.test>"
		}
		msg := "From: <sender@popgate.test>\r\nSubject: many\r\nMessage-ID: " + id + "\r\n\r\nbody\r\n"
		path := fmt.Sprintf("%s/%s/Maildir/cur/%d.M%dP9.fleet:2,", envValue(t, "MAIL_ROOT"), user, 1800000000+i, i)
		if err := os.WriteFile(path, []byte(msg), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFleetAuditShipping runs the shipping recipe with the shipped
// rsyslog files: a commit record longer than rsyslog's default 8 KiB
// message size and a Message-ID with quotes, a backslash, a tab and
// non-ASCII text cross it intact; the collected files equal the trails
// octet for octet, and one `popgate audit verify` passes on both.
func TestFleetAuditShipping(t *testing.T) {
	const manyUser, plainUser = "load710", "load711"
	const many = 2500 // a commit record of 2,500+ message numbers: over 8 KiB
	seedUser(t, manyUser)
	seedUser(t, plainUser)
	fleetAddManyMessages(t, manyUser, many)

	dir := t.TempDir()
	collected := filepath.Join(dir, "fleet")
	trails := map[string]string{"pg-a": filepath.Join(dir, "pg-a.jsonl"), "pg-b": filepath.Join(dir, "pg-b.jsonl")}
	addrs := map[string]string{}
	for _, name := range []string{"pg-a", "pg-b"} {
		addrs[name] = freePort(t)
		opsStart(t, auditConfig(t, addrs[name], trails[name], ""))
	}

	collector := fmt.Sprintf("127.0.0.1:%d", fleetCollectorPort)
	startRsyslog(t, "collect", contribFile(t, "rsyslog-popgate-collect.conf",
		"/var/log/popgate-fleet/", collected+"/",
		`port="6514"`, fmt.Sprintf(`port="%d" address="127.0.0.1"`, fleetCollectorPort),
	), collector)
	ship := contribFile(t, "rsyslog-popgate-ship.conf",
		`workDirectory="/var/spool/rsyslog"`, fmt.Sprintf("workDirectory=%q", t.TempDir()),
		`target="loghost.example.net" port="6514"`, fmt.Sprintf(`target="127.0.0.1" port="%d"`, fleetCollectorPort),
	)
	// One imfile input per instance: the shipped one for pg-a, a copy for
	// pg-b (two instances share this host here; each host ships its own).
	start := strings.Index(ship, `input(type="imfile"`)
	end := start + strings.Index(ship[start:], ")\n") + 2
	input := ship[start:end]
	inputA := strings.NewReplacer(`/var/log/popgate/audit.jsonl`, trails["pg-a"], `popgate-audit-pg1`, "popgate-audit-pg-a").Replace(input)
	inputB := strings.NewReplacer(`/var/log/popgate/audit.jsonl`, trails["pg-b"], `popgate-audit-pg1`, "popgate-audit-pg-b").Replace(input)
	if inputA == input || inputB == input {
		t.Fatalf("the imfile input of contrib/rsyslog-popgate-ship.conf changed shape:\n%s", input)
	}
	startRsyslog(t, "ship", ship[:start]+inputA+inputB+ship[end:])

	// Sessions on both instances: on A, DELE of every message of a big
	// mailbox, pipelined, and QUIT (the long commit record); on B, a few
	// ordinary ones.
	c := opsLogin(t, addrs["pg-a"], manyUser)
	stat := opsCmdOK(t, c, "STAT")
	var total int
	fmt.Sscanf(stat, "+OK %d", &total)
	if total < many {
		t.Fatalf("STAT %q: want at least %d messages", stat, many)
	}
	opsCmdOK(t, c, "RETR "+strconv.Itoa(total-many+1)) // the awkward Message-ID
	if _, _, err := opsHashBody(c); err != nil {
		t.Fatal(err)
	}
	var burst bytes.Buffer
	for i := 1; i <= total; i++ {
		fmt.Fprintf(&burst, "DELE %d\r\n", i)
	}
	if err := c.Write(burst.Bytes()); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= total; i++ {
		if line, err := c.ReadLine(); err != nil || !strings.HasPrefix(line, "+OK") {
			t.Fatalf("DELE %d: %q, %v", i, line, err)
		}
	}
	opsCmdOK(t, c, "QUIT")
	c.Close()
	for range 3 {
		fleetLoginQuit(t, addrs["pg-b"], plainUser)
	}
	auditWaitEnd(t, trails["pg-a"], c.Conn.LocalAddr().String())

	// The collected files catch up with the trails (bounded polling: the
	// files are the only signal), octet for octet.
	deadline := time.Now().Add(30 * time.Second)
	for name, trail := range trails {
		shipped := filepath.Join(collected, "popgate-audit-"+name+".jsonl")
		for {
			want, _ := os.ReadFile(trail)
			got, _ := os.ReadFile(shipped)
			if len(want) > 0 && bytes.Equal(got, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the collected copy (%d octets) never equalled the trail (%d octets); first difference at %d",
					name, len(got), len(want), firstDiff(got, want))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	trailA, _ := os.ReadFile(trails["pg-a"])
	longest := 0
	for _, line := range strings.Split(string(trailA), "\n") {
		longest = max(longest, len(line))
	}
	if longest <= 8<<10 || !strings.Contains(string(trailA), `\"quoted\\back\"\tslash/#percent%-grüße-日本@popgate.test`) {
		t.Errorf("the trail lacks what the test ships across: longest line %d octets (want > 8 KiB), awkward Message-ID present: %v",
			longest, strings.Contains(string(trailA), "grüße"))
	}
	out, err := exec.Command(buildPopgate(t), "audit", "verify",
		filepath.Join(collected, "popgate-audit-pg-a.jsonl"), filepath.Join(collected, "popgate-audit-pg-b.jsonl")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "all 2 audit files verified") {
		t.Errorf("popgate audit verify of the collected copies: %v\n%s", err, out)
	}
	t.Logf("collected and verified; longest record %d octets", longest)
}

// firstDiff returns the offset of the first octet where a and b differ.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
