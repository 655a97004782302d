//go:build integration

package integration

// The audit trail across reloads, restarts and damage: a session keeps
// writing the trail it started with after SIGHUP moves the audit path; a
// refused reload leaves auditing as it was; two audit blocks on one file
// are refused by validate, and a second popgate on the same file fails at
// start; a torn tail is named by a chain_break record at the next start,
// and `popgate audit verify` tells that from an edit.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// auditConfig is a listener at addr in front of Dovecot A with one chained
// audit filter writing trail, and extra appended.
func auditConfig(t *testing.T, addr, trail, extra string) string {
	return fmt.Sprintf("listener \"pop3\" {\n  address = %q\n  backend = \"main\"\n}\n", addr) +
		opsBackendA(t) + fltAudit(trail, true) + extra
}

// auditLines reads the trail and decodes the lines that are JSON objects,
// skipping any that are not (a torn fragment left in the file).
func auditLines(t *testing.T, path string) []fltRecord {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var recs []fltRecord
	for _, line := range strings.SplitAfter(string(data), "\n") {
		var r fltRecord
		if strings.HasSuffix(line, "\n") && json.Unmarshal([]byte(line), &r) == nil {
			recs = append(recs, r)
		}
	}
	return recs
}

// auditWaitEnd waits until the trail holds the session_end record of the
// session from client, and returns that session's records.
func auditWaitEnd(t *testing.T, path, client string) []fltRecord {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		recs := auditLines(t, path)
		if ends := fltFind(recs, "session_end", func(r fltRecord) bool { return r.str("client") == client }); len(ends) > 0 {
			var out []fltRecord
			for _, r := range recs {
				if r.str("session") == ends[0].str("session") {
					out = append(out, r)
				}
			}
			return out
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(path)
			t.Fatalf("no session_end for %s in %s within 15 s; it holds:\n%s", client, path, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// auditSession logs user in through addr, sends QUIT and returns the
// client address the trail names the session by.
func auditSession(t *testing.T, addr, user string) string {
	t.Helper()
	c := fltLogin(t, addr, user)
	client := c.Conn.LocalAddr().String()
	opsCmdOK(t, c, "QUIT")
	return client
}

// TestAuditReloadOldSessionKeepsItsTrail: a reload moves the audit path
// while a session is open. The session's later records (retrieve, delete,
// commit, session_end) still go to the old file, whose filter closes only
// when the session has ended; new sessions write the new file.
func TestAuditReloadOldSessionKeepsItsTrail(t *testing.T) {
	const user = "load480"
	seedUser(t, user)
	dir := t.TempDir()
	oldTrail, newTrail := filepath.Join(dir, "old.jsonl"), filepath.Join(dir, "new.jsonl")
	addr := freePort(t)
	p := startPopgate(t, auditConfig(t, addr, oldTrail, ""), addr)

	c := fltLogin(t, addr, user)
	client := c.Conn.LocalAddr().String()
	if _, err := c.Multi("RETR 1"); err != nil {
		t.Fatal(err)
	}
	opsWriteConfig(t, p, auditConfig(t, addr, newTrail, ""))
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, "configuration reloaded", 10*time.Second)

	if _, err := c.Multi("RETR 2"); err != nil {
		t.Fatal(err)
	}
	opsCmdOK(t, c, "DELE 1")
	opsCmdOK(t, c, "QUIT")
	recs := auditWaitEnd(t, oldTrail, client)
	fltOne(t, recs, "retrieve", func(r fltRecord) bool { return r.num("msg") == 2 }, "RETR 2 after the reload")
	fltOne(t, recs, "delete", func(r fltRecord) bool { return r.num("msg") == 1 }, "DELE 1 after the reload")
	fltOne(t, recs, "commit", nil, "QUIT after the reload")
	for _, r := range auditLines(t, newTrail) {
		if r.str("client") == client {
			t.Errorf("the old session wrote to the new trail: %v", r)
		}
	}

	// A session started after the reload writes the new trail.
	second := auditSession(t, addr, user)
	auditWaitEnd(t, newTrail, second)
	for _, f := range []string{oldTrail, newTrail} {
		if code, out := fltVerify(t, f); code != 0 {
			t.Errorf("audit verify %s: exit %d\n%s", f, code, out)
		}
	}
	if strings.Contains(p.Logs(), "record lost") {
		t.Errorf("popgate lost audit records:\n%s", p.Logs())
	}
}

// TestAuditRefusedReloadKeepsAuditing: a reload that changes the audit
// block but is refused (a new listener on a port already in use) changes
// nothing: new sessions are still audited in the running trail.
func TestAuditRefusedReloadKeepsAuditing(t *testing.T) {
	const user = "load481"
	seedUser(t, user)
	dir := t.TempDir()
	trail, other := filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "other.jsonl")
	addr := freePort(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	p := startPopgate(t, auditConfig(t, addr, trail, ""), addr)
	auditWaitEnd(t, trail, auditSession(t, addr, user))

	opsWriteConfig(t, p, auditConfig(t, addr, other,
		fmt.Sprintf("listener \"busy\" {\n  address = %q\n  backend = \"main\"\n}\n", busy.Addr())))
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, "reload refused", 10*time.Second)

	client := auditSession(t, addr, user)
	auditWaitEnd(t, trail, client)
	if recs := auditLines(t, other); len(recs) != 0 {
		t.Errorf("the refused configuration's trail has records: %v", recs)
	}
	if code, out := fltVerify(t, trail); code != 0 {
		t.Errorf("audit verify: exit %d\n%s", code, out)
	}
}

// TestAuditValidateRefusesSharedPath: two audit blocks on one file would
// interleave two chains; validate refuses the second, at its path.
func TestAuditValidateRefusesSharedPath(t *testing.T) {
	dir := t.TempDir()
	trail := filepath.Join(dir, "audit.jsonl")
	cfg := filepath.Join(dir, "popgate.hcl")
	src := auditConfig(t, freePort(t), trail, fmt.Sprintf("filter \"audit\" {\n  name = \"second\"\n  path = %q\n}\n", trail))
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	line := strings.Count(src[:strings.LastIndex(src, "path")], "\n") + 1
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, buildPopgate(t), "validate", "-config", cfg).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("validate with two audit blocks on one path: %v, want exit 1\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("Duplicate audit path")) || !bytes.Contains(out, []byte(fmt.Sprintf("popgate.hcl line %d", line))) {
		t.Errorf("validate does not point at the second path (line %d):\n%s", line, out)
	}
}

// TestAuditSecondProcessFailsAtStart: the trail is locked while popgate
// runs; a second popgate on the same file exits at start, saying so, and
// the first keeps auditing.
func TestAuditSecondProcessFailsAtStart(t *testing.T) {
	const user = "load482"
	seedUser(t, user)
	trail := filepath.Join(t.TempDir(), "audit.jsonl")
	addr, addr2 := freePort(t), freePort(t)
	startPopgate(t, auditConfig(t, addr, trail, ""), addr)
	second, err := tryStartPopgate(t, auditConfig(t, addr2, trail, ""), addr2)
	if err == nil {
		t.Fatal("a second popgate on the same audit file started")
	}
	if exit := second.WaitExit(t, 10*time.Second); exit == nil {
		t.Errorf("the second popgate exited 0")
	}
	if !strings.Contains(second.Logs(), "locked by another process") {
		t.Errorf("the second popgate does not say the file is locked:\n%s", second.Logs())
	}
	auditWaitEnd(t, trail, auditSession(t, addr, user))
	if code, out := fltVerify(t, trail); code != 0 {
		t.Errorf("audit verify: exit %d\n%s", code, out)
	}
}

// TestAuditTornTailRecordedAtStart: popgate stops, and the trail ends in a
// partial line (as after a crash mid-write). Until popgate runs again,
// verify fails; the next start names the fragment in a chain_break record
// and verify passes, printing both segments. A record edited by hand in
// the middle fails.
func TestAuditTornTailRecordedAtStart(t *testing.T) {
	const user = "load483"
	seedUser(t, user)
	trail := filepath.Join(t.TempDir(), "audit.jsonl")
	addr := freePort(t)
	p := startPopgate(t, auditConfig(t, addr, trail, ""), addr)
	auditWaitEnd(t, trail, auditSession(t, addr, user))
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitExit(t, 10*time.Second); err != nil {
		t.Fatalf("popgate exit: %v", err)
	}
	good, err := os.ReadFile(trail)
	if err != nil {
		t.Fatal(err)
	}
	const fragment = `{"time":"2026-01-01T00:00:00Z","event":"sess`
	if err := os.WriteFile(trail, append(bytes.Clone(good), fragment...), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := fltVerify(t, trail); code != 1 {
		t.Errorf("verify of a torn tail popgate has not seen: exit %d, want 1\n%s", code, out)
	}

	addr2 := freePort(t)
	startPopgate(t, auditConfig(t, addr2, trail, ""), addr2)
	auditWaitEnd(t, trail, auditSession(t, addr2, user))
	breaks := fltFind(auditLines(t, trail), "chain_break", nil)
	if len(breaks) != 1 || breaks[0].num("skipped_offset") != float64(len(good)) ||
		breaks[0].num("skipped_bytes") != float64(len(fragment)+1) || breaks[0].str("reason") != "torn tail" {
		t.Fatalf("chain_break records %v; want one naming the %d octets at offset %d", breaks, len(fragment)+1, len(good))
	}
	code, out := fltVerify(t, trail)
	if code != 0 || !strings.Contains(out, "segment 2:") || !strings.Contains(out, "recorded by popgate: torn tail") {
		t.Fatalf("verify after the recorded break: exit %d, want 0 with two segments and the break\n%s", code, out)
	}
	t.Logf("audit verify:\n%s", out)

	data, err := os.ReadFile(trail)
	if err != nil {
		t.Fatal(err)
	}
	// The first session's end, a record in the middle of the first
	// segment.
	edited := bytes.Replace(data, []byte(`"reason":"quit"`), []byte(`"reason":"QUIT"`), 1)
	bad := filepath.Join(t.TempDir(), "edited.jsonl")
	if err := os.WriteFile(bad, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := fltVerify(t, bad); code != 1 || !strings.Contains(out, "NOT recorded by popgate") {
		t.Errorf("verify after a hand edit of a middle record: exit %d, want 1 naming an unrecorded break\n%s", code, out)
	}
}
