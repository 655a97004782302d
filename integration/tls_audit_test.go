//go:build integration

package integration

// TLS fields in popgate's log and audit records: version, cipher and SNI,
// at session start for implicit TLS and in a tls record after STLS.

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tlsAuditRecords reads the audit file as JSON objects.
func tlsAuditRecords(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		recs = append(recs, m)
	}
	return recs
}

// TestTLSLogAndAudit checks that the log names the TLS version of a
// session and that audit records carry version, cipher and SNI, at
// session start for implicit TLS and in a tls record after STLS.
func TestTLSLogAndAudit(t *testing.T) {
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	pki, p, addrs := tlsSTLSConfig(t, true, fmt.Sprintf("filter \"audit\" {\n  path = %q\n}\n", auditFile))

	c := dialPOPS(t, addrs[2], pki.client(tlsPopName))
	st := tlsState(t, c)
	tlsRetrAll(t, c)
	if _, err := c.Cmd("QUIT"); err != nil {
		t.Fatal(err)
	}
	s := dialPOP(t, addrs[0])
	if err := s.StartTLS(pki.client(tlsOtherName)); err == nil {
		t.Fatalf("verifying %s against a certificate for %s succeeded", tlsOtherName, tlsPopName)
	}
	s = dialPOP(t, addrs[0])
	if err := s.StartTLS(pki.client(tlsPopName)); err != nil {
		t.Fatal(err)
	}
	if err := s.Login("alice", itPassword(t, "a", "alice")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cmd("QUIT"); err != nil {
		t.Fatal(err)
	}

	version, cipher := tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite)
	// The "session ended" lines of both sessions name the TLS version;
	// they are logged just after QUIT is answered.
	found := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for len(found) < 2 && time.Now().Before(deadline) {
		for _, line := range strings.Split(p.Logs(), "\n") {
			if !strings.Contains(line, "session ended") || !strings.Contains(line, "user=alice") {
				continue
			}
			for _, l := range []string{"pops", "stls-accept"} {
				if strings.Contains(line, "listener="+l+" ") && strings.Contains(line, `tls="`+version+`"`) {
					found[l] = true
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, l := range []string{"pops", "stls-accept"} {
		if !found[l] {
			t.Errorf("no 'session ended' line of listener %s with tls=%q:\n%s", l, version, p.Logs())
		}
	}

	var starts, tlsRecs []map[string]any
	for _, r := range tlsAuditRecords(t, auditFile) {
		switch r["event"] {
		case "session_start":
			starts = append(starts, r)
		case "tls":
			tlsRecs = append(tlsRecs, r)
		}
	}
	var implicit map[string]any
	for _, r := range starts {
		if r["listener"] == "pops" {
			implicit = r
		}
	}
	want := map[string]any{"tls_version": version, "tls_cipher": cipher, "sni": tlsPopName}
	if implicit == nil {
		t.Fatalf("no session_start record for the implicit listener: %v", starts)
	}
	for k, v := range want {
		if implicit[k] != v {
			t.Errorf("implicit session_start %s = %v, want %v", k, implicit[k], v)
		}
	}
	var stlsRec map[string]any
	for _, r := range tlsRecs {
		if r["listener"] == "stls-accept" && r["sni"] == tlsPopName {
			stlsRec = r
		}
	}
	if stlsRec == nil {
		t.Fatalf("no tls record for the STLS session: %v", tlsRecs)
	}
	if v, _ := stlsRec["tls_version"].(string); !strings.HasPrefix(v, "TLS 1.") {
		t.Errorf("tls record tls_version = %q", v)
	}
	if v, _ := stlsRec["tls_cipher"].(string); v == "" {
		t.Errorf("tls record has no tls_cipher: %v", stlsRec)
	}
}
