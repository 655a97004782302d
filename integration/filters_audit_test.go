//go:build integration

package integration

// End-to-end tests of the audit filter: the JSON-lines trail of a real
// session through popgate (with clamav and policy behind it), its hash
// chain checked by `popgate audit verify`, and log rotation on SIGHUP.

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFilterAuditTrail runs sessions through audit (first, chained),
// clamav and policy and checks every event and field filters/audit/doc.go
// lists, that no password reaches the trail, that `popgate audit verify`
// accepts the file and rejects it after a one-byte edit.
func TestFilterAuditTrail(t *testing.T) {
	const user = "load410"
	const infected = 11
	seedUser(t, user)
	msgID := fltAddEICARMessage(t, user, infected)
	password := itPassword(t, "a", user)
	wrong := fmt.Sprintf("flt-wrong-%d", time.Now().UnixNano())

	trail := t.TempDir() + "/audit.jsonl"
	plain, implicit := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`state_dir = "./state"
log {
  level = "debug"
}
listener "pop3" {
  address     = %q
  tls         = "starttls"
  require_tls = false
  backend     = "dovecot"
}
listener "pop3s" {
  address     = %q
  tls         = "implicit"
  server_name = ["localhost"]
  backend     = "dovecot"
}
backend "dovecot" {
  address = %q
}
%s%sfilter "policy" {
  max_message_size = "10MiB"
}
`, plain, implicit, envValue(t, "POP3_ADDR"), fltAudit(trail, true),
		fltClamAV(fltClamdAddr(t, "tcp"), "replace", "reject"))
	p := startPopgate(t, cfg, plain, implicit)

	// Session 1, plaintext: the whole life of a mailbox access.
	c := dialPOP(t, plain)
	client1 := c.Conn.LocalAddr().String()
	if err := c.Login(user, password); err != nil {
		t.Fatal(err)
	}
	if n, _ := stat(t, c); n != infected {
		t.Fatalf("%s has %d messages, want %d (10 seeded and the EICAR one)", user, n, infected)
	}
	if _, err := c.Multi("LIST"); err != nil {
		t.Fatal(err)
	}
	uidl, err := c.Multi("UIDL")
	if err != nil {
		t.Fatal(err)
	}
	uids := fltUIDs(t, uidl)
	body1, err := c.Multi("RETR 1")
	if err != nil {
		t.Fatal(err)
	}
	notice, err := c.Multi(fmt.Sprintf("RETR %d", infected))
	if err != nil || !bytes.Contains(notice, []byte("Message-ID: "+msgID)) || bytes.Contains(notice, []byte(eicar())) {
		t.Fatalf("RETR %d: %v; want a notice in place of the EICAR message:\n%s", infected, err, notice)
	}
	top, err := c.Multi("TOP 2 5")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"DELE 3", "RSET", "DELE 4", "QUIT"} {
		if _, err := c.Cmd(cmd); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
	}
	s1 := fltSessionEnd(t, trail, client1)

	// Session 2, implicit TLS: a failed login, then a good one.
	tc := dialPOPS(t, implicit, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	client2 := tc.Conn.LocalAddr().String()
	if err := tc.Login(user, wrong); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	if err := tc.Login(user, password); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Cmd("QUIT"); err != nil {
		t.Fatal(err)
	}
	s2 := fltSessionEnd(t, trail, client2)

	// Session 3: STLS on the plaintext listener.
	sc := dialPOP(t, plain)
	client3 := sc.Conn.LocalAddr().String()
	if err := sc.StartTLS(&tls.Config{ServerName: "localhost", InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}); err != nil {
		t.Fatal(err)
	}
	if err := sc.Login(user, password); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Cmd("QUIT"); err != nil {
		t.Fatal(err)
	}
	s3 := fltSessionEnd(t, trail, client3)

	fltCheckCommon(t, s1, client1, "pop3")
	fltCheckCommon(t, s2, client2, "pop3s")
	fltCheckCommon(t, s3, client3, "pop3")
	if s1[0].str("session") == s2[0].str("session") || s2[0].str("session") == s3[0].str("session") {
		t.Errorf("sessions share an id: %s, %s, %s", s1[0].str("session"), s2[0].str("session"), s3[0].str("session"))
	}

	t.Run("session1", func(t *testing.T) {
		start := fltOne(t, s1, "session_start", nil, "session 1")
		if start.str("local") != plain || start.str("tls_version") != "" || start.str("sni") != "" {
			t.Errorf("session_start %v: want local %s and no TLS", start, plain)
		}
		auth := fltOne(t, s1, "auth", nil, "session 1")
		if auth.str("client_user") != user || auth.str("backend_user") != user || auth.str("mechanism") != "user" ||
			auth.str("backend") != "dovecot" || auth.str("result") != "ok" {
			t.Errorf("auth %v: want %s -> %s, mechanism user, backend dovecot, ok", auth, user, user)
		}
		// Commands: in order, one record each, arguments redacted.
		want := []struct{ verb, args string }{
			{"USER", user}, {"PASS", "***"}, {"STAT", ""}, {"LIST", ""}, {"UIDL", ""},
			{"RETR", "1"}, {"RETR", strconv.Itoa(infected)}, {"TOP", "2 5"},
			{"DELE", "3"}, {"RSET", ""}, {"DELE", "4"}, {"QUIT", ""},
		}
		cmds := fltFind(s1, "command", nil)
		slices.SortFunc(cmds, func(a, b fltRecord) int { return int(a.num("seq") - b.num("seq")) })
		if len(cmds) != len(want) {
			t.Fatalf("%d command records, want %d: %v", len(cmds), len(want), cmds)
		}
		for i, w := range want {
			r := cmds[i]
			if r.num("seq") != float64(i+1) || r.str("verb") != w.verb || r.str("args") != w.args ||
				r.str("status") != "+OK" || r[`complete`] != true {
				t.Errorf("command %d = %v; want seq %d %s %q +OK complete", i+1, r, i+1, w.verb, w.args)
			}
		}
		if n := cmds[5].num("bytes"); n != float64(len(body1)) {
			t.Errorf("RETR 1 command bytes = %v, want %d", n, len(body1))
		}
		// Retrievals.
		for _, w := range []struct {
			verb  string
			msg   int
			size  int
			msgID string
		}{
			{"RETR", 1, len(body1), "<load-1@popgate.test>"},
			{"RETR", infected, len(notice), msgID},
			{"TOP", 2, len(top), "<load-2@popgate.test>"},
		} {
			r := fltOne(t, s1, "retrieve", func(r fltRecord) bool { return r.num("msg") == float64(w.msg) }, fmt.Sprintf("message %d", w.msg))
			if r.str("verb") != w.verb || r.str("uidl") != uids[w.msg] || r.num("size") != float64(w.size) ||
				r.str("message_id") != w.msgID || r["complete"] != true {
				t.Errorf("retrieve %v; want %s msg %d uidl %s size %d message_id %s complete", r, w.verb, w.msg, uids[w.msg], w.size, w.msgID)
			}
			if lines, ok := r["lines"]; (w.verb == "TOP") != ok || (ok && lines != float64(5)) {
				t.Errorf("retrieve %v: lines %v, want 5 for TOP only", r, lines)
			}
		}
		// Scans: one per retrieval, with the verdict.
		for _, w := range []struct {
			verb, verdict string
			msg           int
		}{{"RETR", "clean", 1}, {"RETR", "infected", infected}, {"TOP", "clean", 2}} {
			r := fltOne(t, s1, "scan", func(r fltRecord) bool { return r.num("msg") == float64(w.msg) }, fmt.Sprintf("message %d", w.msg))
			if r.str("verb") != w.verb || r.str("verdict") != w.verdict || r.num("bytes") <= 0 || r.str("error") != "" {
				t.Errorf("scan %v; want %s msg %d verdict %s", r, w.verb, w.msg, w.verdict)
			}
			if infectedName := fltEICARName.MatchString(r.str("virus")); infectedName != (w.verdict == "infected") {
				t.Errorf("scan %v: virus name %q", r, r.str("virus"))
			}
		}
		// Deletions: both marks recorded, only the one after RSET committed.
		dels := fltFind(s1, "delete", nil)
		if len(dels) != 2 || dels[0].num("msg") != 3 || dels[0].str("uidl") != uids[3] ||
			dels[1].num("msg") != 4 || dels[1].str("uidl") != uids[4] {
			t.Errorf("delete records %v; want msg 3 (%s) then msg 4 (%s)", dels, uids[3], uids[4])
		}
		commit := fltOne(t, s1, "commit", nil, "session 1")
		if commit.num("count") != 1 || fmt.Sprint(commit["msgs"]) != "[4]" {
			t.Errorf("commit %v; want count 1, msgs [4]", commit)
		}
		end := fltOne(t, s1, "session_end", nil, "session 1")
		if end.str("reason") != "quit" || end.num("deletes_marked") != 1 || end["deletes_committed"] != true ||
			end.num("duration_ms") < 0 || end.num("bytes_in") < 60 ||
			end.num("bytes_out") < float64(len(body1)+len(notice)+len(top)) {
			t.Errorf("session_end %v; want reason quit, 1 deletion committed, plausible duration and byte counts", end)
		}
		if s1[len(s1)-1].str("event") != "session_end" || s1[0].str("event") != "session_start" {
			t.Errorf("session 1 does not start with session_start and end with session_end")
		}
	})

	t.Run("session2-tls", func(t *testing.T) {
		start := fltOne(t, s2, "session_start", nil, "session 2")
		if !strings.HasPrefix(start.str("tls_version"), "TLS 1.") || start.str("tls_cipher") == "" || start.str("sni") != "localhost" {
			t.Errorf("session_start over TLS %v: want tls_version, tls_cipher and sni localhost", start)
		}
		auths := fltFind(s2, "auth", nil)
		if len(auths) != 2 || auths[0].str("result") != "fail" || auths[1].str("result") != "ok" ||
			auths[0].str("client_user") != user {
			t.Errorf("auth records %v; want a failure for %s, then success", auths, user)
		}
	})

	t.Run("session3-stls", func(t *testing.T) {
		start := fltOne(t, s3, "session_start", nil, "session 3")
		if start.str("tls_version") != "" {
			t.Errorf("session_start before STLS %v: want no TLS yet", start)
		}
		rec := fltOne(t, s3, "tls", nil, "session 3")
		if !strings.HasPrefix(rec.str("tls_version"), "TLS 1.") || rec.str("tls_cipher") == "" {
			t.Errorf("tls record %v: want version and cipher", rec)
		}
	})

	t.Run("mailbox", func(t *testing.T) {
		d := loginA(t, user)
		after, err := d.Multi("UIDL")
		if err != nil {
			t.Fatal(err)
		}
		left := fltUIDs(t, after)
		kept := map[string]bool{}
		for _, u := range left {
			kept[u] = true
		}
		if len(left) != infected-1 || kept[uids[4]] || !kept[uids[3]] {
			t.Errorf("after the session %s has %v; want message 4 (%s) deleted and 3 (%s) kept", user, left, uids[4], uids[3])
		}
	})

	t.Run("no-secrets", func(t *testing.T) {
		data, err := os.ReadFile(trail)
		if err != nil {
			t.Fatal(err)
		}
		for _, pw := range []string{password, wrong} {
			if bytes.Contains(data, []byte(pw)) {
				t.Errorf("the audit trail contains the password %q", pw)
			}
			if strings.Contains(p.Logs(), pw) {
				t.Errorf("popgate's log contains the password %q", pw)
			}
		}
	})

	t.Run("verify", func(t *testing.T) {
		_, lines := fltRecords(t, trail)
		for i, l := range lines {
			if !fltHashTail.MatchString(l) {
				t.Errorf("line %d does not end in prev_hash and hash: %s", i+1, l)
			}
		}
		if code, out := fltVerify(t, trail); code != 0 || !strings.Contains(out, "OK") {
			t.Fatalf("audit verify of the trail: exit %d, %q; want 0 and OK", code, out)
		}
		data, err := os.ReadFile(trail)
		if err != nil {
			t.Fatal(err)
		}
		// Flip one character inside a string value: the client_user of
		// the auth record.
		field := []byte(`"client_user":"` + user + `"`)
		i := bytes.Index(data, field)
		if i < 0 {
			t.Fatalf("no %s in the trail", field)
		}
		edited := bytes.Clone(data)
		edited[i+len(field)-2]++ // load410 -> load411
		bad := t.TempDir() + "/edited.jsonl"
		if err := os.WriteFile(bad, edited, 0o600); err != nil {
			t.Fatal(err)
		}
		if code, out := fltVerify(t, bad); code != 1 {
			t.Errorf("audit verify after a one-byte edit: exit %d, %q; want 1", code, out)
		}
	})
}

// TestFilterAuditRotate renames the audit file as logrotate does and sends
// SIGHUP: the next session's records go to a new file at the configured
// path whose chain continues the old file's, and both files verify.
func TestFilterAuditRotate(t *testing.T) {
	const user = "load411"
	seedUser(t, user)
	for _, withTLS := range []bool{false, true} {
		name := "plaintext-only"
		if withTLS {
			name = "with-tls-listener"
		}
		t.Run(name, func(t *testing.T) {
			trail := t.TempDir() + "/audit.jsonl"
			addr := freePort(t)
			extra := ""
			if withTLS {
				extra = fmt.Sprintf("listener \"pop3s\" {\n  address = %q\n  tls     = \"implicit\"\n  backend = \"dovecot\"\n}\n", freePort(t))
			}
			cfg := fmt.Sprintf(`state_dir = "./state"
listener "pop3" {
  address = %q
  tls     = "none"
  backend = "dovecot"
}
%sbackend "dovecot" {
  address = %q
}
%s`, addr, extra, envValue(t, "POP3_ADDR"), fltAudit(trail, true))
			p := startPopgate(t, cfg, addr)
			session := func() string {
				c := fltLogin(t, addr, user)
				client := c.Conn.LocalAddr().String()
				if _, err := c.Cmd("QUIT"); err != nil {
					t.Fatal(err)
				}
				return client
			}
			first := session()
			fltSessionEnd(t, trail, first)
			rotated := trail + ".1"
			if err := os.Rename(trail, rotated); err != nil {
				t.Fatal(err)
			}
			if err := p.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			p.WaitLog(t, "configuration reloaded", 10*time.Second)
			second := session()
			// Wait for the second session's end in either file, then
			// look at where it went.
			deadline := time.Now().Add(15 * time.Second)
			for {
				inNew, _, _ := fltTryRecords(trail)
				inOld, _, _ := fltTryRecords(rotated)
				if len(fltFind(append(inNew, inOld...), "session_end", func(r fltRecord) bool { return r.str("client") == second })) > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no session_end for the session after SIGHUP in %s or %s", trail, rotated)
				}
				time.Sleep(20 * time.Millisecond)
			}
			oldRecs, oldLines := fltRecords(t, rotated)
			if n := len(fltFind(oldRecs, "session_start", func(r fltRecord) bool { return r.str("client") == second })); n != 0 {
				t.Fatalf("after rename and SIGHUP the new session was written to the renamed file %s, not to a new %s", rotated, trail)
			}
			newRecs, _ := fltRecords(t, trail)
			if len(newRecs) == 0 || newRecs[0].str("event") != "session_start" || newRecs[0].str("client") != second {
				t.Fatalf("the new audit file starts with %v; want the second session's session_start", newRecs)
			}
			lastHash := fltHashTail.FindStringSubmatch(oldLines[len(oldLines)-1])
			if lastHash == nil || newRecs[0].str("prev_hash") != lastHash[2] {
				t.Errorf("new file's first prev_hash %q does not continue the old chain (%v)", newRecs[0].str("prev_hash"), lastHash)
			}
			for _, f := range []string{rotated, trail} {
				if code, out := fltVerify(t, f); code != 0 {
					t.Errorf("audit verify %s: exit %d, %s", f, code, out)
				}
			}
		})
	}
}
