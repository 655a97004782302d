//go:build integration

package integration

// The admin interface through its CLI, against a running popgate with
// real sessions to Dovecot A: `popgate sessions` lists and filters them,
// `popgate kick` closes one mid-RETR without QUIT (so Dovecot deletes
// nothing it had marked), `--block` refuses the user's new logins until
// the block expires, every action lands in the audit trail, and the TCP
// admin address refuses a request without the right token.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// adminToken is the TCP admin token of these tests.
const adminToken = "ops-admin-token-0123456789abcdef"

// adminSession is one line of `popgate sessions --json`.
type adminSession struct {
	ID          string `json:"id"`
	Listener    string `json:"listener"`
	Client      string `json:"client"`
	TLS         string `json:"tls"`
	State       string `json:"state"`
	User        string `json:"user"`
	BackendUser string `json:"backend_user"`
	Backend     string `json:"backend"`
	BackendAddr string `json:"backend_addr"`
	AgeNS       int64  `json:"age_ns"`
	IdleNS      int64  `json:"idle_ns"`
	BytesIn     int64  `json:"bytes_in"`
	BytesOut    int64  `json:"bytes_out"`
	Command     string `json:"command"`
}

// adminStart starts popgate with a listener in front of Dovecot A, a
// chained audit trail, and the admin interface on its default socket
// (state_dir/admin.sock) and on a TCP address with adminToken. It returns
// popgate, the listener's address, the trail and the admin address.
func adminStart(t *testing.T) (p *Popgate, addr, trail, adminAddr string) {
	t.Helper()
	addr, adminAddr = freePort(t), freePort(t)
	trail = filepath.Join(t.TempDir(), "audit.jsonl")
	cfg := "state_dir = \"./state\"\n" + auditConfig(t, addr, trail,
		fmt.Sprintf("admin {\n  address = %q\n  token = %q\n}\n", adminAddr, adminToken))
	p = opsStart(t, cfg)
	if _, err := os.Stat(filepath.Join(p.Dir, "state", "admin.sock")); err != nil {
		t.Fatalf("no admin socket at state_dir/admin.sock: %v", err)
	}
	if strings.Contains(p.Logs(), adminToken) {
		t.Fatal("popgate logged the admin token")
	}
	return p, addr, trail, adminAddr
}

// adminCLI runs `popgate ARGS -config FILE` in popgate's directory, as an
// operator's shell would (without systemd's RUNTIME_DIRECTORY), and
// returns its output and exit status.
func adminCLI(t *testing.T, p *Popgate, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	cmd := exec.Command(buildPopgate(t), append(args[:1:1], append([]string{"-config", p.ConfigPath}, args[1:]...)...)...)
	cmd.Dir = p.Dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RUNTIME_DIRECTORY=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		status = ee.ExitCode()
	case err != nil:
		t.Fatalf("popgate %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), status
}

// adminSessions runs `popgate sessions --json` with filters and decodes
// its lines.
func adminSessions(t *testing.T, p *Popgate, filters ...string) []adminSession {
	t.Helper()
	out, errOut, status := adminCLI(t, p, append([]string{"sessions", "--json"}, filters...)...)
	if status != 0 {
		t.Fatalf("popgate sessions %v: status %d: %s", filters, status, errOut)
	}
	var list []adminSession
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var s adminSession
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("sessions --json line %q: %v", sc.Text(), err)
		}
		list = append(list, s)
	}
	return list
}

// adminUsers returns the users of list, in order.
func adminUsers(list []adminSession) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.User)
	}
	return out
}

// adminRecords returns the trail's admin records.
func adminRecords(t *testing.T, trail string) []fltRecord {
	t.Helper()
	var out []fltRecord
	for _, r := range auditLines(t, trail) {
		if r.str("event") == "admin" {
			out = append(out, r)
		}
	}
	return out
}

// TestOpsAdminSessions: two logged-in sessions and one still in
// AUTHORIZATION are listed with who they are, where they come from and
// where they go; --user, --addr and --backend filter them; the table
// names them too.
func TestOpsAdminSessions(t *testing.T) {
	seedUser(t, "load490")
	seedUser(t, "load491")
	p, addr, _, _ := adminStart(t)
	a := opsLogin(t, addr, "load490")
	opsCmdOK(t, a, "STAT")
	b := opsLogin(t, addr, "load491")
	opsCmdOK(t, b, "NOOP")
	dialPOP(t, addr) // greeted, never logs in

	all := adminSessions(t, p)
	if len(all) != 3 {
		t.Fatalf("sessions lists %d sessions, want 3: %+v", len(all), all)
	}
	pop3 := envValue(t, "POP3_ADDR")
	for _, s := range all {
		if s.Listener != "pop3" || !strings.HasPrefix(s.Client, "127.0.0.1:") || s.Backend != "main" ||
			s.BackendAddr != pop3 || s.TLS != "" || s.ID == "" || s.AgeNS <= 0 || s.BytesOut <= 0 {
			t.Errorf("session %+v: want listener pop3, a loopback client, backend main at %s, plaintext, an id, an age, octets out", s, pop3)
		}
	}
	if got := adminUsers(all); strings.Join(got, ",") != "load490,load491," {
		t.Errorf("users oldest first = %q, want load490, load491 and one not logged in", got)
	}
	if all[0].State != "TRANSACTION" || all[0].BackendUser != "load490" || all[0].BytesIn < int64(len("USER load490\r\n")) {
		t.Errorf("load490's session = %+v", all[0])
	}
	if all[2].State != "AUTHORIZATION" {
		t.Errorf("the session that never logged in is in %s", all[2].State)
	}

	for _, tc := range []struct {
		filter []string
		want   string
	}{
		{[]string{"--user", "LOAD491"}, "load491"},
		{[]string{"--addr", "127.0.0.0/8"}, "load490,load491,"},
		{[]string{"--addr", "192.0.2.1"}, ""},
		{[]string{"--backend", "main"}, "load490,load491,"},
		{[]string{"--backend", pop3, "--user", "load490"}, "load490"},
		{[]string{"--backend", "elsewhere"}, ""},
	} {
		if got := strings.Join(adminUsers(adminSessions(t, p, tc.filter...)), ","); got != tc.want {
			t.Errorf("sessions %v lists %q, want %q", tc.filter, got, tc.want)
		}
	}

	table, errOut, status := adminCLI(t, p, "sessions", "--user", "load490")
	if status != 0 || !strings.Contains(table, "TRANSACTION") || !strings.Contains(table, "load490") ||
		strings.Contains(table, "load491") || !strings.Contains(table, "1 sessions") {
		t.Errorf("sessions table (status %d, %s):\n%s", status, errOut, table)
	}
	if _, _, status := adminCLI(t, p, "sessions", "--addr", "not-an-address"); status != 2 {
		t.Errorf("sessions --addr not-an-address: status %d, want 2", status)
	}
}

// TestOpsAdminKickMidRETR: a session that marked two messages and is in
// the middle of the 50 MiB RETR shows the command in flight; kick closes
// it at once, without QUIT: the client sees the connection end before the
// terminator, Dovecot logs a dropped connection, and the mailbox keeps
// every message. The kick is in the audit trail and the session's end
// record says why.
func TestOpsAdminKickMidRETR(t *testing.T) {
	const user = "load492"
	opsSeedBig(t, user)
	p, addr, trail, _ := adminStart(t)
	w := watchLog(t, envValue(t, "DOVECOT_LOG"))
	c := opsLogin(t, addr, user)
	opsCmdOK(t, c, "DELE 1")
	opsCmdOK(t, c, "DELE 2")
	opsCmdOK(t, c, fmt.Sprintf("RETR %d", opsBigMsg))
	if _, err := c.R.Peek(60 << 10); err != nil {
		t.Fatalf("first 60 KiB of the body: %v", err)
	}
	// The client stops reading: popgate is blocked writing the body.
	list := adminSessions(t, p, "--user", user)
	if len(list) != 1 || list[0].Command != fmt.Sprintf("RETR %d", opsBigMsg) || list[0].IdleNS != 0 {
		t.Fatalf("sessions --user %s = %+v; want one session with RETR %d in flight, not idle", user, list, opsBigMsg)
	}

	out, errOut, status := adminCLI(t, p, "kick", "--user", user)
	if status != 0 || !strings.Contains(out, "kicked 1 session") {
		t.Fatalf("kick --user %s: status %d, %q %s", user, status, out, errOut)
	}
	rest := opsReadToEOF(t, c, 10*time.Second)
	if bytes.HasSuffix(rest, []byte("\r\n.\r\n")) {
		t.Errorf("the kicked client got the terminating dot (%d more octets): a truncated message looks complete", len(rest))
	}
	opsNoQuit(t, opsDovecotEnd(t, w, user, 10*time.Second))
	opsWantMailbox(t, user, opsBigMsg)
	if list := adminSessions(t, p, "--user", user); len(list) != 0 {
		t.Errorf("the kicked session is still listed: %+v", list)
	}

	recs := adminRecords(t, trail)
	if len(recs) != 1 || recs[0].str("action") != "kick" || recs[0].str("user") != user ||
		recs[0].num("sessions") != 1 || recs[0].str("via") != "unix" {
		t.Errorf("admin records in the trail = %v; want one kick of %s closing 1 session via unix", recs, user)
	}
	var ended bool
	for _, r := range auditWaitEnd(t, trail, list[0].Client) {
		if r.str("event") == "session_end" {
			ended = true
			if r.str("reason") != "kicked" || r["deletes_committed"] != false || r.num("deletes_marked") != 2 {
				t.Errorf("session_end of the kicked session = %v; want reason kicked, 2 marked, none committed", r)
			}
		}
	}
	if !ended {
		t.Error("no session_end record for the kicked session")
	}
	cmd := exec.Command(buildPopgate(t), "audit", "verify", trail)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("audit verify of a trail with an admin record: %v\n%s", err, out)
	}
}

// TestOpsAdminBlock: kick --block closes the user's session and refuses
// their new logins with -ERR [AUTH] until the block expires, while other
// users log in; the block is in the audit trail.
func TestOpsAdminBlock(t *testing.T) {
	const user, other = "load493", "load494"
	seedUser(t, user)
	seedUser(t, other)
	p, addr, trail, _ := adminStart(t)
	c := opsLogin(t, addr, user)
	opsCmdOK(t, c, "STAT")

	const block = 3 * time.Second
	out, errOut, status := adminCLI(t, p, "kick", "--user", user, "--block", block.String())
	blockedAt := time.Now()
	if status != 0 || !strings.Contains(out, "blocked user "+user+" until") || !strings.Contains(out, "kicked 1 session") {
		t.Fatalf("kick --block: status %d, %q %s", status, out, errOut)
	}
	opsReadToEOF(t, c, 10*time.Second)

	pass := itPassword(t, "a", user)
	login := func() error {
		c := dialPOP(t, addr)
		defer c.Close()
		return c.Login(user, pass)
	}
	var pe *popError
	if err := login(); !errors.As(err, &pe) || !strings.HasPrefix(pe.Line, "-ERR [AUTH]") {
		t.Fatalf("login of the blocked user: %v; want -ERR [AUTH]", err)
	}
	opsCmdOK(t, opsLogin(t, addr, other), "STAT") // the block is the user's only

	// The block's expiry is the only signal there is: poll for it.
	for {
		err := login()
		if err == nil {
			break
		}
		if !errors.As(err, &pe) || !strings.HasPrefix(pe.Line, "-ERR [AUTH]") {
			t.Fatalf("login during the block: %v; want -ERR [AUTH]", err)
		}
		if time.Since(blockedAt) > block+10*time.Second {
			t.Fatalf("the block of %v has not expired %v later", block, time.Since(blockedAt))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if since := time.Since(blockedAt); since < block-500*time.Millisecond {
		t.Errorf("the blocked user logged in %v after a block of %v", since, block)
	}

	recs := adminRecords(t, trail)
	if len(recs) != 2 || recs[0].str("action") != "block" || recs[0].str("user") != user || recs[0].str("until") == "" ||
		recs[1].str("action") != "kick" {
		t.Errorf("admin records in the trail = %v; want a block of %s with its expiry, then the kick", recs, user)
	}
}

// TestOpsAdminToken: the TCP admin address answers 401 to a request
// without the token or with a wrong one, logs neither token, and answers
// one with the right token.
func TestOpsAdminToken(t *testing.T) {
	p, _, _, adminAddr := adminStart(t)
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer wrong-token-wrong-token-wrong", http.StatusUnauthorized},
		{"Bearer " + adminToken[:len(adminToken)-1], http.StatusUnauthorized},
		{"Basic " + adminToken, http.StatusUnauthorized},
		{"Bearer " + adminToken, http.StatusOK},
	} {
		req, err := http.NewRequest(http.MethodGet, "http://"+adminAddr+"/v1/sessions", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET /v1/sessions: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Authorization %q: status %d, want %d", tc.auth, resp.StatusCode, tc.want)
		}
	}
	// A kick without the token is refused as well.
	resp, err := http.Post("http://"+adminAddr+"/v1/kick", "application/json", strings.NewReader(`{"user":"load490"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("kick without a token: status %d, want 401", resp.StatusCode)
	}
	p.WaitLog(t, "wrong or missing token", 5*time.Second)
	if logs := p.Logs(); strings.Contains(logs, "wrong-token") || strings.Contains(logs, adminToken[:16]) {
		t.Error("popgate logged a token")
	}
}
