//go:build integration

package integration

// `popgate audit search` on a trail that real sessions through popgate
// wrote, Dovecot behind it: by user (the session's retrieves and deletes
// found through its auth record), address prefix, event, time range and
// message (UIDL and Message-ID), as a table and as JSON lines; and a copy
// with one edited record, whose record and what follows it come out
// marked broken.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// srchHit is a JSON line of audit search: the record and the marks.
type srchHit map[string]any

func (h srchHit) str(k string) string { s, _ := h[k].(string); return s }

// srchRun runs `popgate audit search args...` and returns its exit
// code, stdout and stderr.
func srchRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildPopgate(t), append([]string{"audit", "search"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("popgate audit search %q: %v\n%s", args, err, errb.String())
	return -1, "", ""
}

// srchJSON runs audit search with --json and decodes its lines.
func srchJSON(t *testing.T, args ...string) []srchHit {
	t.Helper()
	code, out, stderr := srchRun(t, append([]string{"--json"}, args...)...)
	if code != 0 {
		t.Fatalf("audit search --json %q: exit %d\n%s", args, code, stderr)
	}
	var hits []srchHit
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var h srchHit
		if err := json.Unmarshal([]byte(line), &h); err != nil {
			t.Fatalf("audit search --json %q: line %q: %v", args, line, err)
		}
		hits = append(hits, h)
	}
	return hits
}

// srchEvents lists the events of hits, in order.
func srchEvents(hits []srchHit) string {
	var e []string
	for _, h := range hits {
		e = append(e, h.str("event"))
	}
	return strings.Join(e, ",")
}

// srchDialFrom logs user in through addr from the loopback address local.
func srchDialFrom(t *testing.T, local, addr, user string) *popClient {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, local, err)
	}
	c := newPopClient(conn)
	t.Cleanup(func() { c.Close() })
	if c.Greeting, err = c.ReadLine(); err != nil || !strings.HasPrefix(c.Greeting, "+OK") {
		t.Fatalf("greeting %q, %v", c.Greeting, err)
	}
	if err := c.Login(user, itPassword(t, "a", user)); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

func TestOpsAuditSearch(t *testing.T) {
	const alice, bob = "load520", "load521"
	seedUser(t, alice)
	seedUser(t, bob)
	dir := t.TempDir()
	trail := filepath.Join(dir, "audit.jsonl")
	addr := freePort(t)
	startPopgate(t, auditConfig(t, addr, trail, ""), addr)

	// alice, from 127.0.0.2: reads message 1 and deletes it. bob, from
	// 127.0.0.3: reads message 1, deletes message 2. Interleaved.
	a := srchDialFrom(t, "127.0.0.2", addr, alice)
	b := srchDialFrom(t, "127.0.0.3", addr, bob)
	for _, step := range []struct {
		c   *popClient
		cmd string
	}{{a, "RETR 1"}, {b, "RETR 1"}, {a, "DELE 1"}, {b, "DELE 2"}} {
		if strings.HasPrefix(step.cmd, "RETR") {
			if _, err := step.c.Multi(step.cmd); err != nil {
				t.Fatal(err)
			}
		} else {
			opsCmdOK(t, step.c, step.cmd)
		}
	}
	aClient, bClient := a.Conn.LocalAddr().String(), b.Conn.LocalAddr().String()
	opsCmdOK(t, a, "QUIT")
	opsCmdOK(t, b, "QUIT")
	aRecs := auditWaitEnd(t, trail, aClient)
	auditWaitEnd(t, trail, bClient)
	aRetr := fltOne(t, aRecs, "retrieve", nil, "alice's RETR 1")
	aSession := aRetr.str("session")

	// Who read alice's mailbox, from where, and what did they delete:
	// the user matches case-insensitively, and the retrieve and delete
	// records, which carry no user, are found through the session.
	hits := srchJSON(t, "--user", strings.ToUpper(alice), "--event", "retrieve,delete", "--since", "1h", trail)
	if srchEvents(hits) != "retrieve,delete" {
		t.Fatalf("--user %s --event retrieve,delete: %s, want retrieve,delete", alice, srchEvents(hits))
	}
	for _, h := range hits {
		if h.str("session") != aSession || h.str("client") != aClient || h.str("chain") != "ok" ||
			h.str("file") != trail || h["line"] == nil || h["msg"] != 1.0 || h.str("hash") == "" {
			t.Errorf("hit %v: want alice's session %s from %s, msg 1, chain ok, file and line, the record's hash", h, aSession, aClient)
		}
	}
	// Every record of her session, session_start first (held until the
	// auth record named her), and none of bob's.
	hits = srchJSON(t, "--user", alice, trail)
	if len(hits) != len(aRecs) || hits[0].str("event") != "session_start" {
		t.Errorf("--user %s: %d records (%s), want the session's %d", alice, len(hits), srchEvents(hits), len(aRecs))
	}
	for _, h := range hits {
		if h.str("session") != aSession {
			t.Errorf("--user %s found a record of another session: %v", alice, h)
		}
	}

	// The table, as the README shows it.
	code, out, stderr := srchRun(t, "--user", alice, "--event", "auth,retrieve,delete", "--since", "7d", trail)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "TIME") {
		t.Fatalf("table: exit %d, want a header and 3 rows:\n%s\n%s", code, out, stderr)
	}
	for i, ev := range []string{"auth", "retrieve", "delete"} {
		f := strings.Fields(lines[i+1])
		if len(f) < 7 || f[1] != ev || f[2] != alice || f[3] != aClient || f[4] != aSession || f[5] != "ok" {
			t.Errorf("row %d: %q, want %s of %s from %s, chain ok", i+1, lines[i+1], ev, alice, aClient)
		}
	}
	if !strings.Contains(lines[3], "uidl="+aRetr.str("uidl")) {
		t.Errorf("the delete row does not name the uidl %s: %s", aRetr.str("uidl"), lines[3])
	}
	if !strings.Contains(stderr, "3 records matched") {
		t.Errorf("stderr: %s", stderr)
	}

	// Address: a single address and a prefix.
	if hits := srchJSON(t, "--addr", "127.0.0.3", "--event", "auth", trail); len(hits) != 1 || hits[0].str("client_user") != bob {
		t.Errorf("--addr 127.0.0.3: %v, want bob's auth", hits)
	}
	if hits := srchJSON(t, "--addr", "127.0.0.2/31", "--event", "session_start", trail); len(hits) != 2 {
		t.Errorf("--addr 127.0.0.2/31: %d session starts, want 2", len(hits))
	}
	// (The harness's readiness probe came from 127.0.0.1.)
	if hits := srchJSON(t, "--addr", "127.0.0.0/8", "--event", "session_start", trail); len(hits) != 3 {
		t.Errorf("--addr 127.0.0.0/8: %d session starts, want 3", len(hits))
	}
	if hits := srchJSON(t, "--addr", "192.0.2.0/24", trail); len(hits) != 0 {
		t.Errorf("--addr 192.0.2.0/24: %v, want nothing", hits)
	}

	// Time: --until is exclusive, --since inclusive, at alice's first
	// record; bob dialled after her.
	aStart := aRecs[0].str("time")
	if hits := srchJSON(t, "--addr", "127.0.0.2/31", "--until", aStart, trail); len(hits) != 0 {
		t.Errorf("--until %s: %s, want nothing", aStart, srchEvents(hits))
	}
	if hits := srchJSON(t, "--addr", "127.0.0.2/31", "--since", aStart, "--event", "session_start,auth", trail); len(hits) != 4 {
		t.Errorf("--since %s: %s, want both sessions' start and auth", aStart, srchEvents(hits))
	}
	if hits := srchJSON(t, "--since", time.Now().Add(time.Minute).UTC().Format(time.RFC3339), trail); len(hits) != 0 {
		t.Errorf("--since the future: %s", srchEvents(hits))
	}

	// Message: both mailboxes were seeded with the same messages, so
	// the UIDL of message 1 finds both retrieves and alice's delete (bob
	// deleted message 2), the Message-ID both retrieves, and with --user
	// only alice's.
	sessions := func(hits []srchHit) string {
		var s []string
		for _, h := range hits {
			s = append(s, h.str("event")+"@"+h.str("client"))
		}
		return strings.Join(s, ",")
	}
	uidl, mid := aRetr.str("uidl"), aRetr.str("message_id")
	want := "retrieve@" + aClient + ",retrieve@" + bClient + ",delete@" + aClient
	if hits := srchJSON(t, "--msg", uidl, trail); sessions(hits) != want {
		t.Errorf("--msg %s: %s, want %s", uidl, sessions(hits), want)
	}
	if mid == "" {
		t.Errorf("alice's retrieve has no message_id: %v", aRetr)
	}
	want = "retrieve@" + aClient + ",retrieve@" + bClient
	if hits := srchJSON(t, "--msg", mid, trail); sessions(hits) != want {
		t.Errorf("--msg %s: %s, want %s", mid, sessions(hits), want)
	}
	if hits := srchJSON(t, "--msg", mid, "--user", alice, trail); sessions(hits) != "retrieve@"+aClient {
		t.Errorf("--msg %s --user %s: %s", mid, alice, sessions(hits))
	}

	// A copy with alice's retrieve edited: it and every record after it
	// are broken, the records before it still ok; stderr says where.
	data, err := os.ReadFile(trail)
	if err != nil {
		t.Fatal(err)
	}
	var edited []byte
	var editedLine int
	for i, line := range bytes.SplitAfter(data, []byte("\n")) {
		if bytes.Contains(line, []byte(`"event":"retrieve","session":"`+aSession+`"`)) {
			line = bytes.Replace(line, []byte(`"size":`), []byte(`"size":1`), 1)
			editedLine = i + 1
		}
		edited = append(edited, line...)
	}
	corrupt := filepath.Join(dir, "edited.jsonl")
	if err := os.WriteFile(corrupt, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = srchRun(t, "--json", "--user", alice, corrupt)
	if code != 0 || !strings.Contains(stderr, "chain broken at line") {
		t.Errorf("edited copy: exit %d, stderr %s", code, stderr)
	}
	var marks []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var h srchHit
		if err := json.Unmarshal([]byte(line), &h); err != nil {
			t.Fatal(err)
		}
		want := "ok"
		if h["line"].(float64) >= float64(editedLine) {
			want = "broken"
		}
		if h.str("chain") != want {
			t.Errorf("edited copy, line %v (%s): chain %s, want %s", h["line"], h.str("event"), h.str("chain"), want)
		}
		marks = append(marks, h.str("event")+":"+h.str("chain"))
	}
	if !strings.Contains(strings.Join(marks, " "), "auth:ok") || !strings.Contains(strings.Join(marks, " "), "retrieve:broken") {
		t.Errorf("edited copy: %v, want alice's auth ok and her retrieve broken", marks)
	}
	if code, _ := fltVerify(t, corrupt); code == 0 {
		t.Errorf("audit verify accepts the edited copy")
	}

	// Usage errors.
	for _, args := range [][]string{{"--since", "yesterday", trail}, {"--addr", "not-an-ip", trail}} {
		if code, _, _ := srchRun(t, args...); code != 2 {
			t.Errorf("audit search %q: exit %d, want 2", args, code)
		}
	}
}
