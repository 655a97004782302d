//go:build integration

package integration

// Helpers of the audit filter tests in filters_audit_test.go: audit
// blocks, reading the JSON-lines trail into records, the fields
// filters/audit/doc.go promises per event, a mailbox message carrying the
// EICAR string, and `popgate audit verify`.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fltAudit returns a filter "audit" block writing to path.
func fltAudit(path string, chain bool) string {
	return fmt.Sprintf("filter \"audit\" {\n  path  = %q\n  chain = %v\n}\n", path, chain)
}

// fltRecord is one audit record as decoded from JSON.
type fltRecord map[string]any

// str returns field k as a string ("" if absent or not a string).
func (r fltRecord) str(k string) string { s, _ := r[k].(string); return s }

// num returns field k as a number (-1 if absent or not a number).
func (r fltRecord) num(k string) float64 {
	if f, ok := r[k].(float64); ok {
		return f
	}
	return -1
}

// fltRecords reads the audit file at path: every line must be one JSON
// object. It returns the records and the raw lines.
func fltRecords(t *testing.T, path string) ([]fltRecord, []string) {
	t.Helper()
	recs, lines, err := fltTryRecords(path)
	if err != nil {
		t.Fatal(err)
	}
	return recs, lines
}

// fltTryRecords is fltRecords returning errors; an incomplete last line
// (a write in progress) is left out.
func fltTryRecords(path string) ([]fltRecord, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read audit trail: %w", err)
	}
	var recs []fltRecord
	var lines []string
	for i, line := range strings.SplitAfter(string(data), "\n") {
		if !strings.HasSuffix(line, "\n") {
			break
		}
		line = strings.TrimSuffix(line, "\n")
		var r fltRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, nil, fmt.Errorf("audit line %d is not a JSON object: %v\n%s", i+1, err, line)
		}
		recs, lines = append(recs, r), append(lines, line)
	}
	return recs, lines, nil
}

// fltWaitRecord polls the audit file until a record satisfies match and
// returns it. Records are written when exchanges and sessions end, after
// the client has its answer, so polling the file is the only signal.
func fltWaitRecord(t *testing.T, path string, match func(fltRecord) bool) fltRecord {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		recs, _, err := fltTryRecords(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		for _, r := range recs {
			if match(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(path)
			t.Fatalf("audit trail %s: no matching record within 15 s; it holds:\n%s", path, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fltSessionEnd waits for the session_end record of the session whose
// client address is client, and returns that session's records in file
// order.
func fltSessionEnd(t *testing.T, path, client string) []fltRecord {
	t.Helper()
	end := fltWaitRecord(t, path, func(r fltRecord) bool {
		return r.str("event") == "session_end" && r.str("client") == client
	})
	recs, _ := fltRecords(t, path)
	var out []fltRecord
	for _, r := range recs {
		if r.str("session") == end.str("session") {
			out = append(out, r)
		}
	}
	return out
}

// fltAuditFields lists the fields filters/audit/doc.go promises per event,
// beyond time, event, session, client and listener.
var fltAuditFields = map[string][]string{
	"session_start": {"local", "tls_version", "tls_cipher", "sni"},
	"tls":           {"tls_version", "tls_cipher", "sni"},
	"session_end":   {"duration_ms", "bytes_in", "bytes_out", "reason", "deletes_marked", "deletes_committed"},
	"command":       {"seq", "verb", "args", "status", "code", "bytes", "duration_us", "complete"},
	"auth":          {"client_user", "backend_user", "mechanism", "backend", "result", "code"},
	"retrieve":      {"verb", "msg", "uidl", "size", "message_id", "complete"},
	"delete":        {"msg", "uidl"},
	"commit":        {"count", "msgs"},
	"scan":          {"verb", "msg", "verdict", "virus", "error", "bytes", "duration_us"},
}

// fltHashTail matches the end of a chained record.
var fltHashTail = regexp.MustCompile(`,"prev_hash":"([0-9a-f]{64})?","hash":"([0-9a-f]{64})"}$`)

// fltCheckCommon checks the fields every record of a session carries.
func fltCheckCommon(t *testing.T, recs []fltRecord, client, listener string) {
	t.Helper()
	for _, r := range recs {
		ts, err := time.Parse(time.RFC3339Nano, r.str("time"))
		if err != nil || time.Since(ts) > time.Hour || time.Until(ts) > time.Minute {
			t.Errorf("record %v: time %q is not a current RFC 3339 time (%v)", r, r.str("time"), err)
		}
		if r.str("session") == "" || r.str("client") != client || r.str("listener") != listener {
			t.Errorf("record %v: want session set, client %s, listener %s", r, client, listener)
		}
		want, ok := fltAuditFields[r.str("event")]
		if !ok {
			t.Errorf("record %v: unknown event", r)
		}
		for _, k := range append(want, "prev_hash", "hash") {
			if _, ok := r[k]; !ok {
				t.Errorf("%s record lacks %q: %v", r.str("event"), k, r)
			}
		}
	}
}

// fltFind returns the records of event that satisfy match.
func fltFind(recs []fltRecord, event string, match func(fltRecord) bool) []fltRecord {
	var out []fltRecord
	for _, r := range recs {
		if r.str("event") == event && (match == nil || match(r)) {
			out = append(out, r)
		}
	}
	return out
}

// fltOne returns the single record of event that satisfies match.
func fltOne(t *testing.T, recs []fltRecord, event string, match func(fltRecord) bool, what string) fltRecord {
	t.Helper()
	found := fltFind(recs, event, match)
	if len(found) != 1 {
		t.Fatalf("%d %s records for %s, want 1: %v", len(found), event, what, found)
	}
	return found[0]
}

// fltAddEICARMessage adds a message carrying the EICAR string to the end
// of a (freshly seeded, never opened) mailbox of user on Dovecot A, as
// message number n, and returns its Message-ID. Seeding replaces the
// whole mailbox, so the file goes away at the next seedUser.
func fltAddEICARMessage(t *testing.T, user string, n int) string {
	t.Helper()
	const id = "<flt-eicar@popgate.test>"
	msg := "From: Popgate Test <sender@popgate.test>\r\n" +
		"To: Mailbox Owner <owner@popgate.test>\r\n" +
		"Subject: flt eicar\r\n" +
		"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n" +
		"Message-ID: " + id + "\r\n" +
		"\r\n" +
		"The next line is the EICAR anti-virus test string.\r\n" + eicar() + "\r\n"
	// The seeded files are named <1700000000+i>.M<i+1>P1.popgate:2, and
	// Dovecot numbers them in name order.
	path := fmt.Sprintf("%s/%s/Maildir/cur/%d.M%dP1.popgate:2,", envValue(t, "MAIL_ROOT"), user, 1700000000+n-1, n)
	if err := os.WriteFile(path, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(envValue(t, "MAIL_UID"))
	gid, _ := strconv.Atoi(envValue(t, "MAIL_GID"))
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	return id
}

// fltVerify runs `popgate audit verify path` and returns its exit code and
// output.
func fltVerify(t *testing.T, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, buildPopgate(t), "audit", "verify", path).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("popgate audit verify: %v\n%s", err, out)
	return -1, ""
}

// fltUIDs parses a UIDL listing into message number -> unique-id.
func fltUIDs(t *testing.T, listing []byte) map[int]string {
	t.Helper()
	m := map[int]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(listing)), "\r\n") {
		n, uid, ok := strings.Cut(l, " ")
		i, err := strconv.Atoi(n)
		if !ok || err != nil {
			t.Fatalf("UIDL line %q", l)
		}
		m[i] = uid
	}
	return m
}
