package audit

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/popgate/popgate/filters"
)

// TestOpaqueRecordEncodesAsEncodingJSON checks the opaque record's octets
// against encoding/json, for every awkward string.
func TestOpaqueRecordEncodesAsEncodingJSON(t *testing.T) {
	for i, str := range awkward {
		h := header{Time: time.Date(2026, 12, 1, 23, 4, 5, i*7, time.UTC), Event: str, Session: str, Client: str, Listener: str}
		h.OriginalDst = str
		rec := &opaqueRecord{header: h, How: str}
		if got, want := rec.appendJSON(nil), stdJSON(t, rec); string(got) != string(want) {
			t.Errorf("%q:\n got %s\nwant %s", str, got, want)
		}
	}
}

// TestSessionOpaqueWritesARecordOfTheSession checks that SessionOpaque
// writes one chained opaque record naming the session, how and the
// original destination, between the session's start and end.
func TestSessionOpaqueWritesARecordOfTheSession(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	f, err := New(Config{Path: path, Chain: true, Sync: SyncRecord}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &filters.Session{ID: "s1", Listener: "intercept",
		ClientAddr:   &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 40000},
		OriginalDest: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 110}}
	f.SessionStarted(s)
	f.SessionOpaque(s, "stls-tunnel")
	f.SessionEnded(s, filters.SessionEnd{Reason: "backend-closed", BytesIn: 10, BytesOut: 20})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	recs := records(t, path)
	if len(recs) != 3 {
		t.Fatalf("got %d records, want 3: %v", len(recs), recs)
	}
	r := recs[1]
	for k, want := range map[string]any{"event": "opaque", "session": "s1", "client": "10.0.0.2:40000",
		"listener": "intercept", "how": "stls-tunnel", "original_dst": "192.0.2.7:110"} {
		if r[k] != want {
			t.Errorf("%s = %v, want %v", k, r[k], want)
		}
	}
	if _, ok := r["hash"]; !ok {
		t.Error("the opaque record is not chained")
	}
	if recs[2]["event"] != "session_end" {
		t.Errorf("last record is %v, want session_end", recs[2]["event"])
	}
}
